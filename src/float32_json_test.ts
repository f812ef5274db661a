import assert from "node:assert/strict";
import fc from "fast-check";
import { float32NestedBytes, float32TextSlow, writeFloat32, writeFloat32Nested } from "./float32_json.ts";

const decoder = new TextDecoder();

function textOf(x: number): string {
  const out = new Uint8Array(32);
  return decoder.decode(out.subarray(0, writeFloat32(x, out, 0)));
}

/** Significant digits of a number's text. */
function digitsOf(text: string): number {
  const mantissa = text.replace(/^-/, "").split("e")[0].replace(".", "").replace(/^0+/, "");
  return Math.max(1, mantissa.length);
}

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);

/** Every finite float32, from its bit pattern (each pattern equally likely: every exponent is covered). */
const anyFloat32 = fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((b) => {
  bits[0] = b;
  return asFloat[0];
}).filter(Number.isFinite);

/** Float32s of model outputs' usual range, where the fast path applies. */
const usualFloat32 = fc.double({ min: -1e6, max: 1e6, noNaN: true }).map(Math.fround);

Deno.test("every float32 reads back exactly from its text", () => {
  for (const arbitrary of [anyFloat32, usualFloat32, fc.float({ noNaN: true, noDefaultInfinity: true })]) {
    fc.assert(
      fc.property(arbitrary, (x) => {
        const text = textOf(x);
        // `===`: -0 is written 0, as JSON.stringify does.
        assert.ok(Math.fround(Number(text)) === x, `${x} written ${text}`);
        assert.ok(Math.fround(JSON.parse(text)) === x, `${text} is JSON`);
      }),
      { numRuns: 20_000 },
    );
  }
});

Deno.test("the text has no more digits than the shortest correctly rounded one", () => {
  fc.assert(
    fc.property(fc.oneof(anyFloat32, usualFloat32), (x) => {
      const text = textOf(x);
      const slow = float32TextSlow(Math.abs(x));
      assert.ok(digitsOf(text) <= digitsOf(slow), `${x}: ${text} against ${slow}`);
    }),
    { numRuns: 20_000 },
  );
});

Deno.test("float32 texts are NumPy's, in ECMAScript's number form", () => {
  const cases: [number, string][] = [
    [Math.fround(0.1), "0.1"],
    [Math.fround(-0.1), "-0.1"],
    [Math.fround(1 / 3), "0.33333334"],
    [1.5, "1.5"],
    [100, "100"],
    [16777216, "16777216"],
    [Math.fround(0.0001), "0.0001"],
    [Math.fround(123.456), "123.456"],
    [Math.fround(1e-7), "1e-7"],
    [Math.fround(1e9), "1000000000"],
    [Math.fround(3.4028234663852886e38), "3.4028235e+38"],
    [1.401298464324817e-45, "1e-45"],
    [Math.fround(1.5e-7), "1.5e-7"],
    [Math.fround(1.2345678e-10), "1.2345679e-10"],
    [Math.fround(-0.00001234), "-0.00001234"],
    [Math.fround(3e-12), "3e-12"],
    [0, "0"],
    [-0, "0"],
  ];
  for (const [x, text] of cases) assert.equal(textOf(x), text);
});

Deno.test("nested float32 JSON reads back as the float32s, by shape", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 5 }),
      fc.array(anyFloat32, { minLength: 20, maxLength: 20 }),
      (rows, cols, pool) => {
        const values = Float32Array.from({ length: rows * cols }, (_, i) => pool[i % pool.length]);
        const out = new Uint8Array(float32NestedBytes(values.length, [rows, cols]));
        const text = decoder.decode(out.subarray(0, writeFloat32Nested(values, [rows, cols], out, 0)));
        const parsed = JSON.parse(text) as number[][];
        assert.equal(parsed.length, rows);
        assert.deepEqual(
          Float32Array.from(parsed.flat()),
          values.map((v) => (v === 0 ? 0 : v)),
        );
      },
    ),
  );
  const scalar = new Uint8Array(float32NestedBytes(1, []));
  assert.equal(decoder.decode(scalar.subarray(0, writeFloat32Nested(Float32Array.of(2.5), [], scalar, 0))), "2.5");
});

