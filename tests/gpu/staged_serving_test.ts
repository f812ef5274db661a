/**
 * Serving from CUDA lanes without copies between JS memory and pinned
 * staging (issue 15): a `runModel` function's batches are written straight
 * into the lane's pinned arena and cut straight out of it, and give the CPU's
 * answers; a hand-written handler that keeps every tensor it saw still has
 * them intact later (no pinned view ever reaches it). Skipped, with one line
 * saying why, where no GPU is usable.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertClose, mlpInput, mlpReference } from "../support/mlp_reference.ts";
import { startServer, type TestServer } from "../support/server.ts";
import { infer } from "../support/triton_client.ts";
import { skipReason } from "./gpu_support.ts";

const ignore = skipReason !== null;
const tf32 = 5e-3;

// deno-lint-ignore no-explicit-any
type Json = any;

const signature = `{
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  }`;

const fastSource = `import { defineFunction, runModel } from "isolane";
export default defineFunction({
  description: "mlp, run by the runtime",
  models: { mlp: "mlp.onnx" },
  signature: ${signature},
  device: "cuda",
  instances: 2,
  dynamicBatching: { maxBatchSize: 64, maxQueueDelayMs: 1 },
  queueDepth: 4096,
  handler: runModel("mlp"),
});
`;

// Keeps every tensor it was given and got back, with a copy of its data; each call checks that all of them still
// hold what they held. A pinned view in its hands would change under it with the next batch.
const keeperSource = `import { defineFunction } from "isolane";
const kept = [];
function check() {
  for (const [tensor, copy, what] of kept) {
    const data = tensor.data;
    if (data.length !== copy.length || data.some((v, i) => !Object.is(v, copy[i]))) {
      throw new Error("a " + what + " tensor kept from an earlier call changed");
    }
  }
}
export default defineFunction({
  description: "mlp, by a handler that keeps what it saw",
  models: { mlp: "mlp.onnx" },
  signature: ${signature},
  device: "cuda",
  instances: 2,
  dynamicBatching: { maxBatchSize: 64, maxQueueDelayMs: 1 },
  queueDepth: 4096,
  async handler({ x }, { models }) {
    check();
    const out = await models.mlp.run({ x });
    kept.push([x, x.data.slice(), "input"], [out.y, out.y.data.slice(), "output"]);
    if (kept.length > 4000) kept.splice(0, 2000);
    return out;
  },
});
`;

async function withFunctions(fn: (server: TestServer) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-gpu-staged-" });
  const mlp = await Deno.readFile(new URL("../../functions/mlp/mlp.onnx", import.meta.url));
  try {
    for (const [name, source] of [["fast", fastSource], ["keeper", keeperSource]]) {
      await Deno.mkdir(join(dir, name));
      await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
      await Deno.writeFile(join(dir, name, "mlp.onnx"), mlp);
    }
    await using server = await startServer({ functionsDir: dir });
    await fn(server);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function post(server: TestServer, name: string, x: number[][]): Promise<number[][]> {
  const response = await server.invoke(name, { x });
  const json: Json = await response.json();
  assert.equal(response.status, 200, `${name}: ${JSON.stringify(json)}`);
  return json.y;
}

Deno.test({
  name:
    "gpu staged: runModel batches staged in the lane's pinned arena equal the CPU; kept handler tensors never change",
  ignore,
  fn: () =>
    withFunctions(async (server) => {
      for (let round = 0; round < 3; round++) {
        const requests = Array.from({ length: 300 }, (_, i) => mlpInput(round * 1000 + i, 1 + (i % 3)));
        const answers = await Promise.all(requests.flatMap((x, i) => [
          post(server, "fast", x).then((y) => assertClose(y, mlpReference(x), tf32, `fast ${round}/${i}`)),
          post(server, "keeper", x).then((y) => assertClose(y, mlpReference(x), tf32, `keeper ${round}/${i}`)),
        ]));
        assert.equal(answers.length, 600);
      }
      // KServe v2 binary in and out, through the same path.
      const x = mlpInput(7, 5);
      const v2 = await Promise.all(Array.from({ length: 64 }, () =>
        infer(server.url, "fast", [{
          name: "x",
          shape: [5, 4],
          datatype: "FP32",
          data: Float32Array.from(x.flat()),
        }])));
      for (const answer of v2) {
        assert.equal(answer.status, 200, answer.error ?? "");
        const bytes = answer.result!.outputs.get("y")!.bytes!;
        const y = Array.from(new Float32Array(bytes.slice().buffer));
        assertClose(Array.from({ length: 5 }, (_, r) => y.slice(r * 3, r * 3 + 3)), mlpReference(x), tf32, "v2");
      }
      for (const name of ["fast", "keeper"]) {
        const info: Json = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
        assert.ok(Math.max(...info.recentBatchSizes) > 1, `${name}: batches formed: ${info.recentBatchSizes}`);
        assert.equal(info.isolates.every((i: Json) => i.restarts === 0), true, JSON.stringify(info.isolates));
      }
    }),
});
