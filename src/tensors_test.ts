import assert from "node:assert/strict";
import {
  binaryToWire,
  decodeBytesElements,
  encodeBytesElements,
  flatJsonText,
  jsonToWire,
  nestedJsonText,
  nestedShape,
  outputsToJsonBody,
  outputsToJsonBytes,
  parseJsonExact,
  shapeFits,
  signatureJsonSchema,
  stagingLayout,
  toFloat16Bits,
} from "./tensors.ts";

const encoder = new TextEncoder();

Deno.test("parseJsonExact keeps integers beyond 2^53 exact and leaves the rest alone", () => {
  assert.deepEqual(parseJsonExact('{"a":[9007199254740993,-9223372036854775808,1.5,3,1e300]}'), {
    a: [9007199254740993n, -9223372036854775808n, 1.5, 3, 1e300],
  });
  assert.deepEqual(parseJsonExact("[1,2]"), [1, 2]);
  assert.throws(() => parseJsonExact("{nope"), { code: "invalid_json" });
});

Deno.test("jsonToWire converts every datatype exactly and refuses what does not fit", () => {
  const int64 = jsonToWire({ name: "a", datatype: "INT64", shape: [3], data: [9007199254740993n, -1, 0] });
  assert.deepEqual([...new BigInt64Array(int64.data)], [9007199254740993n, -1n, 0n]);
  const u64 = jsonToWire({ name: "a", datatype: "UINT64", shape: [1], data: [18446744073709551615n] });
  assert.deepEqual([...new BigUint64Array(u64.data)], [18446744073709551615n]);
  const bool = jsonToWire({ name: "b", datatype: "BOOL", shape: [1, 2], data: [[true, false]] });
  assert.deepEqual([...new Uint8Array(bool.data)], [1, 0]);
  const half = jsonToWire({ name: "h", datatype: "FP16", shape: [2], data: [1, -2.5] });
  assert.deepEqual([...new Uint16Array(half.data)], [0x3c00, 0xc100]);
  const bytes = jsonToWire({ name: "s", datatype: "BYTES", shape: [2], data: ["é", ""] });
  assert.deepEqual([...new Uint8Array(bytes.data)], [2, 0, 0, 0, 0xc3, 0xa9, 0, 0, 0, 0]);
  const empty = jsonToWire({ name: "e", datatype: "FP32", shape: [0, 4], data: [] });
  assert.equal(empty.data.byteLength, 0);
  const refusals: [Parameters<typeof jsonToWire>[0], RegExp][] = [
    [{ name: "u", datatype: "UINT8", shape: [2], data: [7, 256] }, /element 1 \(256\) is not UINT8: out of range/],
    [{ name: "u", datatype: "UINT8", shape: [1], data: [-1] }, /not UINT8/],
    [{ name: "i", datatype: "INT32", shape: [1], data: [2 ** 31] }, /out of range/],
    [{ name: "i", datatype: "INT64", shape: [1], data: [2 ** 60] }, /plain digits/],
    [{ name: "i", datatype: "INT64", shape: [1], data: [2n ** 63n] }, /out of range/],
    [{ name: "f", datatype: "FP32", shape: [1], data: [1e39] }, /out of range/],
    [{ name: "f", datatype: "FP32", shape: [1], data: ["1"] }, /not FP32/],
    // A literal past a double's range (`1e400`) parses as Infinity: the message shows it as such, not as `null`.
    [{ name: "f", datatype: "FP64", shape: [1], data: [JSON.parse("-1e400")] }, /element 0 \(-Infinity\) is not FP64/],
    [{ name: "b", datatype: "BOOL", shape: [1], data: [0] }, /not BOOL/],
    [{ name: "c", datatype: "FP32", shape: [2, 2], data: [1, 2, 3] }, /has 3 values; shape \[2,2\] needs 4/],
    [{ name: "d", datatype: "FP32", shape: [-1], data: [] }, /non-negative integers/],
  ];
  for (const [tensor, message] of refusals) {
    assert.throws(() => jsonToWire(tensor), (e: Error & { code?: string }) => {
      assert.equal(e.code, "invalid_input");
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("binaryToWire checks sizes, BOOL bytes and the BYTES layout; copies into its own buffer", () => {
  const body = new Uint8Array([9, 9, ...new Uint8Array(Float32Array.of(1, 2).buffer)]);
  const t = binaryToWire({ name: "x", datatype: "FP32", shape: [2] }, body.subarray(2));
  assert.deepEqual([...new Float32Array(t.data)], [1, 2]);
  assert.notEqual(t.data, body.buffer);
  assert.throws(() => binaryToWire({ name: "x", datatype: "FP32", shape: [3] }, body.subarray(2)), /needs 12/);
  assert.throws(() => binaryToWire({ name: "b", datatype: "BOOL", shape: [1] }, Uint8Array.of(2)), /not BOOL/);
  const strings = new Uint8Array(encodeBytesElements([encoder.encode("ab"), encoder.encode("")]));
  assert.equal(binaryToWire({ name: "s", datatype: "BYTES", shape: [2] }, strings).data.byteLength, 10);
  assert.throws(() => binaryToWire({ name: "s", datatype: "BYTES", shape: [3] }, strings), /shape needs 3/);
  assert.throws(() => decodeBytesElements(strings.subarray(0, 5), { name: "s", count: 1 }), /runs past its data/);
  assert.throws(() => decodeBytesElements(strings.subarray(0, 8), { name: "s", count: 2 }), /inside a length prefix/);
});

Deno.test("nestedShape reads rectangular nesting; nestedJsonText writes it back exactly", () => {
  assert.deepEqual(nestedShape("x", [[1, 2], [3, 4]]), { shape: [2, 2], flat: [1, 2, 3, 4] });
  assert.deepEqual(nestedShape("x", 5), { shape: [], flat: [5] });
  assert.deepEqual(nestedShape("x", []), { shape: [0], flat: [] });
  assert.throws(() => nestedShape("x", [[1, 2], [3]]), /not rectangular/);
  assert.throws(() => nestedShape("x", [[1], 2]), /not rectangular/);
  const deep = JSON.parse("[".repeat(100) + "]".repeat(100));
  assert.throws(() => nestedShape("x", deep), /nested deeper than 32/);
  const big = jsonToWire({ name: "i", datatype: "INT64", shape: [2, 2], data: [1, 2, 9007199254740993n, -4] });
  assert.equal(nestedJsonText(big), "[[1,2],[9007199254740993,-4]]");
  assert.equal(flatJsonText(big), "[1,2,9007199254740993,-4]");
  const strings = jsonToWire({ name: "s", datatype: "BYTES", shape: [1, 2], data: ["a,b", '"'] });
  assert.equal(nestedJsonText(strings), '[["a,b","\\""]]');
  assert.equal(nestedJsonText(jsonToWire({ name: "e", datatype: "FP32", shape: [0, 3], data: [] })), "[]");
  assert.equal(nestedJsonText(jsonToWire({ name: "s", datatype: "BOOL", shape: [], data: [true] })), "true");
});

Deno.test("shapes: -1 matches any size, zero-size dimensions are valid; FP16 rounds to nearest even", () => {
  assert.ok(shapeFits([-1, 3], [0, 3]));
  assert.ok(!shapeFits([-1, 3], [0]));
  assert.ok(!shapeFits([2, 3], [3, 2]));
  assert.deepEqual([...toFloat16Bits([65504, 65520, 1 + 2 ** -11])], [0x7bff, 0x7c00, 0x3c00]);
  const schema = signatureJsonSchema([{ name: "x", datatype: "UINT8", shape: [-1, 2] }]);
  assert.deepEqual((schema.properties as Record<string, unknown>).x, {
    type: "array",
    items: {
      type: "array",
      items: { type: "integer", minimum: 0, maximum: 255, description: "UINT8[-1,2]" },
      minItems: 2,
      maxItems: 2,
    },
  });
});

Deno.test("stagingLayout: a slot per tensor for one run of the batch; none with BYTES, open inner sizes or past the cap", () => {
  const spec = (name: string, datatype: "FP32" | "INT64" | "BYTES" | "FP16", shape: number[]) => ({
    name,
    datatype,
    shape,
  });
  assert.deepEqual(
    stagingLayout({
      inputs: [spec("x", "FP32", [-1, 4]), spec("k", "INT64", [2])],
      outputs: [spec("y", "FP16", [-1, 3])],
    }, 256),
    { inputs: { x: 4096, k: 16 }, outputs: { y: 1536 } },
  );
  assert.equal(stagingLayout({ inputs: [spec("s", "BYTES", [-1])], outputs: [spec("y", "FP32", [-1])] }, 8), undefined);
  assert.equal(
    stagingLayout({ inputs: [spec("x", "FP32", [-1, -1])], outputs: [spec("y", "FP32", [-1])] }, 8),
    undefined,
  );
  assert.equal(
    stagingLayout({ inputs: [spec("x", "FP32", [-1, 1 << 20])], outputs: [spec("y", "FP32", [-1])] }, 65536),
    undefined,
  );
});

Deno.test("outputsToJsonBytes is outputsToJsonBody's text, in a buffer reused by the next call", () => {
  const y = {
    name: "y",
    datatype: "FP32" as const,
    shape: [2, 2],
    data: new Float32Array([0.1, -2, 3e-7, 1e10]).buffer,
  };
  const k = { name: "k", datatype: "INT64" as const, shape: [1], data: new BigInt64Array([2n ** 60n]).buffer };
  const body = outputsToJsonBody([y, k]);
  const bytes = outputsToJsonBytes([y, k]);
  assert.equal(new TextDecoder().decode(bytes), new TextDecoder().decode(body));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(body)).y, [[0.1, -2], [3e-7, 1e10]]);
  // The next call writes over the same bytes.
  const again = outputsToJsonBytes([k]);
  assert.equal(again.buffer, bytes.buffer);
});

Deno.test("outputsToJsonBytes writes NaN and infinities as null, though FP32 outputs are written unchecked first", () => {
  const y = {
    name: "y",
    datatype: "FP32" as const,
    shape: [2, 2],
    data: new Float32Array([1, NaN, 2.5, Infinity]).buffer,
  };
  const z = { name: "z", datatype: "FP32" as const, shape: [], data: new Float32Array([-Infinity]).buffer };
  const w = { name: "w", datatype: "FP32" as const, shape: [2], data: new Float32Array([0.1, 1e-20]).buffer };
  const text = new TextDecoder().decode(outputsToJsonBytes([w, y, z]));
  assert.equal(text, '{"w":[0.1,1e-20],"y":[[1,null],[2.5,null]],"z":null}');
  assert.equal(new TextDecoder().decode(outputsToJsonBody([w, y, z])), text);
});
