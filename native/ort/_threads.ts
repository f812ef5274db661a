/**
 * Test helper: waits until the nonblocking runs that this process left running (a Worker ended mid-run) have ended,
 * seen from `/proc`: no thread but the calling one running or waiting for a core (state R) for three polls in a row.
 * CPU time that stood still is not enough: on a loaded machine a run may wait for a core for hundreds of
 * milliseconds.
 * @module
 */

/** Threads of this process other than the calling one that are running or waiting for a core. */
export function runnableThreads(): number {
  const self = Deno.readLinkSync("/proc/thread-self").split("/").at(-1);
  let n = 0;
  for (const task of Deno.readDirSync("/proc/self/task")) {
    if (task.name === self) continue;
    try {
      if (Deno.readTextFileSync(`/proc/self/task/${task.name}/stat`).replace(/^.*\) /, "").startsWith("R")) n++;
    } catch { /* the thread ended */ }
  }
  return n;
}

/** Resolves `true` once no other thread has been runnable for three polls 50 ms apart; `false` after `maxMs`. */
export async function othersSettled(maxMs = 60_000): Promise<boolean> {
  let still = 0;
  for (let waited = 0; still < 3 && waited < maxMs; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    still = runnableThreads() === 0 ? still + 1 : 0;
  }
  return still >= 3;
}
