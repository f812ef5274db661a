/**
 * `Deno.exit()` and `self.close()` end a Worker without any event reaching the
 * host, which would leave its requests waiting for their timeout. The guard
 * makes both announce the exit first, and locks `Deno.exit` so user code
 * cannot remove the guard.
 * @module
 */
import type { IsolateMessage } from "../protocol.ts";

/** Installs the guard; `post` sends the announcement to the host. */
export function guardExit(post: (message: IsolateMessage) => void): void {
  const exit = Deno.exit;
  const scope = self as unknown as { close(): void };
  const close = scope.close.bind(scope);
  Object.defineProperty(Deno, "exit", {
    value: function exitIsolate(code?: number): never {
      post({ type: "exiting", reason: `the function called Deno.exit(${code ?? ""})` });
      return exit(code);
    },
    writable: false,
    configurable: false,
  });
  Object.defineProperty(scope, "close", {
    value: function closeIsolate(): void {
      post({ type: "exiting", reason: "the function called self.close()" });
      close();
    },
    writable: false,
    configurable: false,
  });
}
