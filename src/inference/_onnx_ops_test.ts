import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { modelOps } from "./_onnx_ops.ts";
import ort from "onnxruntime-node";
import {
  flattenByShapeModel,
  localFunctionLoopModel,
  loopMatMulModel,
  reshapeByCastModel,
  reshapeByInputModel,
  unaryModel,
} from "../../native/ort/test_models.ts";
import { inlineCapable } from "./native.ts";

const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));

Deno.test("modelOps reads a model's operators and sees control flow", async () => {
  assert.deepEqual(modelOps(await Deno.readFile(mlpPath)), {
    ops: new Set(["MatMul", "Add", "Relu"]),
    subgraphs: false,
    localFunctions: false,
    inputTypes: [1],
    shapesFromInputs: new Set(),
  });
  assert.deepEqual(modelOps(loopMatMulModel(8)), {
    ops: new Set(["Loop"]),
    subgraphs: true,
    localFunctions: false,
    inputTypes: [7, 1],
    shapesFromInputs: new Set(),
  });
  assert.deepEqual(modelOps(unaryModel("Sigmoid", [2, 3])), {
    ops: new Set(["Sigmoid"]),
    subgraphs: false,
    localFunctions: false,
    inputTypes: [1],
    shapesFromInputs: new Set(),
  });
  assert.deepEqual(modelOps(reshapeByInputModel()), {
    ops: new Set(["Reshape"]),
    subgraphs: false,
    localFunctions: false,
    inputTypes: [1, 7],
    shapesFromInputs: new Set(["Reshape"]),
  });
});

Deno.test("modelOps follows a float input cast to a shape, not a shape read from an input's dimensions", async () => {
  assert.deepEqual(modelOps(reshapeByCastModel()), {
    ops: new Set(["Cast", "Reshape"]),
    subgraphs: false,
    localFunctions: false,
    inputTypes: [1, 1],
    shapesFromInputs: new Set(["Reshape"]),
  });
  assert.deepEqual(modelOps(flattenByShapeModel()), {
    ops: new Set(["Shape", "Slice", "Concat", "Reshape"]),
    subgraphs: false,
    localFunctions: false,
    inputTypes: [1],
    shapesFromInputs: new Set(),
  });
  // What ORT does with them: the same float input dimensions come out in the shape the request's values ask for.
  const cast = await ort.InferenceSession.create(reshapeByCastModel());
  const x = new ort.Tensor("float32", new Float32Array(6), [6]);
  const shapeOf = async (shape: number[]) =>
    (await cast.run({ x, shape: new ort.Tensor("float32", Float32Array.from(shape), [2]) })).y.dims;
  assert.deepEqual([await shapeOf([1, 6]), await shapeOf([6, 1])], [[1, 6], [6, 1]]);
  await cast.release();
  const flatten = await ort.InferenceSession.create(flattenByShapeModel());
  const flat = await flatten.run({ x: new ort.Tensor("float32", new Float32Array(12), [2, 2, 3]) });
  assert.deepEqual(flat.y.dims, [2, 6]);
  await flatten.release();
});

Deno.test("inlineCapable: a small fixed-cost model runs inline; control flow or a shape from an input's values does not", async () => {
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
    // So is a float input cast to integers inside the model; a shape from an input's dimensions is not.
    assert.equal(await inlineCapable(await write("reshape_by_cast", reshapeByCastModel())), false);
    assert.equal(await inlineCapable(await write("flatten", flattenByShapeModel())), true);
    // A Loop hidden in a model-local function behind a node named like a fixed-cost operator.
    assert.equal(await inlineCapable(await write("local_function", localFunctionLoopModel(8))), false);
    assert.equal(await inlineCapable(`${dir}/missing.onnx`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("modelOps sees a model's own functions, whose bodies its main graph does not show", async () => {
  assert.deepEqual(modelOps(localFunctionLoopModel(8)), {
    ops: new Set(["Add"]),
    subgraphs: false,
    localFunctions: true,
    inputTypes: [1, 1],
    shapesFromInputs: new Set(),
  });
  // What ORT does with it: the same input dimensions run as many Loop iterations as the request's value asks for.
  const session = await ort.InferenceSession.create(localFunctionLoopModel(8));
  const x = new ort.Tensor("float32", Float32Array.from({ length: 8 }, (_, i) => i + 1), [1, 8]);
  for (const n of [0, 3]) {
    const { y } = await session.run({ x, count: new ort.Tensor("float32", Float32Array.of(n), [1]) });
    assert.deepEqual([...(y.data as Float32Array)], [1, 2, 3, 4, 5, 6, 7, 8]);
  }
  await session.release();
});

Deno.test("modelOps refuses bytes that are not a whole protobuf message", async () => {
  const bytes = await Deno.readFile(mlpPath);
  assert.throws(() => modelOps(bytes.subarray(0, bytes.length - 7)), RangeError);
  assert.throws(() => modelOps(Uint8Array.of(0x3a, 0x05, 0x01)), RangeError);
});
