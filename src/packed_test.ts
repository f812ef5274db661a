import assert from "node:assert/strict";
import { packJobs, unpackJobs } from "./packed.ts";
import type { Job } from "./protocol.ts";

Deno.test("jobs on an arena pack to numbers and strings and unpack as they were; other jobs stay objects", () => {
  const empty = new ArrayBuffer(0);
  const shared = (i: number): Job => ({
    id: 10 + i,
    body: empty,
    ...(i % 2 ? { requestId: `req-${i}` } : {}),
    shared: [
      { name: "x", datatype: "FP32", shape: [1, 4], offset: 256 * i, bytes: 16 },
      { name: "mask", datatype: "BOOL", shape: [i], offset: 4096 + i, bytes: i },
    ],
    reply: { link: 3, id: 100 + i },
  });
  const plain: Job = { id: 1, body: new TextEncoder().encode("{}").buffer as ArrayBuffer };
  const jobs = [shared(0), plain, shared(1), shared(2)];
  const { jobs: rest, packed } = packJobs(jobs);
  assert.deepEqual(rest, [plain]);
  assert.ok(packed && packed.nums.every((n) => typeof n === "number"));
  assert.deepEqual(unpackJobs(packed), [shared(0), shared(1), shared(2)]);
  assert.deepEqual(packJobs([plain]), { jobs: [plain] });
});
