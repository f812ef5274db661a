/**
 * Cancels native ONNX Runtime runs from the host's own thread. A lane's
 * `Run` holds its isolate's thread until it returns, so the isolate cannot
 * see an abort; the host sets the run options' terminate flag instead
 * (`RunOptionsSetTerminate`), the run fails at ORT's next check, and the
 * isolate stays alive with its sessions loaded. Only for isolates in this
 * process (Worker hosts): a process host's handles live in another process.
 * @module
 */
import { fileURLToPath } from "node:url";
import { OrtEnv, ortLibraryPath } from "../../native/ort/mod.ts";

const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));
let env: OrtEnv | undefined;

/**
 * Sets the terminate flag of each run options handle (opened lazily: the
 * runtime touches ORT only when it has a run to cancel).
 * @throws {Error} when ORT's library cannot be opened or refuses the call.
 */
export function terminateRuns(handles: readonly bigint[]): void {
  env ??= OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
  for (const handle of handles) env.terminateRun(handle);
}
