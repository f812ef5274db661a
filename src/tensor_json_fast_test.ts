import assert from "node:assert/strict";
import fc from "fast-check";
import { scanNumberTensors } from "./tensor_json_fast.ts";
import { flatJsonText, flattenData, nestedJsonText, nestedShape, wireFromJsonBody } from "./tensors.ts";
import { IsolaneError } from "./errors.ts";

const encode = (text: string) => new TextEncoder().encode(text);

/** Literals as clients write them: integers, short decimals, exponents, signs (all within the fast path). */
const short = fc.oneof(
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map(String),
  fc.tuple(fc.integer({ min: -99999, max: 99999 }), fc.integer({ min: 0, max: 6 })).map(([m, k]) =>
    (m / 10 ** k).toString()
  ),
  fc.tuple(fc.integer({ min: -999, max: 999 }), fc.integer({ min: -19, max: 19 }), fc.constantFrom("e", "E", "e+"))
    .map(([m, e, mark]) => e < 0 ? `${m}${mark[0]}${e}` : `${m}${mark}${e}`),
  fc.constantFrom("0", "-0", "-0.0", "0.000", "1.5e-3", "0.1", "123456789012345", "-0.000000000000000000001"),
);
/** Any literal `String(number)` writes (up to 17 digits, any exponent): read exactly, or given up on. */
const any = fc.oneof(short, fc.double({ noNaN: true, noDefaultInfinity: true }).map(String));

function body(pool: string[], rows: number, cols: number, space: string): string {
  const row = (r: number) =>
    `[${Array.from({ length: cols }, (_, c) => pool[(r * cols + c) % pool.length]).join(`,${space}`)}]`;
  const nested = `[${Array.from({ length: rows }, (_, r) => row(r)).join(`${space},`)}]`;
  return `${space}{${space}"x"${space}:${space}${nested}${space}}${space}`;
}

function assertReadAsParsed(text: string, scanned: ReturnType<typeof scanNumberTensors>): void {
  const parsed = JSON.parse(text).x;
  const x = scanned!.get("x")!;
  assert.deepEqual(x.shape, nestedShape("x", parsed).shape);
  const flat = flattenData("x", parsed) as number[];
  assert.equal(x.values.length, flat.length);
  flat.forEach((v, i) => assert.ok(Object.is(x.values[i], v), `${v} read as ${x.values[i]}`));
}

