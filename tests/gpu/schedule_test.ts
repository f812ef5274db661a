/**
 * `ISOLANE_CUDA_SYNC`: the primary context's scheduling flags decide what a
 * thread waiting for the GPU does with its core. Observed from the OS: the
 * waiting thread's CPU time (`/proc/thread-self/schedstat`) while it
 * synchronises on a stream with about 0.2 s of queued GPU work. Skipped, with
 * one line saying why, where no GPU is usable.
 */
import assert from "node:assert/strict";
import { Lane, openCudaDriver } from "../../native/mod.ts";
import type { CudaSchedule } from "../../native/mod.ts";
import { gpus, skipReason } from "./gpu_support.ts";

/** Nanoseconds the calling thread has spent on a CPU (the kernel's schedstat, first field). */
function threadCpuNs(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]);
}

/** Queues fills of a 1 GiB buffer until about `ms` of GPU work wait, then measures one synchronisation. */
function waitOnGpu(schedule: CudaSchedule, ms: number): { cpuMs: number; wallMs: number; read: CudaSchedule } {
  const opened = openCudaDriver();
  if (!opened.ok) throw new Error(opened.reason);
  const { driver } = opened;
  using lane = Lane.open(driver, gpus[0].index, schedule);
  const words = 256 * 1024 * 1024;
  const buffer = driver.allocAsync(words * 4, lane.stream);
  try {
    // One fill's time on this device, to size the queue.
    const t0 = performance.now();
    driver.fillAsync(buffer, 1, words, lane.stream);
    driver.streamSynchronize(lane.stream);
    const one = Math.max(performance.now() - t0, 0.05);
    for (let i = 0; i < Math.ceil(ms / one); i++) driver.fillAsync(buffer, i, words, lane.stream);
    const cpu0 = threadCpuNs();
    const wall0 = performance.now();
    driver.streamSynchronize(lane.stream);
    return { cpuMs: (threadCpuNs() - cpu0) / 1e6, wallMs: performance.now() - wall0, read: lane.schedule() };
  } finally {
    driver.freeAsync(buffer, lane.stream);
    driver.streamSynchronize(lane.stream);
  }
}

Deno.test({
  name: "CUDA sync: 'blocking' sleeps while the GPU works, 'spin' keeps the core (thread CPU time from the OS)",
  ignore: skipReason !== null,
  fn() {
    const spin = waitOnGpu("spin", 200);
    const blocking = waitOnGpu("blocking", 200);
    console.log(
      `spin: ${spin.cpuMs.toFixed(1)} ms CPU in ${spin.wallMs.toFixed(1)} ms; blocking: ${
        blocking.cpuMs.toFixed(1)
      } ms CPU in ${blocking.wallMs.toFixed(1)} ms`,
    );
    assert.equal(spin.read, "spin");
    assert.equal(blocking.read, "blocking");
    assert.ok(spin.wallMs > 50 && blocking.wallMs > 50, "the queued work kept the GPU busy");
    assert.ok(spin.cpuMs > 0.7 * spin.wallMs, "a spinning wait keeps its core");
    assert.ok(blocking.cpuMs < 0.2 * blocking.wallMs, "a blocking wait leaves its core");
  },
});
