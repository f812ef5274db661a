/**
 * Generates a cheap benchmark model, so that the runtime (not the model) dominates a run: a single `Relu` over
 * `x: float32[batch, 1024]` giving `y: float32[batch, 1024]`, no weights. `bench/.models/` is ignored by git.
 *
 *   deno run --allow-read --allow-write bench/make_relu1024.ts [out.onnx]
 *
 * Used as `MODEL=bench/.models/relu1024.onnx bash scripts/thread_acct.sh …` (docs/hop.md, eighth round).
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** Where the model goes unless a path is given (ignored by git). */
export const defaultRelu1024Path: string = fileURLToPath(new URL("./.models/relu1024.onnx", import.meta.url));

/** The model's bytes: one `Relu` node, input `x` and output `y` of shape `[batch, 1024]` fp32. */
export function buildRelu1024(): Uint8Array {
  const info = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "batch" }, { dimValue: 1024 }] } } },
    });
  const graph = onnx.GraphProto.create({
    name: "relu1024",
    node: [{ opType: "Relu", input: ["x"], output: ["y"] }],
    input: [info("x")],
    output: [info("y")],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane-bench",
    opsetImport: [{ domain: "", version: 17 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

if (import.meta.main) {
  const path = Deno.args[0] ?? defaultRelu1024Path;
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeFile(path, buildRelu1024());
  console.log(path);
}
