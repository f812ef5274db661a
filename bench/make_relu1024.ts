/**
 * Generates a model that costs ONNX Runtime next to nothing: one `Relu` from `x: float32[batch, 1024]` to
 * `y: float32[batch, 1024]`, the 8×1024 MLP's signature (bench/make_mlp8x1024.ts). With it, a load test measures the
 * runtime's own work per request (HTTP threads, isolates, rings), not the model's:
 *
 *   deno run --allow-read --allow-write bench/make_relu1024.ts [out.onnx]
 *   MODEL=bench/.models/relu1024.onnx bash scripts/thread_acct.sh bin 2 2 2 64
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import { encodeBenchModel } from "./make_mlp8x1024.ts";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** Where the generated model goes by default (ignored by git). */
export const defaultRelu1024Path: string = fileURLToPath(new URL("./.models/relu1024.onnx", import.meta.url));

/** The model's bytes: `y = Relu(x)`, both `float32[batch, 1024]`. */
export function buildRelu1024(): Uint8Array {
  const io = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "batch" }, { dimValue: 1024 }] } } },
    });
  const graph = onnx.GraphProto.create({
    name: "relu1024",
    node: [{ opType: "Relu", input: ["x"], output: ["y"] }],
    input: [io("x")],
    output: [io("y")],
  });
  return encodeBenchModel(graph);
}

if (import.meta.main) {
  const path = Deno.args[0] ?? defaultRelu1024Path;
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeFile(path, buildRelu1024());
  console.log(`wrote ${path}`);
}