Deno.test("scanNumberTensors reads short literals exactly as JSON.parse does", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 5 }),
      fc.array(short, { minLength: 20, maxLength: 20 }),
      fc.constantFrom("", " ", "\n\t "),
      (rows, cols, pool, space) => {
        const text = body(pool, rows, cols, space);
        const scanned = scanNumberTensors(encode(text), ["x"], 32);
        assert.ok(scanned, text);
        assertReadAsParsed(text, scanned);
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("scanNumberTensors reads any literal as JSON.parse does, or gives up", () => {
  fc.assert(
    fc.property(fc.array(any, { minLength: 6, maxLength: 6 }), (pool) => {
      const text = body(pool, 2, 3, "");
      const scanned = scanNumberTensors(encode(text), ["x"], 32);
      if (scanned) assertReadAsParsed(text, scanned);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("scanNumberTensors gives up on everything but the plain form", () => {
  const cases = [
    '{"x":[[1,2],[3]]}', // not rectangular
    '{"x":[]}', // empty
    '{"x":[[1],2]}', // mixed depth
    '{"x":[1,2],"x":[3,4]}', // a key twice
    '{"y":[1]}', // an unknown key
    '{"x\\u0041":[1]}', // an escape
    '{"x":[1,]}', // a trailing comma
    '{"x":[01]}', // a leading zero
    '{"x":[1.]}',
    '{"x":[.5]}',
    '{"x":[1e]}',
    '{"x":[+1]}',
    '{"x":[NaN]}',
    '{"x":[1]} x', // text after the object
    '{"x":[1]', // cut short
    '{"x":5}', // a scalar
    '{"x":["1"]}',
    '{"x":[1e400]}',
    '{"x":[0.12345678901234567]}', // 17 digits: JSON.parse reads those
    '\ufeff{"x":[1]}', // a byte-order mark
  ];
  for (const text of cases) assert.equal(scanNumberTensors(encode(text), ["x"], 32), undefined, text);
  assert.equal(scanNumberTensors(encode('{"x":[[[1]]]}'), ["x"], 2), undefined, "deeper than the limit");
  assert.deepEqual(scanNumberTensors(encode('{"x":[[[1]]]}'), ["x"], 3)?.get("x")?.shape, [1, 1, 1]);
});

Deno.test("wireFromJsonBody: the fast path answers as the general one, errors included", () => {
  const signature = {
    inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1, 2] }, {
      name: "z",
      datatype: "FP64" as const,
      shape: [3],
    }],
    outputs: [],
  };
  const ok = wireFromJsonBody(signature, encode('{"z":[0.1,-0,3e-5],"x":[[1.5,2],[3,-4.25]]}').buffer);
  assert.deepEqual(ok.map((t) => t.shape), [[2, 2], [3]]);
  assert.deepEqual([...new Float32Array(ok[0].data)], [1.5, 2, 3, -4.25]);
  assert.deepEqual([...new Float64Array(ok[1].data)], [0.1, -0, 3e-5]);
  const error = (text: string) => {
    try {
      wireFromJsonBody(signature, encode(text).buffer);
    } catch (e) {
      assert.ok(e instanceof IsolaneError);
      return `${e.code}: ${e.message}`;
    }
    assert.fail(`${text} was taken`);
  };
  assert.match(error('{"x":[[1,2,3]],"z":[1,2,3]}'), /^invalid_input: Input 'x' has shape \[1,3\]/);
  assert.match(error('{"x":[[1e39,2]],"z":[1,2,3]}'), /^invalid_input: .*out of range/);
  assert.match(error('{"x":[[1,2]]}'), /^invalid_input: Missing input 'z'/);
  assert.match(error('{"x":[[1,2]],"z":[1,2,3],}'), /^invalid_json/);
});

/** FP32 texts are the shortest that read back (`float32_json.ts`): what a float32 reader gets of JSON text. */
function float32Read(text: string): unknown {
  return JSON.parse(text, (_key, value) => (typeof value === "number" ? Math.fround(value) : value));
}

Deno.test("nestedJsonText writes numbers as JSON.stringify does, FP32 as the float32 reads back (non-finite ones as null)", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("FP32", "FP64", "INT32", "UINT8"),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 4 }),
      fc.array(fc.double(), { minLength: 12, maxLength: 12 }),
      (datatype, rows, cols, pool) => {
        const values = pool.slice(0, rows * cols);
        const flat = datatype === "FP32"
          ? Float32Array.from(values)
          : datatype === "FP64"
          ? Float64Array.from(values)
          : datatype === "INT32"
          ? Int32Array.from(values)
          : Uint8Array.from(values);
        const text = nestedJsonText({ name: "y", datatype, shape: [rows, cols], data: flat.buffer as ArrayBuffer });
        const nested = Array.from({ length: rows }, (_, r) => Array.from(flat.subarray(r * cols, (r + 1) * cols)));
        const flatText = flatJsonText({ name: "y", datatype, shape: [rows * cols], data: flat.buffer as ArrayBuffer });
        if (datatype === "FP32") {
          // As JSON.stringify writes them (-0 as 0, non-finite as null), read back as float32.
          assert.deepEqual(float32Read(text), JSON.parse(JSON.stringify(nested)));
          assert.deepEqual(float32Read(flatText), JSON.parse(JSON.stringify(Array.from(flat))));
          assert.ok(text.length <= JSON.stringify(nested).length);
          return;
        }
        assert.equal(text, JSON.stringify(nested));
        assert.equal(flatText, JSON.stringify(Array.from(flat)));
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("scanNumberTensors gives up on a key of any length without throwing", () => {
  assert.equal(scanNumberTensors(encode(`{"${"k".repeat(500_000)}":[1]}`), ["x"], 32), undefined);
});

Deno.test("wireFromJsonBody: tensors of the fast path keep their values when the next body is decoded", () => {
  const signature = {
    inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1, 2] }, {
      name: "z",
      datatype: "FP64" as const,
      shape: [2],
    }],
    outputs: [],
  };
  const first = wireFromJsonBody(signature, encode('{"x":[[1,2],[3,4]],"z":[5,6]}').buffer);
  const second = wireFromJsonBody(signature, encode('{"z":[-7,-8],"x":[[-9,-10]]}').buffer);
  assert.deepEqual([...new Float32Array(first[0].data)], [1, 2, 3, 4]);
  assert.deepEqual([...new Float64Array(first[1].data)], [5, 6]);
  assert.deepEqual([...new Float32Array(second[0].data)], [-9, -10]);
  assert.deepEqual([...new Float64Array(second[1].data)], [-7, -8]);
  // Each tensor of a body read as its own values, wherever it stands in the body.
  const scanned = scanNumberTensors(encode('{"b":[[4,5],[6,7]],"a":[1,2,3]}'), ["a", "b"], 32)!;
  assert.deepEqual([...scanned.get("b")!.values], [4, 5, 6, 7]);
  assert.deepEqual([...scanned.get("a")!.values], [1, 2, 3]);
});

