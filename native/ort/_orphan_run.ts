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

const [libraryPath, loopPath, keep] = Deno.args;
if (keep === "keep") keepOrtLoaded(libraryPath);

/** This process's CPU time so far, in clock ticks (`/proc/self/stat` utime + stime). */
function cpuTicks(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").replace(/^.*\) /, "").split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Threads of this process other than the main thread that are running or waiting for a core. */
function runnableThreads(): number {
  let n = 0;
  for (const task of Deno.readDirSync("/proc/self/task")) {
    if (task.name === String(Deno.pid)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/self/task/${task.name}/stat`).replace(/^.*\) /, "").startsWith("R")) n++;
    } catch { /* the thread ended */ }
  }
  return n;
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
// The orphaned run keeps a thread running or runnable (state R); it has ended once no thread but this one is, three
// polls in a row. (CPU time that stood still was not enough: on a loaded machine the run could wait 150 ms for a
// core, the process exited under it, and ORT's teardown at exit met the run: SIGSEGV.)
let still = 0;
for (let polls = 0; still < 3 && polls < 1200; polls++) {
  await new Promise((resolve) => setTimeout(resolve, 50));
  still = runnableThreads() === 0 ? still + 1 : 0;
}
console.log(JSON.stringify({ survived: true, ticksAfterEnd: cpuTicks() - ended, settled: still >= 3 }));
