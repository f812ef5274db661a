import assert from "node:assert/strict";
import { decideBatch } from "./batcher.ts";

Deno.test("batcher: without batching every request goes alone", () => {
  assert.deepEqual(decideBatch([3, 1], 0, undefined), { send: 1 });
  assert.deepEqual(decideBatch([], 0, undefined), { waitMs: Infinity });
});

Deno.test("batcher: fills up to maxBatchSize rows, in arrival order", () => {
  assert.deepEqual(decideBatch([1, 1, 1], 0, { maxBatchSize: 2 }), { send: 2 });
  assert.deepEqual(decideBatch([2, 3, 1], 0, { maxBatchSize: 4 }), { send: 1 });
  // A request larger than the batch goes alone rather than never.
  assert.deepEqual(decideBatch([9, 1], 0, { maxBatchSize: 4 }), { send: 1 });
});

Deno.test("batcher: waits for more until the oldest has waited maxQueueDelayMs", () => {
  assert.deepEqual(decideBatch([1, 1], 0.5, { maxBatchSize: 8, maxQueueDelayMs: 2 }), { waitMs: 1.5 });
  assert.deepEqual(decideBatch([1, 1], 2, { maxBatchSize: 8, maxQueueDelayMs: 2 }), { send: 2 });
  // No delay configured: send what is queued.
  assert.deepEqual(decideBatch([1, 1], 0, { maxBatchSize: 8 }), { send: 2 });
});

Deno.test("batcher: a preferred batch size is sent at once", () => {
  assert.deepEqual(decideBatch([2, 2, 2], 0, { maxBatchSize: 8, maxQueueDelayMs: 5, preferredBatchSizes: [4] }), {
    send: 2,
  });
});

Deno.test("batcher: a lone request with no delay goes at once, even when it has waited no time at all", () => {
  // maxQueueDelayMs 0 (Triton's default) must never hold a request: the pump asks as soon as it arrives.
  assert.deepEqual(decideBatch([1], 0, { maxBatchSize: 64, maxQueueDelayMs: 0 }), { send: 1 });
  assert.deepEqual(decideBatch([1], 0, { maxBatchSize: 64 }), { send: 1 });
});
