/**
 * isolane's entry: parses the configuration and starts the runtime.
 * @module
 */
import { type Config, ConfigError, parseConfig } from "./src/config.ts";
import { startRuntime } from "./src/runtime.ts";
import { bufferLogs, flushLogs, log } from "./src/log.ts";

if (import.meta.main) {
  let config: Config;
  try {
    config = parseConfig(Deno.env.toObject(), Deno.args);
  } catch (error) {
    // A setting at fault is the operator's to fix: one line that names it, no stack trace.
    if (!(error instanceof ConfigError)) throw error;
    console.error(`isolane: ${error.message}`);
    Deno.exit(1);
  }
  // ONNX Runtime's Linux library sends Microsoft 1DS telemetry unless told not to, and each process that loads it
  // leaves a mat-debug-<pid>.log in TMPDIR: off for the runtime and its process hosts (they inherit the environment),
  // unless the operator set the variable.
  if (Deno.env.get("ORT_DISABLE_TELEMETRY") === undefined) Deno.env.set("ORT_DISABLE_TELEMETRY", "1");
  // Log lines are written once per turn of the event loop, never on a request's path; every exit flushes them.
  bufferLogs();
  globalThis.addEventListener("unload", flushLogs);
  // A bug in a callback must cost one request, not the process that serves every function: log it and go on.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log("error", "unexpected error", { reason: String(event.reason), stack: (event.reason as Error)?.stack });
  });
  let runtime: Awaited<ReturnType<typeof startRuntime>>;
  try {
    runtime = await startRuntime(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      // A port in use, a functions folder that is not there (src/start_checks.ts): as a setting that does not parse.
      console.error(`isolane: ${error.message}`);
      flushLogs();
      Deno.exit(1);
    }
    // Nothing serves: say why and exit, rather than linger without a listener.
    log("error", "cannot start", { reason: error instanceof Error ? error.message : String(error) });
    flushLogs();
    Deno.exit(1);
  }
  let stopping: number | undefined;
  const stop = async (signal: string) => {
    if (stopping !== undefined) {
      // Ctrl-C under `deno task` arrives twice at once (to the process group, and forwarded by the task runner).
      if (performance.now() - stopping < 1000) return;
      log("warn", "second signal: exiting now", { signal });
      flushLogs();
      Deno.exit(1);
    }
    stopping = performance.now();
    await runtime.close(signal);
    flushLogs();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
