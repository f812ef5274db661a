/**
 * The entry of the bare Worker that inspects a function module before it is
 * served (`inspectFunction` in `src/registry/load_function.ts`): it answers
 * an `init` in inspect mode with the manifest, and a `shutdown` by ending. It
 * imports no ONNX Runtime and none of the serving runtime, so it starts in
 * about half the time of a serving isolate.
 * @module
 */
import type { HostMessage, IsolateMessage } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { inspectModule } from "./inspect.ts";
import { messageOf } from "./load_module.ts";
import { guardExit } from "./exit_guard.ts";
import { captureConsole } from "./console_capture.ts";

interface WorkerScope {
  postMessage(message: IsolateMessage): void;
  onmessage: ((event: MessageEvent<HostMessage>) => void) | null;
  close(): void;
}
const scope = self as unknown as WorkerScope;
const close = scope.close.bind(scope);
const post = (message: IsolateMessage) => scope.postMessage(message);
guardExit(post);
captureConsole(post);

scope.onmessage = ({ data: message }) => {
  if (message.type === "init") {
    inspectModule(message).then(
      (manifest) => post({ type: "manifest", manifest }),
      (error) => {
        const e = error instanceof IsolaneError
          ? error
          : new IsolaneError("function_unavailable", `Cannot load function '${message.name}': ${messageOf(error)}`);
        post({ type: "failed", error: e.toBody() });
      },
    );
  } else if (message.type === "shutdown") {
    post({ type: "released", sessions: 0 });
    close();
  }
};
