import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { modelOps } from "./_onnx_ops.ts";
import { loopMatMulModel, unaryModel } from "../../native/ort/test_models.ts";

const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));

Deno.test("modelOps reads a model's operators and sees control flow", async () => {
  assert.deepEqual(modelOps(await Deno.readFile(mlpPath)), {
    ops: new Set(["MatMul", "Add", "Relu"]),
    subgraphs: false,
  });
  assert.deepEqual(modelOps(loopMatMulModel(8)), { ops: new Set(["Loop"]), subgraphs: true });
  assert.deepEqual(modelOps(unaryModel("Sigmoid", [2, 3])), { ops: new Set(["Sigmoid"]), subgraphs: false });
});

Deno.test("modelOps refuses bytes that are not a whole protobuf message", async () => {
  const bytes = await Deno.readFile(mlpPath);
  assert.throws(() => modelOps(bytes.subarray(0, bytes.length - 7)), RangeError);
  assert.throws(() => modelOps(Uint8Array.of(0x3a, 0x05, 0x01)), RangeError);
});
