/**
 * The entry of an isolate hosted in a Deno Worker: messages cross as
 * structured clones, buffers are transferred.
 * @module
 */
import type { HostMessage, IsolateMessage } from "../protocol.ts";
import { startIsolate } from "./main.ts";

interface WorkerScope {
  postMessage(message: IsolateMessage, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<HostMessage>) => void) | null;
  close(): void;
}
const scope = self as unknown as WorkerScope;
const close = scope.close.bind(scope);
const onMessage = startIsolate({
  post: (message, transfer) => scope.postMessage(message, transfer ?? []),
  exit: close,
});
scope.onmessage = (event) => onMessage(event.data);
