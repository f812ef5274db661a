/**
 * What a pool reports as it works, for metrics. Optional: a pool without an
 * observer works the same.
 * @module
 */

/** Receives a pool's events. */
export interface PoolObserver {
  /** A dispatch of `size` jobs to one isolate (1 until dynamic batching). */
  dispatched(fn: string, size: number): void;
  /** An isolate stopped unplanned (`code`: timeout, isolate_crashed, ...) and will be respawned. */
  isolateStopped(fn: string, code: string): void;
}
