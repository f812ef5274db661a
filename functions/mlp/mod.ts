/**
 * A tiny perceptron the repo generates itself (scripts/make_mlp_model.ts):
 * FP32 `x` of shape [n, 4] → FP32 `y` of shape [n, 3]. On `/v1` as
 * `{"x": number[][]}` → `{"y": number[][]}`; on KServe v2 as tensors.
 * Fast enough for tests and, later, batching benchmarks.
 */
import { defineFunction, runModel } from "isolane";

export default defineFunction({
  description: "Two-layer perceptron, 4 inputs to 3 outputs, as many rows as a 1 MiB body holds",
  models: { mlp: "mlp.onnx" },
  // Served on POST /v1/functions/mlp and POST /v2/models/mlp/infer alike.
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  maxBodyBytes: 1024 * 1024,
  // Triton's dynamic batcher: concurrent requests run as one model call, split back by rows.
  dynamicBatching: { maxBatchSize: 256, maxQueueDelayMs: 0 },
  queueDepth: 4096,
  // The model on its inputs as they come: on CUDA lanes the runtime stages them in pinned memory in place.
  handler: runModel("mlp"),
});
