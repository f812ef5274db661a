/**
 * Starts the real runtime (`main.ts`) as a child process on 127.0.0.1 with a
 * free port, and reads its JSON logs.
 * @module
 */
import { fileURLToPath } from "node:url";

const mainPath = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** A running runtime under test. */
export interface TestServer extends AsyncDisposable {
  url: string;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  /** POSTs JSON to a function. */
  invoke(name: string, body: unknown, init?: RequestInit): Promise<Response>;
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<Deno.CommandStatus>;
  /** Sends a signal to the runtime (SIGKILL to crash it); `stop()` then reaps it. */
  kill(signal: Deno.Signal): void;
}

/** Options of {@link startServer}. */
export interface ServerOptions {
  functionsDir: string;
  watch?: boolean;
  env?: Record<string, string>;
  /** The program to run instead of the runtime's `main.ts` (a baseline server, say). */
  entry?: string;
  /** More command-line arguments (`--dev-admin`, say). */
  args?: string[];
  /** Variables of this process the runtime must not inherit (the test task's `ORT_DISABLE_TELEMETRY`, say). */
  unsetEnv?: string[];
  /**
   * A command the runtime runs under, its program and arguments (`unshare --pid --fork --kill-child=SIGTERM
   * --mount-proc`, a PID namespace of its own). `stop()` ends that command with SIGKILL (`unshare` ignores SIGTERM),
   * so it must pass a signal on to the runtime as it dies (`--kill-child=SIGTERM`).
   */
  under?: string[];
}

async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered) onLine(buffered);
}

/** Starts the runtime and resolves once it listens. */
export async function startServer(
  { functionsDir, watch = false, env = {}, entry = mainPath, args = [], unsetEnv = [], under = [] }: ServerOptions,
): Promise<TestServer> {
  let ownData: string | undefined;
  const child = new Deno.Command(under[0] ?? Deno.execPath(), {
    args: [
      ...(under.length > 0 ? [...under.slice(1), Deno.execPath()] : []),
      "run",
      "--allow-all",
      "--unstable-worker-options",
      "--unstable-no-legacy-abort",
      "--unstable-net",
      entry,
      ...(watch ? ["--watch"] : []),
      ...args,
    ],
    // Inherited as Deno.Command would, less what the test unsets.
    ...(unsetEnv.length > 0 ? { clearEnv: true } : {}),
    env: {
      ...(unsetEnv.length > 0
        ? Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([k]) => !unsetEnv.includes(k)))
        : {}),
      PORT: "0",
      HOST: "127.0.0.1",
      ISOLANE_FUNCTIONS: functionsDir,
      ISOLANE_LOG_LEVEL: "debug",
      // Each runtime under test keeps its deployments in a folder of its own unless the test shares one.
      ISOLANE_DATA: env.ISOLANE_DATA ?? (ownData = await Deno.makeTempDir({ prefix: "isolane-data-" })),
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<
    { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }
  >();
  const onLine = (text: string) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text);
    } catch {
      line = { msg: "raw", text };
    }
    logs.push(line);
    for (const waiter of waiters) {
      if (waiter.match(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  };
  const reading = Promise.all([readLines(child.stdout, onLine), readLines(child.stderr, onLine)]);
  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 60_000) => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (l: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(
          new Error(
            `No matching log line within ${timeoutMs} ms; last lines:\n${
              logs.slice(-15).map((l) => JSON.stringify(l)).join("\n")
            }`,
          ),
        );
      }, timeoutMs);
      waiters.add(waiter);
    });
  };
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        child.kill(under.length > 0 ? "SIGKILL" : "SIGTERM");
      } catch { /* already gone */ }
      const status = await child.status;
      await reading;
      if (ownData) await Deno.remove(ownData, { recursive: true }).catch(() => {});
      return status;
    })();
    return stopped;
  };
  let listening: Record<string, unknown>;
  try {
    listening = await Promise.race([
      waitForLog((l) => l.msg === "listening"),
      child.status.then((s) => {
        throw new Error(
          `Runtime exited with ${s.code} before listening:\n${logs.map((l) => JSON.stringify(l)).join("\n")}`,
        );
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  const url = String(listening.url);
  return {
    url,
    logs,
    waitForLog,
    stop,
    kill: (signal) => child.kill(signal),
    invoke: (name, body, init) =>
      fetch(`${url}/v1/functions/${name}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
        ...init,
      }),
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

/** Reads a JSON error response and checks its shape. */
export async function errorOf(
  response: Response,
): Promise<{ status: number; code: string; message: string; details?: unknown }> {
  const body = await response.json();
  if (typeof body?.error?.code !== "string" || typeof body?.error?.message !== "string") {
    throw new Error(`Not an error body (status ${response.status}): ${JSON.stringify(body)}`);
  }
  return { status: response.status, ...body.error };
}

/** Polls `GET /v1/functions/:name` until `check` holds (at most `timeoutMs`). */
export async function until(
  server: TestServer,
  name: string,
  // deno-lint-ignore no-explicit-any
  check: (info: any) => boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let info: unknown;
  while (Date.now() < deadline) {
    info = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
    if (check(info)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Function '${name}' never reached the expected state: ${JSON.stringify(info)}`);
}
