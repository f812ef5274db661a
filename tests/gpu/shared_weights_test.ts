/**
 * One copy of a function's weights per device (issue 15): the Worker-hosted
 * lanes of a device compute from one block of device memory that the first
 * of them uploaded. Measured from the driver's side (NVML): the device
 * memory a lane adds is less than one copy of the weights, answers equal the
 * CPU's, and a lane that crashes leaves the others (and its own respawn)
 * computing from the same copy. Skipped, with one line saying why, where no
 * GPU is usable.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { denseReluModel, denseReluReference } from "../../native/ort/test_models.ts";
import { startServer, type TestServer, until } from "../support/server.ts";
import { settledMemory, skipReason } from "./gpu_support.ts";

const ignore = skipReason !== null;
const MiB = 1024 * 1024;
/** 4 × 4096² fp32: 256 MiB of weights, far more than what a lane adds besides them. */
const shape = { layers: 4, width: 4096 };
const weightBytes = shape.layers * shape.width * shape.width * 4;
/** Rows the requests pick from, and the CPU's answers for them (fp32 on the GPU: `tf32: false`). */
const rows = 4;

// deno-lint-ignore no-explicit-any
type Json = any;

function source(instances: number): string {
  return `import { defineFunction } from "isolane";
export default defineFunction({
  description: "4×4096 MLP on ${instances} lane(s) of cuda:0",
  models: { big: "big.onnx" },
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, ${shape.width}] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, ${shape.width}] }],
  },
  device: [0],
  instances: ${instances},
  tf32: false,
  timeoutMs: 120000,
  async handler({ x }, { models }) {
    // A crash on request: the isolate ends (and is respawned); the device's other lanes must not notice.
    if (x.data[0] === -12345) self.close();
    return await models.big.run({ x });
  },
});
`;
}

function input(row: number): Float32Array {
  return Float32Array.from({ length: shape.width }, (_, i) => Math.sin(row * 2.1 + i * 0.013));
}

async function answer(server: TestServer, row: number): Promise<Float32Array> {
  const x = input(row);
  const response = await server.invoke("big", { x: [Array.from(x)] });
  const json: Json = await response.json();
  assert.equal(response.status, 200, JSON.stringify(json).slice(0, 500));
  return Float32Array.from(json.y[0]);
}

function assertClose(actual: Float32Array, expected: Float32Array, label: string): void {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i])));
  }
  assert.ok(worst < 1e-3, `${label}: differs from the CPU by ${worst}`);
}

/** Device memory the runtime adds on cuda:0 with `instances` lanes (after one request per lane), and its API view. */
async function measure(
  dir: string,
  instances: number,
  check: (server: TestServer, info: Json) => Promise<void>,
): Promise<number> {
  const before = (await settledMemory())[0];
  await using server = await startServer({ functionsDir: join(dir, `i${instances}`) });
  await Promise.all(Array.from({ length: instances * 4 }, (_, i) => answer(server, i % rows)));
  const used = (await settledMemory(5000))[0] - before;
  const info: Json = await (await fetch(`${server.url}/v1/functions/big`)).json();
  await check(server, info);
  return used;
}

Deno.test({
  name: "gpu weights: instances 4 on one device keep one copy of the weights; each lane adds less than a copy",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-gpu-weights-" });
    try {
      const model = join(dir, "big.onnx");
      await Deno.writeFile(model, denseReluModel(shape));
      for (const instances of [1, 4]) {
        await Deno.mkdir(join(dir, `i${instances}`, "big"), { recursive: true });
        await Deno.writeTextFile(join(dir, `i${instances}`, "big", "mod.ts"), source(instances));
        await Deno.link(model, join(dir, `i${instances}`, "big", "big.onnx"));
      }
      const expected = Array.from({ length: rows }, (_, r) => denseReluReference(input(r), 1, shape));

      const one = await measure(dir, 1, async (server, info) => {
        assert.equal(info.models[0].weights.shared, false);
        assert.match(info.models[0].weights.reason, /only lane on cuda:0/);
        assertClose(await answer(server, 0), expected[0], "one lane");
      });
      const four = await measure(dir, 4, async (server, info) => {
        const { weights } = info.models[0];
        assert.deepEqual({ shared: weights.shared, lanes: weights.lanes, copies: weights.copies }, {
          shared: true,
          lanes: 4,
          copies: 1,
        }, JSON.stringify(weights));
        assert.ok(weights.bytes >= weightBytes, `the shared block holds the weights: ${weights.bytes}`);
        const results = await Promise.all(Array.from({ length: 32 }, (_, i) => answer(server, i % rows)));
        results.forEach((y, i) => assertClose(y, expected[i % rows], `request ${i}`));
        const served = (await (await fetch(`${server.url}/v1/functions/big`)).json()).isolates.map((i: Json) =>
          i.served
        );
        assert.ok(served.every((n: number) => n > 0), `every lane served: ${served}`);

        // A lane that ends must not take the weights with it: the others, and its respawn, still compute from them.
        const crash = await server.invoke("big", { x: [[-12345, ...new Array(shape.width - 1).fill(0)]] });
        await crash.body?.cancel();
        assert.equal(crash.status, 500);
        await until(
          server,
          "big",
          (f) => f.isolates.some((i: Json) => i.restarts > 0) && f.isolates.every((i: Json) => i.status === "ready"),
        );
        const after = await Promise.all(Array.from({ length: 32 }, (_, i) => answer(server, i % rows)));
        after.forEach((y, i) => assertClose(y, expected[i % rows], `after the crash, request ${i}`));
        const again: Json = await (await fetch(`${server.url}/v1/functions/big`)).json();
        assert.deepEqual(
          { shared: again.models[0].weights.shared, lanes: again.models[0].weights.lanes },
          { shared: true, lanes: 4 },
          "the respawned lane attached to the same copy",
        );
      });
      const perLane = (four - one) / 3;
      console.log(
        `  device MiB: 1 lane ${Math.round(one / MiB)}, 4 lanes ${Math.round(four / MiB)}; ` +
          `per added lane ${Math.round(perLane / MiB)} against ${weightBytes / MiB} of weights`,
      );
      assert.ok(perLane < weightBytes, `each added lane costs ${perLane / MiB} MiB, a copy is ${weightBytes / MiB}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
