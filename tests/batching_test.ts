/**
 * Dynamic batching: concurrent requests to `mlp` run as combined model calls,
 * and every answer equals the same request sent alone; a bad request in a
 * batch fails alone.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { errorOf, startServer, until } from "./support/server.ts";
import { mlpInput, mlpReference } from "./support/mlp_reference.ts";
import { readJsonAnswer } from "./support/raw_http.ts";

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

Deno.test("batching: requests that reach an idle function together leave as one batch, not the first alone", async () => {
  await using server = await startServer({ functionsDir });
  const { hostname, port } = new URL(server.url);
  const encoder = new TextEncoder();
  const firstBatches: number[] = [];
  // Whether the requests' bodies reach the server in one turn of its event loop is up to the kernel and the load:
  // a few rounds. A pump per request sent the first alone to an idle isolate in every round.
  for (let round = 0; round < 5 && !firstBatches.some((n) => n > 1); round++) {
    const rows = Array.from({ length: 16 }, (_, i) => mlpInput(round * 16 + i, 1));
    const conns = await Promise.all(rows.map(() => Deno.connect({ hostname, port: Number(port) })));
    const requests = rows.map((x) => {
      const body = JSON.stringify({ x });
      return encoder.encode(
        `POST /v1/functions/mlp HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\n` +
          `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    // Every connection is open before any request is written: the writes follow each other at once.
    await Promise.all(conns.map((conn, i) => conn.write(requests[i])));
    const answers = await Promise.all(conns.map((conn) => readJsonAnswer(conn).finally(() => conn.close())));
    for (const [i, answer] of answers.entries()) {
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const [got] = (answer.body as { y: number[][] }).y;
      const [want] = mlpReference(rows[i]);
      for (let k = 0; k < want.length; k++) assert.ok(Math.abs(got[k] - want[k]) < 1e-4, `request ${i}: ${got}`);
    }
    // The round's batches are the last ones, 16 requests in all; the first of them met an idle function.
    const sizes: number[] = (await (await fetch(`${server.url}/v1/functions/mlp`)).json()).recentBatchSizes;
    let left = 16;
    let first = sizes.length;
    while (left > 0) left -= sizes[--first];
    assert.equal(left, 0, `the round's batches hold its 16 requests: ${sizes}`);
    firstBatches.push(sizes[first]);
  }
  assert.ok(firstBatches.some((n) => n > 1), `the first batch of each round: ${firstBatches}`);
});

Deno.test("batching: a request whose deadline passes while its batch runs gets 504 alone; the rest are answered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-batch-deadline-" });
  await Deno.mkdir(join(dir, "gate", "state"), { recursive: true });
  // Each row's value names a marker file; the batch runs until every marker it names exists.
  await Deno.writeTextFile(
    join(dir, "gate", "mod.ts"),
    `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Waits for the markers its rows name",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1] }],
  },
  dynamicBatching: { maxBatchSize: 8, maxQueueDelayMs: 0 },
  timeoutMs: 1500,
  abortGraceMs: 60000,
  async handler({ x }) {
    for (const v of new Set(x.data as Float32Array)) {
      const marker = new URL("./state/m" + v, import.meta.url);
      while (!(await Deno.stat(marker).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 10));
    }
    return { y: x };
  },
});
`,
  );
  const marker = (v: number) => Deno.writeTextFile(join(dir, "gate", "state", `m${v}`), "go");
  try {
    await using server = await startServer({ functionsDir: dir });
    // C holds the isolate; A and B queue behind it and then run as one batch.
    const c = server.invoke("gate", { x: [[1]] });
    await until(server, "gate", (info) => info.isolates[0].status === "busy");
    const a = server.invoke("gate", { x: [[2]] });
    await until(server, "gate", (info) => info.queued === 1);
    // B arrives later than A, so its deadline is later too (the arrival gap is the test's input, not a wait).
    await new Promise((resolve) => setTimeout(resolve, 700));
    const b = server.invoke("gate", { x: [[2]] });
    await until(server, "gate", (info) => info.queued === 2);
    await marker(1);
    assert.deepEqual(await (await c).json(), { y: [[1]] });
    // The batch {A, B} now waits for marker 2; A's deadline passes meanwhile and A alone gets its 504.
    const aResponse = await a;
    assert.equal(aResponse.status, 504);
    await aResponse.body?.cancel();
    await marker(2);
    const bResponse = await b;
    assert.equal(bResponse.status, 200);
    assert.deepEqual(await bResponse.json(), { y: [[2]] });
    const info = await (await fetch(`${server.url}/v1/functions/gate`)).json();
    assert.deepEqual(info.recentBatchSizes, [1, 2], "A and B ran as one batch");
    assert.equal(info.isolates[0].restarts, 0, "the isolate was kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
