/**
 * Generates the benchmark's 8×1024 fp32 ReLU MLP: eight 1024→1024 layers (MatMul + Add, ReLU between), input
 * `x: float32[batch, 1024]`, output `y: float32[batch, 1024]`, deterministic weights (a pure function of their
 * position). About 32 MB, so it is generated, not committed: `bench/.models/` is ignored by git.
 *
 *   deno run --allow-read --allow-write bench/make_mlp8x1024.ts [out.onnx]
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** Layers and width of the generated model. */
export const wideMlpShape = { layers: 8, width: 1024 } as const;

/** Where the suite keeps the generated model (ignored by git). */
export const defaultWideMlpPath: string = fileURLToPath(new URL("./.models/mlp8x1024.onnx", import.meta.url));

function tensor(name: string, dims: number[], data: Float32Array) {
  return onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) });
}

function valueInfo(name: string, width: number) {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "batch" }, { dimValue: width }] } } },
  });
}

/**
 * The model's bytes. Weights are `sin(seed + i·0.7)` scaled so that activations stay of order one through the
 * eight layers (He-like: 2/√width); biases are small.
 */
export function buildWideMlp({ layers, width }: { layers: number; width: number } = wideMlpShape): Uint8Array {
  const scale = 2 / Math.sqrt(width);
  const fill = (n: number, seed: number, s: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.sin(seed + i * 0.7) * s;
    return out;
  };
  const node: { opType: string; input: string[]; output: string[] }[] = [];
  const initializer = [];
  let current = "x";
  for (let l = 0; l < layers; l++) {
    const last = l === layers - 1;
    node.push({ opType: "MatMul", input: [current, `w${l}`], output: [`m${l}`] });
    node.push({ opType: "Add", input: [`m${l}`, `b${l}`], output: [last ? "y" : `a${l}`] });
    if (!last) node.push({ opType: "Relu", input: [`a${l}`], output: [`h${l}`] });
    initializer.push(tensor(`w${l}`, [width, width], fill(width * width, 10 * l + 1, scale)));
    initializer.push(tensor(`b${l}`, [width], fill(width, 10 * l + 2, 0.01)));
    current = `h${l}`;
  }
  const graph = onnx.GraphProto.create({
    name: `mlp${layers}x${width}`,
    node,
    initializer,
    input: [valueInfo("x", width)],
    output: [valueInfo("y", width)],
  });
  return encodeBenchModel(graph);
}

/** A bench model's bytes: `graph` in an ONNX model of IR version 8, opset 17 (what every bench model here uses). */
export function encodeBenchModel(graph: InstanceType<typeof onnx.GraphProto>): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane-bench",
    opsetImport: [{ domain: "", version: 17 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Writes the model to `path` unless a file of the right size is there already; returns the path. */
export async function ensureWideMlp(path: string = defaultWideMlpPath): Promise<string> {
  const bytes = buildWideMlp();
  const existing = await Deno.stat(path).catch(() => null);
  if (existing?.size === bytes.length) return path;
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeFile(path, bytes);
  return path;
}

if (import.meta.main) {
  const path = await ensureWideMlp(Deno.args[0] ?? defaultWideMlpPath);
  console.log(`wrote ${path} (${(await Deno.stat(path)).size} bytes)`);
}
