/**
 * Sends what a function writes with `console` to the host as structured log
 * lines, tagged with the request being served (kept across awaits by
 * AsyncLocalStorage), instead of letting it mix into the runtime's stdout.
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { IsolateMessage, LogMessage } from "../protocol.ts";

const request = new AsyncLocalStorage<string | undefined>();

/** Runs `fn` with `requestId` as the request that console output belongs to. */
export function withRequest<T>(requestId: string | undefined, fn: () => T): T {
  return request.run(requestId, fn);
}

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
      const requestId = request.getStore();
      post({ type: "log", level, text: format(args), ...(requestId ? { requestId } : {}) });
    };
  }
}