Deno.test("wireFromJsonBody: an FP32 value past float32's range is refused, as by the general path", () => {
  const signature = { inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1] }], outputs: [] };
  assert.throws(
    () => wireFromJsonBody(signature, encode('{"x":[1,3.5e38]}').buffer),
    (e: unknown) => e instanceof IsolaneError && /out of range/.test(e.message),
  );
  assert.deepEqual([...new Float32Array(wireFromJsonBody(signature, encode('{"x":[1,3.4e38]}').buffer)[0].data)], [
    1,
    Math.fround(3.4e38),
  ]);
});

Deno.test("scanNumberTensors reads decimals of every form (zeros after the point, float32 texts) as JSON.parse", () => {
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  /** Decimals as `-?int.zeros digits(e±x)?`: leading zeros after the point are not significant digits. */
  const decimal = fc.tuple(
    fc.boolean(),
    fc.constantFrom("0", "1", "7", "42", "123456"),
    fc.integer({ min: 0, max: 24 }),
    fc.stringMatching(/^[0-9]{1,12}$/),
    fc.option(fc.integer({ min: -30, max: 30 })),
  ).map(([negative, int, zeros, digits, e]) =>
    `${negative ? "-" : ""}${int}.${"0".repeat(zeros)}${digits}${e === null ? "" : `e${e}`}`
  );
  /** Float32s from any bit pattern (subnormals, large exponents), as the `/v1` writer writes them back. */
  const float32Text = fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((b) => {
    bits[0] = b;
    return asFloat[0];
  }).filter(Number.isFinite).map((x) =>
    nestedJsonText({ name: "y", datatype: "FP32", shape: [], data: Float32Array.of(x).buffer })
  );
  fc.assert(
    fc.property(fc.array(fc.oneof(decimal, float32Text), { minLength: 6, maxLength: 6 }), (pool) => {
      const text = body(pool, 2, 3, "");
      const scanned = scanNumberTensors(encode(text), ["x"], 32);
      // Within the fast path (15 significant digits, exponent within ±22) the body is never given up on.
      const plain = pool.every((t) => {
        const [mantissa, e] = t.replace(/^-/, "").split("e");
        const [int, fraction = ""] = mantissa.split(".");
        const significant = (int + fraction).replace(/^0+/, "").length;
        return significant <= 15 && Math.abs(Number(e ?? 0) - fraction.length) <= 22;
      });
      if (plain) assert.ok(scanned, text);
      if (scanned) assertReadAsParsed(text, scanned);
    }),
    { numRuns: 5000 },
  );
});
