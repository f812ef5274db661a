/**
 * isolane's entry: parses the configuration and starts the runtime.
 * @module
 */
import { parseConfig } from "./src/config.ts";
import { startRuntime } from "./src/server/runtime.ts";
import { log } from "./src/log.ts";

if (import.meta.main) {
  const runtime = await startRuntime(parseConfig(Deno.env.toObject(), Deno.args));
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log("warn", "second signal: exiting now", { signal });
      Deno.exit(1);
    }
    stopping = true;
    log("info", "shutting down", { signal });
    await runtime.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
