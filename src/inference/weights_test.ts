import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import onnxProto from "onnx-proto";
import { Tensor } from "onnxruntime-common";
import { NativeSession, OrtEnv, ortLibraryPath, type Value } from "../../native/ort/mod.ts";
import { denseReluInitializers, denseReluModel } from "../../native/ort/test_models.ts";
import { minSharedWeightBytes, readModelWeights } from "./weights.ts";

const { onnx } = onnxProto;
const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));

Deno.test("readModelWeights: initializers of 64 KiB or more with their bytes, from raw data, typed fields or external files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-weights-" });
  try {
    // 128 × 128 fp32 weights are 64 KiB (shared); the 512-byte biases are not.
    const shape = { layers: 2, width: 128 };
    const path = join(dir, "mlp.onnx");
    await Deno.writeFile(path, denseReluModel(shape));
    const weights = await readModelWeights(path);
    assert.deepEqual(weights.map((w) => [w.name, w.type, w.dims]), [["w0", "float32", [128, 128]], [
      "w1",
      "float32",
      [128, 128],
    ]]);
    const expected = denseReluInitializers(shape).get("w1")!;
    assert.deepEqual(new Float32Array(weights[1].bytes.slice().buffer), expected);
    assert.equal((await readModelWeights(path, { minBytes: 0 })).length, 4);
    assert.equal(minSharedWeightBytes, 65536);

    // The same weight in float_data, and in an external file at an offset.
    const w = Float32Array.from({ length: 16384 }, (_, i) => i / 7);
    await Deno.writeFile(join(dir, "weights.bin"), new Uint8Array([...new Uint8Array(8), ...new Uint8Array(w.buffer)]));
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        initializer: [
          { name: "fields", dims: [16384], dataType: 1, floatData: Array.from(w) },
          {
            name: "external",
            dims: [128, 128],
            dataType: 1,
            dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
            externalData: [{ key: "location", value: "weights.bin" }, { key: "offset", value: "8" }, {
              key: "length",
              value: String(w.byteLength),
            }],
          },
          { name: "strings", dims: [20000], dataType: 8, stringData: [] },
        ],
      },
    });
    const other = join(dir, "other.onnx");
    await Deno.writeFile(other, onnx.ModelProto.encode(model).finish());
    const read = await readModelWeights(other);
    assert.deepEqual(read.map((r) => r.name), ["fields", "external"]);
    for (const r of read) assert.deepEqual(new Float32Array(r.bytes.slice().buffer), w, r.name);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a session given the weights readModelWeights read (AddInitializer) answers as the session that loads its own", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-weights-" });
  const env = OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
  const values: Value[] = [];
  try {
    const path = join(dir, "mlp.onnx");
    await Deno.writeFile(path, denseReluModel({ layers: 3, width: 128 }));
    const weights = await readModelWeights(path);
    const initializers = Object.fromEntries(weights.map((w) => {
      const value = env.tensor(w.type, new Float32Array(w.bytes.slice().buffer), w.dims);
      values.push(value);
      return [w.name, value];
    }));
    const own = NativeSession.create(env, path, { provider: "cpu" });
    const shared = NativeSession.create(env, path, { provider: "cpu", initializers });
    const x = new Tensor("float32", Float32Array.from({ length: 3 * 128 }, (_, i) => Math.sin(i)), [3, 128]);
    try {
      assert.deepEqual((await shared.run({ x })).y.data, (await own.run({ x })).y.data);
    } finally {
      await shared.release();
      await own.release();
    }
  } finally {
    for (const value of values) value.close();
    env.close();
    await Deno.remove(dir, { recursive: true });
  }
});
