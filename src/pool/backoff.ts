/**
 * Exponential back-off for respawning isolates that crash or fail to start.
 * @module
 */

/** Delay before the next respawn after `failures` consecutive failures: 0, 100 ms, 200 ms, ... up to `maxMs`. */
export function backoffDelay(failures: number, { baseMs = 100, maxMs = 10_000 } = {}): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** (failures - 1));
}
