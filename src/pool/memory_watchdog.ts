/**
 * Ends process hosts whose resident memory passes their limit, or whose
 * request runs past its CPU time. The V8 heap flag bounds only the heap;
 * `ArrayBuffer`s and native allocations are bounded here. One timer serves
 * every watched host.
 * @module
 */

/** A host the watchdog can measure and end. */
export interface Watched {
  residentBytes(): number | undefined;
  exceeded(residentMb: number): void;
  /** Checks the CPU time of the request in progress against its limit (ends the host past it). */
  checkCpuTime(): void;
}

/** How often resident memory is read, in milliseconds. */
export const watchIntervalMs = 100;

const watched = new Map<Watched, number>();
let timer: ReturnType<typeof setInterval> | undefined;

function check(): void {
  for (const [host, limitMb] of watched) {
    const bytes = host.residentBytes();
    if (bytes === undefined) continue;
    const mb = Math.round(bytes / 2 ** 20);
    if (mb > limitMb) {
      watched.delete(host);
      host.exceeded(mb);
      continue;
    }
    host.checkCpuTime();
  }
  if (watched.size === 0) {
    clearInterval(timer);
    timer = undefined;
  }
}

/** Watches `host` against `limitMb`; returns the function that stops watching it. */
export function watchMemory(host: Watched, limitMb: number): () => void {
  watched.set(host, limitMb);
  if (timer === undefined) {
    const interval = setInterval(check, watchIntervalMs);
    // The watchdog alone must not keep the runtime alive.
    Deno.unrefTimer(interval);
    timer = interval;
  }
  return () => watched.delete(host);
}
