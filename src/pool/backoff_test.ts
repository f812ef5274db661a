import assert from "node:assert/strict";
import { backoffDelay } from "./backoff.ts";

Deno.test("backoff starts at zero, doubles, and is capped", () => {
  assert.deepEqual([0, 1, 2, 3, 4].map((n) => backoffDelay(n)), [0, 100, 200, 400, 800]);
  assert.equal(backoffDelay(30), 10_000);
  assert.equal(backoffDelay(3, { baseMs: 10, maxMs: 25 }), 25);
});
