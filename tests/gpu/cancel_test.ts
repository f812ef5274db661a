/**
 * A timed-out request whose native run still holds a CUDA lane's isolate:
 * the host terminates the run from its own thread (RunOptionsSetTerminate),
 * so the isolate is kept and serves the next request at once. Skipped, with
 * one line saying why, where no GPU is usable.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { skipReason } from "./gpu_support.ts";
import { errorOf, startServer, until } from "../support/server.ts";

const width = 4096;
const layers = 1024;

/** 1,024 fp32 MatMuls of one shared 4096×4096 weight: seconds of GPU work at 4,096 rows, milliseconds at one. */
function slowModel(): Uint8Array {
  const { onnx } = onnxProto;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const w = new Float32Array(width * width).fill(1 / width);
  const io = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "n" }, { dimValue: width }] } } },
    });
  const node = Array.from({ length: layers }, (_, i) => ({
    opType: "MatMul",
    input: [i === 0 ? "x" : `h${i}`, "w"],
    output: [i === layers - 1 ? "y" : `h${i + 1}`],
  }));
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ version: 17 }],
    graph: {
      name: "slow",
      node,
      initializer: [
        onnx.TensorProto.create({
          name: "w",
          dims: [width, width],
          dataType: FLOAT,
          rawData: new Uint8Array(w.buffer),
        }),
      ],
      input: [io("x")],
      output: [io("y")],
    },
  })).finish();
}

Deno.test({
  name: "gpu 7: a run whose requests all timed out is terminated by the host; the isolate is kept and serves at once",
  ignore: skipReason !== null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-cancel-" });
    try {
      await Deno.mkdir(join(dir, "slow"));
      await Deno.writeFile(join(dir, "slow", "m.onnx"), slowModel());
      await Deno.writeTextFile(
        join(dir, "slow", "mod.ts"),
        `import { defineFunction, Tensor, z } from "isolane";
export default defineFunction({
  description: "A long GPU run at many rows",
  input: z.object({ n: z.number().int().min(1).max(${width}) }),
  output: z.object({ rows: z.number() }),
  models: { m: "m.onnx" },
  device: "cuda",
  tf32: false,
  timeoutMs: 800,
  abortGraceMs: 60000,
  async handler({ n }, { models }) {
    const { y } = await models.m.run({ x: new Tensor("float32", new Float32Array(n * ${width}), [n, ${width}]) });
    return { rows: y.dims[0] };
  },
});
`,
      );
      await using server = await startServer({ functionsDir: dir });
      await until(server, "slow", (info) => info.status === "ready", 120_000);
      assert.deepEqual(await (await server.invoke("slow", { n: 1 })).json(), { rows: 1 });
      const started = Date.now();
      const long = await errorOf(await server.invoke("slow", { n: width }));
      assert.equal(long.status, 504);
      await server.waitForLog((l) => l.msg === "run terminated" && l.function === "slow");
      // The isolate is free again well before the long run could have ended: the next request is answered.
      const next = await server.invoke("slow", { n: 1 });
      assert.equal(next.status, 200, JSON.stringify(await next.clone().json()));
      assert.deepEqual(await next.json(), { rows: 1 });
      console.log(`long run: 504 then the next 200 after ${Date.now() - started} ms`);
      const info = await (await fetch(`${server.url}/v1/functions/slow`)).json();
      assert.equal(info.isolates[0].restarts, 0, "the isolate was kept");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
