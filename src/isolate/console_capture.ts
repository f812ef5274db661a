/**
 * Sends what a function writes with `console` to the host as structured log
 * lines, tagged with the request being served, instead of letting it mix into
 * the runtime's stdout. The request is the run scope's (`run_scope.ts`, kept
 * across awaits by AsyncLocalStorage), which every job and batched handler
 * call runs in: one scope a job, not a second AsyncLocalStorage of its own
 * (each `run` cost the isolate about 5 µs a job).
 * @module
 */
import { clipLogText, type IsolateMessage, type LogMessage } from "../protocol.ts";
import { currentRunScope } from "../inference/run_scope.ts";

const levels: Record<string, LogMessage["level"]> = {
  log: "info",
  info: "info",
  debug: "debug",
  trace: "debug",
  warn: "warn",
  error: "error",
};

function format(args: unknown[]): string {
  return args.map((a) => (typeof a === "string" ? a : Deno.inspect(a, { depth: 4, colors: false }))).join(" ");
}

/** Replaces the console's writing methods; `post` sends each line to the host. */
export function captureConsole(post: (message: IsolateMessage) => void): void {
  for (const [method, level] of Object.entries(levels)) {
    (console as unknown as Record<string, (...args: unknown[]) => void>)[method] = function capturedConsole(...args) {
      // A batch's lines name its first request.
      const requestId = currentRunScope()?.requests[0];
      post({ type: "log", level, text: clipLogText(format(args)), ...(requestId ? { requestId } : {}) });
    };
  }
}
