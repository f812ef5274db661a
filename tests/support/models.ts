/**
 * Models the tests generate: a single MatMul whose weight is `width`×`width`
 * floats (4096 gives a 64 MiB model), for memory tests.
 * @module
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** `y = x W`, `x` of shape [batch, width], W filled with a small constant pattern. */
export function matMulModel(width: number): Uint8Array {
  const w = new Float32Array(width * width);
  for (let i = 0; i < w.length; i++) w[i] = ((i % 7) - 3) / 1000;
  const io = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "batch" }, { dimValue: width }] } } },
    });
  const graph = onnx.GraphProto.create({
    name: "matmul",
    node: [{ opType: "MatMul", input: ["x", "w"], output: ["y"] }],
    initializer: [
      onnx.TensorProto.create({ name: "w", dims: [width, width], dataType: FLOAT, rawData: new Uint8Array(w.buffer) }),
    ],
    input: [io("x")],
    output: [io("y")],
  });
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, producerName: "isolane-tests", opsetImport: [{ version: 17 }], graph }),
  ).finish();
}
