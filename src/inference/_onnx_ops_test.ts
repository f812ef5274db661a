import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { modelOps } from "./_onnx_ops.ts";
import { loopMatMulModel, reshapeByInputModel, unaryModel } from "../../native/ort/test_models.ts";
import { inlineCapable } from "./native.ts";

const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));

Deno.test("modelOps reads a model's operators and sees control flow", async () => {
  assert.deepEqual(modelOps(await Deno.readFile(mlpPath)), {
    ops: new Set(["MatMul", "Add", "Relu"]),
    subgraphs: false,
    inputTypes: [1],
  });
  assert.deepEqual(modelOps(loopMatMulModel(8)), { ops: new Set(["Loop"]), subgraphs: true, inputTypes: [7, 1] });
  assert.deepEqual(modelOps(unaryModel("Sigmoid", [2, 3])), {
    ops: new Set(["Sigmoid"]),
    subgraphs: false,
    inputTypes: [1],
  });
  assert.deepEqual(modelOps(reshapeByInputModel()), {
    ops: new Set(["Reshape"]),
    subgraphs: false,
    inputTypes: [1, 7],
  });
});

Deno.test("inlineCapable: a small fixed-cost model runs inline; control flow or an integer input (a shape) does not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (name: string, bytes: Uint8Array) => {
      await Deno.writeFile(`${dir}/${name}.onnx`, bytes);
      return `${dir}/${name}.onnx`;
    };
    assert.equal(await inlineCapable(mlpPath), true);
    assert.equal(await inlineCapable(await write("sigmoid", unaryModel("Sigmoid", [2, 3]))), true);
    assert.equal(await inlineCapable(await write("loop", loopMatMulModel(8))), false);
    // Reshape is a fixed-cost operator, but the shape a request sends decides what it makes.
    assert.equal(await inlineCapable(await write("reshape", reshapeByInputModel())), false);
    assert.equal(await inlineCapable(`${dir}/missing.onnx`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("modelOps refuses bytes that are not a whole protobuf message", async () => {
  const bytes = await Deno.readFile(mlpPath);
  assert.throws(() => modelOps(bytes.subarray(0, bytes.length - 7)), RangeError);
  assert.throws(() => modelOps(Uint8Array.of(0x3a, 0x05, 0x01)), RangeError);
});
