/**
 * Dynamic batching on a CPU lane: a partial batch goes to the function's one isolate while that isolate's batch still
 * runs (past half the recent service time), instead of waiting for the run to end, so that the isolate has it decoded
 * by then.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, until } from "./support/server.ts";

Deno.test("batching: a partial batch reaches a busy CPU isolate while its batch runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-batch-pipeline-" });
  await Deno.mkdir(join(dir, "overlap"));
  // A row of 1 holds its call until another call starts in the same isolate (or 20 s pass); each call answers with
  // the most calls it saw running at once.
  await Deno.writeTextFile(
    join(dir, "overlap", "mod.ts"),
    `import { defineFunction, Tensor } from "isolane";
let running = 0;
let most = 0;
let started: () => void = () => {};
export default defineFunction({
  description: "Reports how many of its calls ran at once",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1] }],
  },
  dynamicBatching: { maxBatchSize: 8, maxQueueDelayMs: 0 },
  timeoutMs: 30000,
  async handler({ x }) {
    running++;
    most = Math.max(most, running);
    started();
    if (x.data[0] === 1) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20000);
        started = () => { clearTimeout(timer); resolve(); };
      });
    }
    running--;
    return { y: new Tensor("float32", new Float32Array(x.dims[0]).fill(most), [x.dims[0], 1]) };
  },
});
`,
  );
  try {
    await using server = await startServer({ functionsDir: dir });
    // A first batch that ends gives the pool a service time to go by.
    assert.deepEqual(await (await server.invoke("overlap", { x: [[0]] })).json(), { y: [[1]] });
    const a = server.invoke("overlap", { x: [[1]] });
    await until(server, "overlap", (info) => info.isolates[0].status === "busy");
    const b = server.invoke("overlap", { x: [[2]] });
    // B reached the isolate while A ran: A's call saw it start and both saw two calls at once.
    assert.deepEqual(await (await a).json(), { y: [[2]] });
    assert.deepEqual(await (await b).json(), { y: [[2]] });
    const info = await (await fetch(`${server.url}/v1/functions/overlap`)).json();
    assert.deepEqual(info.recentBatchSizes, [1, 1, 1], "each request ran as a batch of its own");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
