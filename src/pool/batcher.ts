/**
 * Triton's dynamic batcher as a policy: given the requests waiting (oldest
 * first, with their rows), how many to send to a free isolate now, or how long
 * to wait for more. Pure, so it is tested on its own.
 * @module
 */
import type { DynamicBatching } from "../sdk.ts";

/** What the batcher decides. */
export type BatchDecision = { send: number } | { waitMs: number };

/**
 * Decides the next batch. Without batching every request goes alone. With
 * it, requests are taken in arrival order while their rows fit `maxBatchSize`
 * (a request larger than that goes alone); the batch is sent at once when it
 * is full or reaches a preferred size, or when the oldest request has waited
 * `maxQueueDelayMs`; otherwise the answer is how long to wait.
 *
 * @example
 * ```ts
 * decideBatch([1, 1, 1], 0, { maxBatchSize: 2 }); // { send: 2 }
 * decideBatch([1], 0, { maxBatchSize: 8, maxQueueDelayMs: 2 }); // { waitMs: 2 }
 * ```
 */
export function decideBatch(
  rows: readonly number[],
  oldestWaitedMs: number,
  batching: DynamicBatching | undefined,
): BatchDecision {
  if (rows.length === 0) return { waitMs: Infinity };
  if (!batching) return { send: 1 };
  const { maxBatchSize, maxQueueDelayMs = 0, preferredBatchSizes = [] } = batching;
  let count = 0;
  let total = 0;
  while (count < rows.length && (count === 0 || total + rows[count] <= maxBatchSize)) {
    total += rows[count];
    count++;
    if (preferredBatchSizes.includes(total)) return { send: count };
  }
  if (total >= maxBatchSize || count < rows.length) return { send: count };
  const waitMs = maxQueueDelayMs - oldestWaitedMs;
  return waitMs <= 0 ? { send: count } : { waitMs };
}
