import assert from "node:assert/strict";
import { inferRequestSchema, outputToTensors, tensorsToInput } from "./kserve.ts";
import type { TensorSignature } from "../sdk.ts";

const signature: TensorSignature = {
  inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }, { name: "label", datatype: "BYTES", shape: [1] }],
  outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }, { name: "n", datatype: "INT64", shape: [] }],
};
const request = (inputs: unknown[]) => inferRequestSchema.parse({ inputs });

Deno.test("tensorsToInput reshapes flat or nested data by the tensor's shape", () => {
  const flat = tensorsToInput(
    signature,
    request([
      { name: "x", datatype: "FP32", shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
      { name: "label", datatype: "BYTES", shape: [1], data: ["cat"] },
    ]),
  );
  assert.deepEqual(flat, { x: [[1, 2], [3, 4], [5, 6]], label: ["cat"] });
  const nestedInput = tensorsToInput(
    signature,
    request([
      { name: "x", datatype: "FP32", shape: [1, 2], data: [[7, 8]] },
      { name: "label", datatype: "BYTES", shape: [1], data: ["dog"] },
    ]),
  );
  assert.deepEqual(nestedInput.x, [[7, 8]]);
});

Deno.test("tensorsToInput says what does not fit", () => {
  const label = { name: "label", datatype: "BYTES", shape: [1], data: ["a"] };
  const cases: [unknown[], RegExp][] = [
    [[label], /Missing input tensor 'x'/],
    [[label, { name: "x", datatype: "INT32", shape: [1, 2], data: [1, 2] }], /must be FP32, got INT32/],
    [[label, { name: "x", datatype: "FP32", shape: [1, 3], data: [1, 2, 3] }], /shape \[1,3\]; expected \[-1,2\]/],
    [[label, { name: "x", datatype: "FP32", shape: [2, 2], data: [1, 2, 3] }], /has 3 values; shape \[2,2\] needs 4/],
    [[label, { name: "x", datatype: "FP32", shape: [1, 2], data: [1, "2"] }], /value 1 is not FP32/],
    [[label, { name: "x", datatype: "FP32", shape: [1, 2], data: [1, 2] }, {
      name: "z",
      datatype: "FP32",
      shape: [1],
      data: [1],
    }], /Unexpected input tensor 'z'/],
  ];
  for (const [inputs, message] of cases) assert.throws(() => tensorsToInput(signature, request(inputs)), message);
});

Deno.test("outputToTensors flattens arrays and reads their shape; picks asked outputs", () => {
  const output = { y: [[1, 2, 3], [4, 5, 6]], n: 2 };
  assert.deepEqual(outputToTensors(signature, output), [
    { name: "y", datatype: "FP32", shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
    { name: "n", datatype: "INT64", shape: [], data: [2] },
  ]);
  assert.deepEqual(outputToTensors(signature, output, ["n"]).map((t) => t.name), ["n"]);
  assert.throws(() => outputToTensors(signature, output, ["nope"]), /Unknown output 'nope'/);
  assert.throws(() => outputToTensors(signature, { y: [[1, 2]], n: 1 }), /does not match its signature/);
});
