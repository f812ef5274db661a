/**
 * ONNX models generated in memory with onnx-proto for the binding's tests,
 * the GPU tests and `scripts/ort_native_bench.ts`. Not used by the runtime.
 * @module
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** Options of {@link denseReluModel}. */
export interface DenseReluOptions {
  /** Number of `MatMul → Add → Relu` layers. */
  layers: number;
  /** Width of every layer (input and output too). */
  width: number;
  /** A fixed batch size, or a symbolic one (`"batch"`). */
  batch?: number | string;
}

/**
 * Deterministic weights for layer `layer`: `sin`-based, scaled by
 * `1/sqrt(width)` so activations stay of order 1 through many layers.
 */
export function denseWeights(layer: number, width: number): { w: Float32Array; b: Float32Array } {
  const scale = 1 / Math.sqrt(width);
  const w = Float32Array.from({ length: width * width }, (_, i) => Math.sin(layer * 13.7 + i * 0.61) * scale);
  const b = Float32Array.from({ length: width }, (_, i) => Math.cos(layer * 3.1 + i * 0.37) * 0.1);
  return { w, b };
}

/**
 * An fp32 ReLU MLP (`layers` × `width`): input `x` [batch, width], output
 * `y` [batch, width]. `denseReluModel({ layers: 8, width: 1024 })` is the
 * 8×1024 model of the GPU benchmarks (32 MiB of weights).
 */
export function denseReluModel({ layers, width, batch = "batch" }: DenseReluOptions): Uint8Array {
  const node: { opType: string; input: string[]; output: string[]; name: string }[] = [];
  const initializer = [];
  let current = "x";
  for (let l = 0; l < layers; l++) {
    const { w, b } = denseWeights(l, width);
    initializer.push(
      onnx.TensorProto.create({ name: `w${l}`, dims: [width, width], dataType: FLOAT, rawData: bytes(w) }),
      onnx.TensorProto.create({ name: `b${l}`, dims: [width], dataType: FLOAT, rawData: bytes(b) }),
    );
    const out = l === layers - 1 ? "y" : `h${l}`;
    node.push(
      { opType: "MatMul", input: [current, `w${l}`], output: [`m${l}`], name: `matmul${l}` },
      { opType: "Add", input: [`m${l}`, `b${l}`], output: [`a${l}`], name: `add${l}` },
      { opType: "Relu", input: [`a${l}`], output: [out], name: `relu${l}` },
    );
    current = out;
  }
  const dim = (d: number | string) => (typeof d === "number" ? { dimValue: d } : { dimParam: d });
  const valueInfo = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [dim(batch), dim(width)] } } },
    });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane",
    opsetImport: [{ domain: "", version: 17 }],
    graph: onnx.GraphProto.create({
      name: "dense_relu",
      node,
      initializer,
      input: [valueInfo("x")],
      output: [valueInfo("y")],
    }),
  });
  return onnx.ModelProto.encode(model).finish();
}

/** The same MLP in plain JS (float64 accumulation), for checks. */
export function denseReluReference(x: Float32Array, rows: number, { layers, width }: DenseReluOptions): Float32Array {
  let current = x;
  for (let l = 0; l < layers; l++) {
    const { w, b } = denseWeights(l, width);
    const next = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < width; j++) {
        let sum = b[j];
        for (let i = 0; i < width; i++) sum += current[r * width + i] * w[i * width + j];
        next[r * width + j] = Math.max(0, sum);
      }
    }
    current = next;
  }
  return current;
}

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Writes `model` to a new temporary folder and returns the file's path. */
export async function writeTempModel(model: Uint8Array, name = "model.onnx"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-ort-" });
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, model);
  return path;
}
