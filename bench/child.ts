/**
 * Starts a server under test (the runtime's `main.ts` or a baseline) as a child process on 127.0.0.1 with a free
 * port, waits for its `{"msg": "listening", "url"}` log line, then discards its output without parsing it, so that
 * a run's request logs cost the bench process nothing. (`tests/support/server.ts` keeps every line for tests; at
 * tens of thousands of requests a second that would load the machine being measured.)
 * @module
 */
import { fileURLToPath } from "node:url";

const mainPath = fileURLToPath(new URL("../main.ts", import.meta.url));

/** A running server. */
export interface Child extends AsyncDisposable {
  url: string;
  /** The exit status once it has exited on its own or been stopped; null while it runs. */
  exitStatus(): Deno.CommandStatus | null;
  /** The last 16 KiB of its output (stdout and stderr, raw), to explain a failure. */
  tail(): string;
  stop(): Promise<Deno.CommandStatus>;
}

/** Options of {@link startChild}. */
export interface ChildOptions {
  /** The program to run; default the runtime's `main.ts`. */
  entry?: string;
  env?: Record<string, string>;
  /** Seconds to wait for the listening line. */
  timeoutS?: number;
}

/**
 * Starts the program and resolves once it listens.
 * @throws Error with its last output lines when it exits or stays silent first.
 */
export async function startChild({ entry = mainPath, env = {}, timeoutS = 120 }: ChildOptions = {}): Promise<Child> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-worker-options", "--unstable-no-legacy-abort", "--unstable-net", entry],
    env: { PORT: "0", HOST: "127.0.0.1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tail: string[] = [];
  // After the listening line, output is kept only as raw text, in a ring of recent chunks: no parsing per line.
  const recent: string[] = [];
  let recentBytes = 0;
  let exitStatus: Deno.CommandStatus | null = null;
  void child.status.then((s) => (exitStatus = s));
  let resolveUrl: (url: string) => void;
  const listening = new Promise<string>((resolve) => (resolveUrl = resolve));
  let found = false;
  const read = async (stream: ReadableStream<Uint8Array>) => {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      recent.push(text);
      recentBytes += text.length;
      while (recentBytes > 16384 && recent.length > 1) recentBytes -= recent.shift()!.length;
      if (found) continue;
      buffered += text;
      let newline: number;
      while (!found && (newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        tail.push(line);
        if (tail.length > 30) tail.shift();
        try {
          const parsed = JSON.parse(line);
          if (parsed?.msg === "listening" && typeof parsed.url === "string") {
            found = true;
            resolveUrl(parsed.url);
          }
        } catch { /* not JSON */ }
      }
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const status = await child.status;
      await reading;
      return status;
    })();
    return stopped;
  };
  try {
    const url = await Promise.race([
      listening,
      child.status.then((s) => {
        throw new Error(`${entry} exited with ${s.code} before listening:\n${tail.join("\n")}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${entry} did not listen within ${timeoutS} s:\n${tail.join("\n")}`)),
          timeoutS * 1000,
        );
      }),
    ]);
    return {
      url,
      stop,
      exitStatus: () => exitStatus,
      tail: () => recent.join("").slice(-16384),
      [Symbol.asyncDispose]: async () => void await stop(),
    };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
