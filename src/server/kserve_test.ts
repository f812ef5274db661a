import assert from "node:assert/strict";
import { IsolaneError } from "../errors.ts";
import { decodeInferRequest, encodeInferResponse, inferRequestSchema, plainInferRequest } from "./kserve.ts";

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

/** A binary v2 request body: the JSON header, then `data`'s bytes. */
function binaryBody(header: unknown, data: Uint8Array): { body: Uint8Array; headerLength: string } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.length + data.length);
  body.set(json);
  body.set(data, json.length);
  return { body, headerLength: String(json.length) };
}

Deno.test("decodeInferRequest decodes a header seen before as it did the first time, checking the new body", () => {
  const signature = {
    inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1, 2] }],
    outputs: [{ name: "y", datatype: "FP32" as const, shape: [-1, 2] }],
  };
  const header = { id: "a", inputs: [{ ...binaryInput, shape: [1, 2], parameters: { binary_data_size: 8 } }] };
  const first = binaryBody(header, new Uint8Array(new Float32Array([1, 2]).buffer));
  const second = binaryBody(header, new Uint8Array(new Float32Array([3, 4]).buffer));
  const a = decodeInferRequest(signature, first.body, { headerLength: first.headerLength });
  const b = decodeInferRequest(signature, second.body, { headerLength: second.headerLength });
  assert.deepEqual([...new Float32Array(a.inputs[0].data)], [1, 2]);
  assert.deepEqual([...new Float32Array(b.inputs[0].data)], [3, 4]);
  assert.equal(b.id, "a");
  assert.deepEqual(b.outputs, [{ name: "y", binary: false }]);
  assert.deepEqual(b.inputs[0].shape, [1, 2]);
  // Each request's tensors are its own: changing one's shape does not change the next's.
  b.inputs[0].shape[0] = 9;
  const c = decodeInferRequest(signature, second.body, { headerLength: second.headerLength });
  assert.deepEqual(c.inputs[0].shape, [1, 2]);
  // The same header with too few or too many bytes after it is refused as it would be the first time.
  for (const data of [new Uint8Array(4), new Uint8Array(12)]) {
    const wrong = binaryBody(header, data);
    let seen: unknown;
    try {
      decodeInferRequest(signature, wrong.body, { headerLength: wrong.headerLength });
    } catch (error) {
      seen = error;
    }
    assert.ok(seen instanceof IsolaneError);
    assert.equal(seen.code, "invalid_input");
    assert.match(seen.message, data.length < 8 ? /needs 8 bytes of binary data/ : /4 bytes after the inputs/);
  }
  // Another signature (a new version of the function) does not take the first one's header as known.
  const other = { ...signature, inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1, 3] }] };
  assert.throws(
    () => decodeInferRequest(other, second.body, { headerLength: second.headerLength }),
    /has shape \[1,2\]; expected \[-1,3\]/,
  );
});

Deno.test("encodeInferResponse writes a known answer header only where everything it says is the same", () => {
  const model: { name: string; version: string; id?: string } = { name: "mlp", version: "3" };
  const outputs = [{ name: "y", binary: true }];
  const tensor = (shape: number[], values: number[]) => ({
    name: "y",
    datatype: "FP32" as const,
    shape,
    data: new Float32Array(values).buffer,
  });
  const variants = [
    { model, t: tensor([1, 2], [1, 2]) },
    { model, t: tensor([1, 2], [3, 4]) },
    { model, t: tensor([2, 1], [3, 4]) },
    { model, t: tensor([1, 3], [3, 4, 5]) },
    { model: { ...model, id: "r" }, t: tensor([1, 3], [3, 4, 5]) },
    { model: { ...model, version: "4" }, t: tensor([1, 3], [3, 4, 5]) },
  ];
  for (const { model, t } of [...variants, ...variants]) {
    const reused = encodeInferResponse(model, { tensors: [t], outputs }, { reuse: true });
    const header = JSON.parse(new TextDecoder().decode(reused.body.subarray(0, reused.headerLength)));
    assert.deepEqual(header, {
      model_name: "mlp",
      model_version: model.version,
      ...(model.id ? { id: model.id } : {}),
      outputs: [{ name: "y", datatype: "FP32", shape: t.shape, parameters: { binary_data_size: t.data.byteLength } }],
    });
    assert.deepEqual([...new Float32Array(reused.body.slice(reused.headerLength!).buffer)], [
      ...new Float32Array(t.data),
    ]);
  }
});
