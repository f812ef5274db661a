/**
 * Test helper (`keep_loaded_test.ts`), run as a process of its own: a Worker
 * opens ORT, starts a nonblocking run of the loop model and is ended mid-run,
 * as an isolate that crashes is; this process then waits until the orphaned
 * run stops using CPU and prints what it saw. With `keep`, the main thread
 * first holds ORT's library (`keepOrtLoaded`), as the runtime does; without
 * it, ending the Worker closed the library under the run (SIGSEGV).
 *
 * `deno run -A --unstable-worker-options native/ort/_orphan_run.ts <libonnxruntime path> <loop model path> [keep]`
 * @module
 */
import { keepOrtLoaded } from "./mod.ts";
import { othersSettled } from "./_threads.ts";

const [libraryPath, loopPath, keep] = Deno.args;
if (keep === "keep") keepOrtLoaded(libraryPath);

/** This process's CPU time so far, in clock ticks (`/proc/self/stat` utime + stime). */
function cpuTicks(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").replace(/^.*\) /, "").split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

const worker = new Worker(new URL("./_after_drop_worker.ts", import.meta.url), {
  type: "module",
  deno: { permissions: { read: true, ffi: true, env: true, sys: true } },
});
const started = new Promise<Record<string, unknown>>((resolve) => (worker.onmessage = (e) => resolve(e.data)));
worker.postMessage({ libraryPath, modelPath: "", x: [], dims: [], loopPath, leaveRunning: 200_000 });
const answer = await started;
if (answer.running !== true) {
  console.log(JSON.stringify({ error: String(answer.error) }));
  Deno.exit(2);
}
worker.terminate();
const ended = cpuTicks();
// The orphaned run keeps a thread running or waiting for a core; it has ended once no other thread is. (CPU time that
// stood still for 150 ms was not enough: on a loaded machine the run waited for a core, the process exited under it,
// and died of SIGSEGV at exit.)
const settled = await othersSettled();
console.log(JSON.stringify({ survived: true, ticksAfterEnd: cpuTicks() - ended, settled }));
