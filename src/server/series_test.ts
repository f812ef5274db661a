import assert from "node:assert/strict";
import { bucketMs, LastMinute, RecentSeries, windowMs } from "./series.ts";

Deno.test("RecentSeries buckets requests, latency percentiles, errors and batch sizes", () => {
  let now = 1_000 * bucketMs + 5_000;
  const series = new RecentSeries(() => now);
  for (let i = 0; i < 99; i++) series.request("f", 10, 200);
  series.request("f", 1000, 500);
  series.request("f", 3, 429);
  series.dispatch("f", 4);
  series.dispatch("f", 2);
  const s = series.snapshot([{ index: 0, name: "H200", totalBytes: 1024 ** 3, usedBytes: 512 * 1024 ** 2, lanes: 2 }]);
  assert.equal(s.time.length, windowMs / bucketMs);
  assert.equal(s.time.at(-1), (1_000 * bucketMs) / 1000);
  const f = s.functions.f;
  assert.equal(f.rate.at(-1), 101 / 5); // 5 s into the current bucket
  assert.ok(Math.abs(f.p50Ms.at(-1)! - 10) <= 1, `p50 ${f.p50Ms.at(-1)}`);
  assert.ok(f.p99Ms.at(-1)! >= 10 && f.p99Ms.at(-1)! < 12, `p99 ${f.p99Ms.at(-1)}`);
  assert.equal(f.batchSize.at(-1), 3);
  assert.equal(f.errors4xx.at(-1), 1);
  assert.equal(f.errors5xx.at(-1), 1);
  assert.equal(f.p50Ms[0], null);
  assert.equal(f.rate[0], 0);
  assert.deepEqual([s.gpus[0].usedMiB.at(-1), s.gpus[0].lanes.at(-1), s.gpus[0].totalMiB], [512, 2, 1024]);

  // A bucket moves back one slot each 10 s, and falls out of the window after 15 minutes.
  now += bucketMs;
  const later = series.snapshot([]).functions.f;
  assert.equal(later.errors5xx.at(-2), 1);
  assert.equal(later.errors5xx.at(-1), 0);
  now += windowMs;
  const gone = series.snapshot([]).functions.f;
  assert.ok(gone.errors5xx.every((v) => v === 0) && gone.p50Ms.every((v) => v === null));
});

Deno.test("LastMinute counts the last 60 seconds, with latency percentiles, and forgets older seconds", () => {
  let now = 5_000_000;
  const minute = new LastMinute(() => now);
  for (let i = 0; i < 98; i++) minute.request("f", 2);
  minute.request("f", 40);
  minute.request("f", 40);
  now += 30_000;
  minute.request("g", 1);
  let s = minute.summary();
  assert.equal(s.f.requests, 100);
  assert.equal(s.f.perSecond, 1.67);
  assert.ok(Math.abs(s.f.p50Ms - 2) <= 0.2, `p50 ${s.f.p50Ms}`);
  assert.ok(s.f.p99Ms >= 40 && s.f.p99Ms <= 44, `p99 ${s.f.p99Ms}`);
  assert.equal(s.g.requests, 1);
  // 60 s after f's requests their second has left the window; g's has not. The slot is reused, not added to.
  now += 30_000;
  minute.request("f", 10);
  s = minute.summary();
  assert.equal(s.f.requests, 1);
  assert.ok(Math.abs(s.f.p50Ms - 10) <= 1, `p50 ${s.f.p50Ms}`);
  now += 30_001;
  s = minute.summary();
  assert.equal(s.g, undefined);
  assert.equal(s.f.requests, 1);
});
