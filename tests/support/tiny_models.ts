/**
 * Tiny ONNX models for the KServe v2 tests, built with onnx-proto: an FP16
 * model (y = x + x), an INT64 model (y = x + 1) and a "detector" that keeps the rows of its input whose
 * first column is above 0.5 (so it can find nothing: an output of shape
 * [0, 3]).
 * @module
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
const { FLOAT, FLOAT16, INT64, STRING } = onnx.TensorProto.DataType;

function valueInfo(name: string, elemType: number, width: number) {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType, shape: { dim: [{ dimParam: "batch" }, { dimValue: width }] } } },
  });
}

function model(graph: InstanceType<typeof onnx.GraphProto>): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, producerName: "isolane-tests", opsetImport: [{ version: 17 }], graph }),
  ).finish();
}

/** FP16 `x` [n, 3] → FP16 `y = x + x` [n, 3]. */
export function doubleFp16Model(): Uint8Array {
  return model(onnx.GraphProto.create({
    name: "double_fp16",
    node: [{ opType: "Add", input: ["x", "x"], output: ["y"] }],
    input: [valueInfo("x", FLOAT16, 3)],
    output: [valueInfo("y", FLOAT16, 3)],
  }));
}

/** INT64 `x` [n] → INT64 `y = x + 1` [n]. */
export function incrementInt64Model(): Uint8Array {
  const vector = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: INT64, shape: { dim: [{ dimParam: "n" }] } } },
    });
  return model(onnx.GraphProto.create({
    name: "increment_int64",
    node: [{ opType: "Add", input: ["x", "one"], output: ["y"] }],
    initializer: [
      onnx.TensorProto.create({
        name: "one",
        dims: [],
        dataType: INT64,
        rawData: new Uint8Array(BigInt64Array.of(1n).buffer),
      }),
    ],
    input: [vector("x")],
    output: [vector("y")],
  }));
}

/**
 * STRING `text` [n] → STRING `shout` [n]: each string with "!" appended by
 * ORT's `StringConcat` (opset 20). String tensors, which isolane's C API
 * binding does not carry, so the model runs through onnxruntime-node.
 */
export function shoutStringsModel(): Uint8Array {
  const vector = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: STRING, shape: { dim: [{ dimParam: "n" }] } } },
    });
  const graph = onnx.GraphProto.create({
    name: "shout_strings",
    node: [{ opType: "StringConcat", input: ["text", "bang"], output: ["shout"] }],
    initializer: [
      onnx.TensorProto.create({
        name: "bang",
        dims: [],
        dataType: STRING,
        stringData: [new TextEncoder().encode("!")],
      }),
    ],
    input: [vector("text")],
    output: [vector("shout")],
  });
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 9, producerName: "isolane-tests", opsetImport: [{ version: 20 }], graph }),
  ).finish();
}

/** FP32 `candidates` [n, 3] → FP32 `boxes` [k, 3]: the rows whose first column is above 0.5. */
export function detectorModel(): Uint8Array {
  const scalar = (name: string, dataType: number, bytes: ArrayBuffer) =>
    onnx.TensorProto.create({ name, dims: [], dataType, rawData: new Uint8Array(bytes) });
  return model(onnx.GraphProto.create({
    name: "detector",
    node: [
      {
        opType: "Gather",
        input: ["candidates", "zero"],
        output: ["score"],
        attribute: [{ name: "axis", i: 1, type: 2 }],
      },
      { opType: "Greater", input: ["score", "threshold"], output: ["keep"] },
      {
        opType: "Compress",
        input: ["candidates", "keep"],
        output: ["boxes"],
        attribute: [{ name: "axis", i: 0, type: 2 }],
      },
    ],
    initializer: [
      scalar("zero", INT64, BigInt64Array.of(0n).buffer),
      scalar("threshold", FLOAT, Float32Array.of(0.5).buffer),
    ],
    input: [valueInfo("candidates", FLOAT, 3)],
    output: [valueInfo("boxes", FLOAT, 3)],
  }));
}

/**
 * A functions folder for the v2 tests: the repo's mlp, the `strings` and
 * `dtypes` fixtures, and the `fp16`, `detector`, `int64` and `shout` fixtures
 * with their models generated here. Returns its path; the caller removes it.
 */
export async function v2FunctionsDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-v2-" });
  const copy = async (from: URL, name: string, files: string[]) => {
    await Deno.mkdir(`${dir}/${name}`);
    for (const file of files) await Deno.copyFile(new URL(file, from), `${dir}/${name}/${file}`);
  };
  await copy(new URL("../../functions/mlp/", import.meta.url), "mlp", ["mod.ts", "mlp.onnx"]);
  await copy(new URL("../fixtures/functions/strings/", import.meta.url), "strings", ["mod.ts"]);
  await copy(new URL("../fixtures/functions/dtypes/", import.meta.url), "dtypes", ["mod.ts"]);
  await copy(new URL("../fixtures/v2/fp16/", import.meta.url), "fp16", ["mod.ts"]);
  await copy(new URL("../fixtures/v2/detector/", import.meta.url), "detector", ["mod.ts"]);
  await copy(new URL("../fixtures/v2/int64/", import.meta.url), "int64", ["mod.ts"]);
  await copy(new URL("../fixtures/v2/shout/", import.meta.url), "shout", ["mod.ts"]);
  await Deno.writeFile(`${dir}/fp16/double_fp16.onnx`, doubleFp16Model());
  await Deno.writeFile(`${dir}/detector/detector.onnx`, detectorModel());
  await Deno.writeFile(`${dir}/int64/increment_int64.onnx`, incrementInt64Model());
  await Deno.writeFile(`${dir}/shout/shout_strings.onnx`, shoutStringsModel());
  return dir;
}
