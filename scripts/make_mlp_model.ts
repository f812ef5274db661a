/**
 * Generates `functions/mlp/mlp.onnx`: a two-layer perceptron (4 → 16 → 3,
 * ReLU between) with a dynamic batch dimension and fixed, reproducible weights.
 * Run with `deno task models`; `--check` exits 1 if the file on disk differs.
 * @module
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** Layer sizes of the generated model. */
export const mlpShape = { inputs: 4, hidden: 16, outputs: 3 } as const;

/** Deterministic weights: the model's numbers are a pure function of their position. */
export function mlpWeights() {
  const { inputs, hidden, outputs } = mlpShape;
  const fill = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 0.7) * 0.5);
  return {
    w1: fill(inputs * hidden, 1),
    b1: fill(hidden, 2),
    w2: fill(hidden * outputs, 3),
    b2: fill(outputs, 4),
  };
}

function tensor(name: string, dims: number[], data: Float32Array) {
  return onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) });
}

function valueInfo(name: string, width: number) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "batch" }, { dimValue: width }] } },
    },
  });
}

/** The model's bytes. */
export function buildMlpModel(): Uint8Array {
  const { inputs, hidden, outputs } = mlpShape;
  const w = mlpWeights();
  const graph = onnx.GraphProto.create({
    name: "mlp",
    node: [
      { opType: "MatMul", input: ["x", "w1"], output: ["h0"] },
      { opType: "Add", input: ["h0", "b1"], output: ["h1"] },
      { opType: "Relu", input: ["h1"], output: ["h2"] },
      { opType: "MatMul", input: ["h2", "w2"], output: ["y0"] },
      { opType: "Add", input: ["y0", "b2"], output: ["y"] },
    ],
    initializer: [
      tensor("w1", [inputs, hidden], w.w1),
      tensor("b1", [hidden], w.b1),
      tensor("w2", [hidden, outputs], w.w2),
      tensor("b2", [outputs], w.b2),
    ],
    input: [valueInfo("x", inputs)],
    output: [valueInfo("y", outputs)],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane",
    opsetImport: [{ domain: "", version: 17 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

if (import.meta.main) {
  const target = new URL("../functions/mlp/mlp.onnx", import.meta.url);
  const bytes = buildMlpModel();
  if (Deno.args.includes("--check")) {
    const current = await Deno.readFile(target).catch(() => new Uint8Array());
    const same = current.length === bytes.length && current.every((b, i) => b === bytes[i]);
    console.log(same ? "mlp.onnx is current" : "mlp.onnx is stale: run deno task models");
    Deno.exit(same ? 0 : 1);
  }
  await Deno.writeFile(target, bytes);
  console.log(`wrote ${target.pathname} (${bytes.length} bytes)`);
}
