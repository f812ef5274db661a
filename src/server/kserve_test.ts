import assert from "node:assert/strict";
import { encodeInferResponse, inferRequestSchema, plainInferRequest } from "./kserve.ts";

const input = { name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] };
const binaryInput = { name: "x", shape: [1, 4], datatype: "FP32", parameters: { binary_data_size: 16 } };

/** Requests as Triton's clients send them: the hand check must take them, so that they skip the schema. */
const plain: unknown[] = [
  { inputs: [input] },
  { id: "r1", inputs: [binaryInput], outputs: [{ name: "y", parameters: { binary_data: true } }] },
  { parameters: { binary_data_output: true }, inputs: [binaryInput, { ...input, name: "z" }], outputs: [] },
  { inputs: [{ name: "x", shape: [], datatype: "BYTES", data: ["a"] }], extra: 1 },
];

/** Anything the schema may refuse: the hand check must leave each to the schema. */
const odd: unknown[] = [
  null,
  [],
  "x",
  {},
  { inputs: [] },
  { inputs: {} },
  { id: 5, inputs: [input] },
  { id: null, inputs: [input] },
  { parameters: null, inputs: [input] },
  { parameters: [], inputs: [input] },
  { inputs: [null] },
  { inputs: [{ ...input, name: 1 }] },
  { inputs: [{ ...input, datatype: "FP99" }] },
  { inputs: [{ ...input, datatype: undefined }] },
  { inputs: [{ ...input, shape: [1.5, 4] }] },
  { inputs: [{ ...input, shape: [-1, 4] }] },
  { inputs: [{ ...input, shape: [2 ** 53, 4] }] },
  { inputs: [{ ...input, shape: [1n, 4] }] },
  { inputs: [{ ...input, shape: "1,4" }] },
  { inputs: [{ ...input, parameters: [] }] },
  { inputs: [input], outputs: "y" },
  { inputs: [input], outputs: [{ name: 7 }] },
  { inputs: [input], outputs: [{ name: "y", parameters: 1 }] },
  { inputs: [input], outputs: [null] },
];

Deno.test("plainInferRequest takes only what the schema takes, and the requests clients send", () => {
  for (const value of plain) {
    assert.ok(inferRequestSchema.safeParse(value).success, JSON.stringify(value));
    assert.equal(plainInferRequest(value), value, JSON.stringify(value));
  }
  for (const value of odd) {
    const taken = plainInferRequest(value);
    if (taken !== undefined) assert.ok(inferRequestSchema.safeParse(value).success, String(value));
  }
  // Each odd value the schema refuses is left to it.
  const refused = odd.filter((v) => !inferRequestSchema.safeParse(v).success);
  assert.equal(refused.length, odd.length);
  for (const value of refused) assert.equal(plainInferRequest(value), undefined);
});

Deno.test("encodeInferResponse writes the same bytes into its reused buffer as without it", () => {
  const y = { name: "y", datatype: "FP32" as const, shape: [1, 3], data: new Float32Array([0.5, -1, 3e-7]).buffer };
  const z = { name: "z", datatype: "INT64" as const, shape: [2], data: new BigInt64Array([1n, 2n ** 60n]).buffer };
  const cases = [
    [{ name: "y", binary: true }, { name: "z", binary: true }],
    [{ name: "y", binary: false }, { name: "z", binary: true }],
    [{ name: "y", binary: false }],
  ];
  for (const outputs of cases) {
    const model = { name: "mlp", version: "3", id: "é1" };
    const fresh = encodeInferResponse(model, { tensors: [y, z], outputs });
    const reused = encodeInferResponse(model, { tensors: [y, z], outputs }, { reuse: true });
    assert.deepEqual([...reused.body], [...fresh.body]);
    assert.equal(reused.contentType, fresh.contentType);
    assert.equal(reused.headerLength, fresh.headerLength);
  }
});
