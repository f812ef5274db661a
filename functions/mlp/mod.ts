/**
 * A tiny perceptron the repo generates itself (scripts/make_mlp_model.ts):
 * `{"x": number[][]}` (rows of 4) → `{"y": number[][]}` (rows of 3).
 * Fast enough for tests and, later, batching benchmarks.
 */
import { defineFunction, Tensor, z } from "isolane";

const inputWidth = 4;

export default defineFunction({
  description: "Two-layer perceptron, 4 inputs to 3 outputs, 1 to 4096 rows a call",
  input: z.object({
    x: z.array(z.array(z.number()).length(inputWidth)).min(1).max(4096),
  }),
  output: z.object({ y: z.array(z.array(z.number())) }),
  models: { mlp: "mlp.onnx" },
  // Also served over KServe v2: POST /v2/models/mlp/infer with an FP32 tensor "x" of shape [n, 4].
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, inputWidth] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  maxBodyBytes: 1024 * 1024,
  async handler({ x }, { models }) {
    const feeds = { x: new Tensor("float32", Float32Array.from(x.flat()), [x.length, inputWidth]) };
    const { y } = await models.mlp.run(feeds);
    const [rows, cols] = y.dims;
    const data = y.data as Float32Array;
    return { y: Array.from({ length: rows }, (_, r) => Array.from(data.subarray(r * cols, (r + 1) * cols))) };
  },
});
