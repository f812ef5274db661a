/**
 * Dynamic batching: concurrent requests to `mlp` run as combined model calls,
 * and every answer equals the same request sent alone; a bad request in a
 * batch fails alone.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { errorOf, startServer } from "./support/server.ts";
import { mlpInput } from "./support/mlp_reference.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));

Deno.test("batching: 600 concurrent requests of 1-3 rows each equal the same requests sent alone", async () => {
  await using server = await startServer({ functionsDir });
  const requests = Array.from({ length: 600 }, (_, i) => mlpInput(i, 1 + (i % 3)));
  const alone: unknown[] = [];
  for (const x of requests.slice(0, 600)) {
    const response = await server.invoke("mlp", { x });
    assert.equal(response.status, 200);
    alone.push(await response.json());
  }
  const before = await (await fetch(`${server.url}/v1/functions/mlp`)).json();
  assert.ok(before.recentBatchSizes.every((n: number) => n === 1), "sequential requests run alone");
  // Every 50th request is malformed: it must fail alone, not take its batch with it.
  const together = await Promise.all(requests.map(async (x, i) => {
    const response = await server.invoke("mlp", i % 50 === 7 ? { x: [[1, 2]] } : { x });
    return i % 50 === 7 ? { status: response.status, error: await errorOf(response) } : await response.json();
  }));
  for (let i = 0; i < requests.length; i++) {
    if (i % 50 === 7) {
      assert.equal((together[i] as { status: number }).status, 400);
      continue;
    }
    assert.deepEqual(together[i], alone[i], `request ${i}`);
  }
  const after = await (await fetch(`${server.url}/v1/functions/mlp`)).json();
  assert.ok(Math.max(...after.recentBatchSizes) > 1, `batches formed: ${after.recentBatchSizes}`);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /isolane_batch_size_bucket\{le="1",function="mlp"\} \d+/);
});