Deno.test("small float32s (1e-13 to 1e-4, written without toPrecision) have the reference's text", () => {
  const small = fc.double({ min: 1e-13, max: 1e-4, noNaN: true }).map(Math.fround);
  fc.assert(
    fc.property(small, fc.boolean(), (x, negative) => {
      const v = negative ? -x : x;
      assert.equal(textOf(v), (negative ? "-" : "") + float32TextSlow(x));
    }),
    { numRuns: 50_000 },
  );
});

Deno.test("writeFloat32Nested answers -1 for a value that is not finite", () => {
  const out = new Uint8Array(float32NestedBytes(3, [3]));
  for (const bad of [NaN, Infinity, -Infinity]) {
    assert.equal(writeFloat32Nested(new Float32Array([1, bad, 2]), [3], out, 0), -1);
    assert.equal(writeFloat32Nested(new Float32Array([bad]), [], out, 0), -1);
  }
  // A finite tensor after one that was not is written whole.
  const end = writeFloat32Nested(new Float32Array([1, 0.5, 2]), [3], out, 0);
  assert.equal(decoder.decode(out.subarray(0, end)), "[1,0.5,2]");
});

/** Exactly: sign of |a·10^ea| - |b| for a float32 b = m·2^e2 (all BigInt, no rounding). */
function distance(d: bigint, e10: number, m: bigint, e2: number): bigint {
  const p10 = Math.max(0, -e10), p2 = Math.max(0, -e2);
  const a = d * 10n ** BigInt(e10 + p10) * 2n ** BigInt(p2);
  const b = m * 2n ** BigInt(e2 + p2) * 10n ** BigInt(p10);
  return a > b ? a - b : b - a;
}

/**
 * The reference text of a positive finite float32, decided by exact arithmetic: in the fast path's range
 * (1e-13 ≤ x < 1e9), of the decimals that read back to x (JSON.parse, then Math.fround) those with the fewest digits,
 * the nearest to x (a tie to the larger); elsewhere, the fewest digits while `toPrecision` still reads back, from 9
 * down (the writer's own rule there). In ECMAScript's number form.
 */
function referenceText(x: number): string {
  bits[0] = 0;
  asFloat[0] = x;
  const biased = (bits[0] >>> 23) & 0xff;
  const m = BigInt(biased === 0 ? bits[0] & 0x7fffff : (bits[0] & 0x7fffff) | 0x800000);
  const e2 = biased === 0 ? -149 : biased - 150;
  const readsBack = (d: bigint, e10: number) => Math.fround(JSON.parse(`${d}e${e10}`)) === x;
  if (x >= 1e-13 && x < 1e9) {
    for (let p = 1; p <= 9; p++) {
      const [digits, exponent] = x.toExponential(p - 1).split("e");
      const d = BigInt(digits.replace(".", ""));
      const e10 = Number(exponent) - (p - 1);
      let best: bigint | undefined;
      for (const c of [d - 1n, d, d + 1n]) {
        if (c <= 0n || !readsBack(c, e10)) continue;
        if (best === undefined || distance(c, e10, m, e2) <= distance(best, e10, m, e2)) best = c;
      }
      if (best !== undefined) return String(JSON.parse(`${best}e${e10}`));
    }
  }
  let text = String(Number(x.toPrecision(9)));
  for (let p = 8; p > 0; p--) {
    const d = Number(x.toPrecision(p));
    if (Math.fround(d) !== x) break;
    text = String(d);
  }
  return text;
}

Deno.test("float32 texts are the exact reference's, byte for byte (any bit pattern, usual values, integers)", () => {
  const integers = fc.integer({ min: -(2 ** 24), max: 2 ** 24 }).map(Math.fround);
  const subnormals = fc.integer({ min: 1, max: 0x7fffff }).map((b) => {
    bits[0] = b;
    return asFloat[0];
  });
  for (const arbitrary of [anyFloat32, usualFloat32, integers, subnormals]) {
    fc.assert(
      fc.property(arbitrary, (x) => {
        const expected = x === 0 ? "0" : (x < 0 ? "-" : "") + referenceText(Math.abs(x));
        assert.equal(textOf(x), expected, `bits of ${x}`);
      }),
      { numRuns: 20_000 },
    );
  }
});
