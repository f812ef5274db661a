/**
 * FP32 elements as JSON numbers: each is written as the shortest decimal
 * that reads back to the same float32 (what NumPy's and PyTorch's `repr`
 * print, and Ryu's `f2s` computes), not as the double it widens to (Triton's
 * JSON, and `String(x)`: `0.1f` is `0.1`, not `0.10000000149011612`). For
 * every finite float32 `x` and its text `t`, `Math.fround(Number(t)) === x`,
 * so the value is exact for a float32 consumer, and about half as many bytes
 * as the double's text. The text is in ECMAScript's `Number.prototype.toString`
 * form (`0.001`, `123.5`, `1e-7`, `3.4028235e+38`), and `-0` is written `0`,
 * as `JSON.stringify` does.
 *
 * How: for |x| in [1e-4, 1e9) (nearly every model output) the value scaled to
 * nine integer digits, and the bounds of the interval of reals that round to
 * `x`, are exact doubles (a 25-bit mantissa times 5^k, k ≤ 12, fits 53 bits),
 * so the fewest digits inside the interval are found with exact comparisons;
 * the result is checked once more as a reader computes it (one correctly
 * rounded division, then `Math.fround`). For |x| in [1e-13, 1e-4) (small
 * outputs, as of a softmax) the scaled value is not exact: it is taken with its
 * rounding error from Dekker's exact product, and the interval's integer
 * bounds are decided exactly from both. Any other value, and any check that
 * fails, takes `toPrecision` with 1 to 9 digits, checked the same way.
 * @module
 */

/** Powers of ten that a double holds exactly (10^0 to 10^22). */
const pow10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

const ZERO = 0x30, MINUS = 0x2d, DOT = 0x2e, COMMA = 0x2c, OPEN = 0x5b, CLOSE = 0x5d, LOWER_E = 0x65;

/** The most bytes one element's text takes (`-1.2345678e-38` is 14; `-123456789000000000000` is 22). */
export const maxFloat32TextBytes = 24;

/**
 * The shortest text of a finite float32 by trying 1 to 9 significant digits (the slow path, and the reference the
 * tests compare with). `String` of the double read from the digits keeps ECMAScript's form.
 */
export function float32TextSlow(x: number): string {
  if (x === 0) return "0";
  for (let p = 1; p < 9; p++) {
    const d = Number(x.toPrecision(p));
    if (Math.fround(d) === x) return String(d);
  }
  return String(Number(x.toPrecision(9)));
}

/**
 * Writes the text of the finite float32 `x` (a double that is a float32, as read from a `Float32Array`) at `at` in
 * `out`, which must have {@link maxFloat32TextBytes} bytes of room; returns the offset after it.
 */
export function writeFloat32(x: number, out: Uint8Array, at: number): number {
  f32[0] = x;
  return writeFloat32Bits(x, u32[0], out, at);
}

/** {@link writeFloat32} given the float32's bits too (read once per tensor through a `Uint32Array` view). */
function writeFloat32Bits(x: number, bits: number, out: Uint8Array, at: number): number {
  if (x === 0) {
    out[at] = ZERO;
    return at + 1;
  }
  let v = x;
  if (v < 0) {
    out[at++] = MINUS;
    v = -v;
  }
  if (v >= 1e-4 && v < 1e9) {
    const end = writeScaled(v, bits & 0x7fffffff, out, at);
    if (end > 0) return end;
  } else if (v >= 1e-13 && v < 1e-4) {
    const end = writeSmall(v, bits & 0x7fffffff, out, at);
    if (end > 0) return end;
  }
  if (v - v !== 0) {
    // An infinity or NaN, which JSON has no text for: noted for writeFloat32Nested, which then answers -1.
    nonFinite = true;
    out[at] = ZERO;
    return at + 1;
  }
  const text = float32TextOther(v);
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/** Whether writeFloat32Bits met a value that is not finite since writeFloat32Nested began. */
let nonFinite = false;

/**
 * The text of a finite float32 outside the fast path's range: fewer digits while they still read back. Most need 8
 * or 9, so this tries 8 first, and down from there (two or three tries, not the eight of {@link float32TextSlow}).
 */
function float32TextOther(x: number): string {
  let best = String(Number(x.toPrecision(9)));
  for (let p = 8; p > 0; p--) {
    const d = Number(x.toPrecision(p));
    if (Math.fround(d) !== x) break;
    best = String(d);
  }
  return best;
}

/** Half the gap between float32s of each biased exponent (normal numbers): 2^(e - 127 - 24). */
const halfUlp = Array.from({ length: 256 }, (_, e) => 2 ** (e - 127 - 24));

/**
 * The fast path for 1e-4 ≤ v < 1e9 (v > 0, `bits` its float32 bits); returns the offset after the text, or -1 when the final check fails
 * (the caller then takes the slow path).
 */
function writeScaled(v: number, bits: number, out: Uint8Array, at: number): number {
  const biased = (bits >>> 23) & 0xff;
  // k such that s = v·10^k has nine integer digits (log10 of 2^e is e·0.30103, at most one off); every product
  // below is exact (see the module's comment).
  let k = 8 - Math.floor((biased - 127) * 0.30102999566398120);
  if (k > 12) k = 12;
  let s = v * pow10[k];
  if (s >= 1e9 && k > 0) s = v * pow10[--k];
  else if (s < 1e8 && k < 12) s = v * pow10[++k];
  if (s < 1e8 || s >= 1e9) return -1;
  // ulp·10^k / 2: half the gap to the next float32 up; the gap down is half that at a power of two.
  const half = halfUlp[biased] * pow10[k];
  const hi = s + half;
  const lo = (bits & 0x7fffff) === 0 ? s - half / 2 : s - half;
  // Reals exactly halfway round to the even mantissa: the bounds belong to an even one's interval. Candidates are
  // integers, so the interval is [low, high] in integers (exact: s < 2^30).
  // The bounds are integers rarely, so that test is the branch, not the mantissa's parity (a coin toss per value).
  let high = Math.floor(hi);
  let low = Math.ceil(lo);
  if (high === hi && (bits & 1) !== 0) high--;
  if (low === lo && (bits & 1) !== 0) low++;
  const n = fewestDigits(s, low, high);
  const t = trailingZeros;
  // What a reader gets: n·10^-k as one correctly rounded division (both exact), then rounded to float32.
  if (Math.fround(n / pow10[k]) !== v) return -1;
  // Digits of n without its trailing zeros (t of them; one more would have been a multiple of 10^(t+1) inside).
  if (n >= 1e9) return writeTen(n, k, out, at);
  // n has nine digits: all nine are written (its trailing zeros come last, so the text just ends before them).
  const length = 9 - t;
  const point = 9 - k;
  if (point <= 0) {
    // 0.000ddd
    out[at++] = ZERO;
    out[at++] = DOT;
    for (let i = point; i < 0; i++) out[at++] = ZERO;
    writeNine(n, out, at);
    return at + length;
  }
  if (point >= length) {
    // An integer: its digits, then zeros (n's own).
    writeNine(n, out, at);
    return at + point;
  }
  // The point inside the digits: written one further, the integer part moved back over the gap.
  writeNine(n, out, at + 1);
  for (let i = 0; i < point; i++) out[at + i] = out[at + i + 1];
  out[at + point] = DOT;
  return at + length + 1;
}

/**
 * {@link writeScaled} for 1e-13 ≤ v < 1e-4, where 12 < k ≤ 22: v·10^k is no longer a double, so the interval's
 * integer bounds come from {@link smallBounds}, and below 1e-6 the text takes ECMAScript's exponent form. A copy of
 * writeScaled's choice of digits rather than a shared helper: one more branch or call in writeScaled, the path of
 * nearly every element, cost that path about a tenth.
 */
function writeSmall(v: number, bits: number, out: Uint8Array, at: number): number {
  const biased = (bits >>> 23) & 0xff;
  let k = 8 - Math.floor((biased - 127) * 0.30102999566398120);
  if (k > 22) k = 22;
  let s = v * pow10[k];
  if (s >= 1e9) s = v * pow10[--k];
  else if (s < 1e8 && k < 22) s = v * pow10[++k];
  if (s < 1e8 || s >= 1e9 || k <= 12) return -1;
  // 5^k times a power of two: exact for k ≤ 22.
  const half = halfUlp[biased] * pow10[k];
  if (!smallBounds(v, s, half, k, bits)) return -1;
  const high = boundHigh;
  const low = boundLow;
  const n = fewestDigits(s, low, high);
  const t = trailingZeros;
  // What a reader gets: n·10^-k as one correctly rounded division (both exact), then rounded to float32.
  if (Math.fround(n / pow10[k]) !== v) return -1;
  // Digits of n without its trailing zeros (t of them; one more would have been a multiple of 10^(t+1) inside).
  if (n >= 1e9) return writeTen(n, k, out, at);
  // n has nine digits: all nine are written (its trailing zeros come last, so the text just ends before them).
  const length = 9 - t;
  const point = 9 - k;
  if (k >= 15) {
    // Below 1e-6, ECMAScript's form is d.ddde-x.
    writeNine(n, out, at + 1);
    out[at] = out[at + 1];
    at = length > 1 ? at + length + 1 : at + 1;
    if (length > 1) out[at - length] = DOT;
    out[at++] = LOWER_E;
    out[at++] = MINUS;
    const x = k - 8;
    if (x >= 10) {
      out[at++] = ZERO + 1;
      out[at++] = ZERO + x - 10;
    } else out[at++] = ZERO + x;
    return at;
  }
  // 0.000ddd (k ≥ 13: the point is always before the digits)
  out[at++] = ZERO;
  out[at++] = DOT;
  for (let i = point; i < 0; i++) out[at++] = ZERO;
  writeNine(n, out, at);
  return at + length;
}

/** The integer bounds {@link smallBounds} found. */
/** The trailing zeros of the last {@link fewestDigits} (a module variable, as {@link boundLow}: no object per value). */
let trailingZeros = 0;

/**
 * The integer in [low, high] (the interval of s = v·10^k, 10^8 ≤ s < 10^9) with the fewest significant digits,
 * nearest s; its trailing zeros in {@link trailingZeros}.
 */
function fewestDigits(s: number, low: number, high: number): number {
  // The fewest digits: a multiple of 100 inside (7 digits or fewer), else of 10 (8), else any integer (9), each
  // the one nearest s (ties up, as Math.round). Quotients by powers of ten are exact multiplies ((d * 0.1) | 0 is
  // ⌊d / 10⌋ for every integer 0 ≤ d < 2^31, checked exhaustively): divisions cost more than the rest.
  const h1 = (high * 0.1) | 0;
  const h2 = (h1 * 0.1) | 0;
  let t: number, step: number, q: number;
  if (h2 * 100 >= low) {
    t = 2;
    step = 100;
    // The interval is under 120 wide: at most h2 and h2 - 1 are inside, and the nearer s is taken (exact
    // differences; ties up, as Math.round of s / 100 did, without its division).
    q = h2;
    const below = (h2 - 1) * 100;
    if (below >= low && s - below < h2 * 100 - s) q = h2 - 1;
    // Then larger steps while a multiple of one is inside (round numbers: at most one is).
    let hq = h2;
    for (;;) {
      const h = (hq * 0.1) | 0;
      const next = pow10[t + 1];
      if (h * next < low) break;
      t++;
      step = next;
      q = h;
      hq = h;
    }
  } else if (h1 * 10 >= low) {
    t = 1;
    step = 10;
    // The nearest multiple of 10 (ties up): rounded from a multiply, then set right by the exact rest s - 10q, which
    // is in [-5, 5) unless the multiply's rounding crossed a half (rarely: the branches are predicted).
    q = Math.round(s * 0.1);
    const rest = s - q * 10;
    if (rest >= 5) q++;
    else if (rest < -5) q--;
    if (q > h1) q = h1;
    else if (q * 10 < low) q++;
  } else {
    t = 0;
    step = 1;
    q = Math.round(s);
    if (q > high) q = high;
    else if (q < low) q = low;
  }
  trailingZeros = t;
  return q * step;
}

let boundLow = 0;
let boundHigh = 0;

/**
 * The integers inside the interval of reals that round to the float32 `v` (`bits`), scaled by 10^k for
 * 12 < k ≤ 22, into {@link boundLow} and {@link boundHigh}; `false` when there are none. There v·10^k is not a double:
 * `s` is it rounded, and the rest `e` (v·10^k = s + e exactly) comes from Dekker's exact product. `half` (the half
 * gap, 5^k times a power of two) is exact, and an integer c near s is inside when (c - s) - half ≤ e and
 * (c - s) + half' ≥ e, each side computed exactly (c - s and its sum with half have few enough bits), with ties to
 * an even mantissa as above.
 */
function smallBounds(v: number, s: number, half: number, k: number, bits: number): boolean {
  const p = pow10[k];
  let t = 134217729 * v;
  const vh = t - (t - v);
  const vl = v - vh;
  t = 134217729 * p;
  const ph = t - (t - p);
  const pl = p - ph;
  const e = ((vh * ph - s) + vh * pl + vl * ph) + vl * pl;
  const even = (bits & 1) === 0;
  const halfDown = (bits & 0x7fffff) === 0 ? half / 2 : half;
  let high = Math.floor(s + half);
  for (let i = 0; i < 3 && !atMostHigh(high - s - half, e, even); i++) high--;
  if (atMostHigh(high + 1 - s - half, e, even)) high++;
  let low = Math.ceil(s - halfDown);
  for (let i = 0; i < 3 && !atMostHigh(e, low - s + halfDown, even); i++) low++;
  if (atMostHigh(e, low - 1 - s + halfDown, even)) low--;
  if (low > high || !atMostHigh(high - s - half, e, even) || !atMostHigh(e, low - s + halfDown, even)) return false;
  boundLow = low;
  boundHigh = high;
  return true;
}

/** a < b, or a = b where a bound that is reached counts (an even mantissa). */
function atMostHigh(a: number, b: number, even: boolean): boolean {
  return a < b || (a === b && even);
}

/** Writes the nine digits of 10^8 ≤ n < 10^9 at `at`, without loops: two independent four-digit halves and one. */
function writeNine(n: number, out: Uint8Array, at: number): void {
  const high5 = (n * 1e-4) | 0;
  const low4 = n - high5 * 10_000;
  const first = (high5 * 1e-4) | 0;
  const mid4 = high5 - first * 10_000;
  out[at] = ZERO + first;
  const m1 = (mid4 * 0.01) | 0;
  const m2 = (mid4 - m1 * 100) << 1;
  const l1 = (low4 * 0.01) | 0;
  const l2 = (low4 - l1 * 100) << 1;
  out[at + 1] = digitPairs[m1 << 1];
  out[at + 2] = digitPairs[(m1 << 1) + 1];
  out[at + 3] = digitPairs[m2];
  out[at + 4] = digitPairs[m2 + 1];
  out[at + 5] = digitPairs[l1 << 1];
  out[at + 6] = digitPairs[(l1 << 1) + 1];
  out[at + 7] = digitPairs[l2];
  out[at + 8] = digitPairs[l2 + 1];
}

/** The text of n·10^-k for n = 10^9 (an interval that reaches 10^9): a one, then zeros, with the point placed. */
function writeTen(n: number, k: number, out: Uint8Array, at: number): number {
  const text = String(n / pow10[k]);
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/** ASCII of "00" to "99", two bytes each. */
const digitPairs = Uint8Array.from({ length: 200 }, (_, i) => ZERO + (i & 1 ? (i >> 1) % 10 : ((i >> 1) / 10) | 0));

/**
 * Writes float32 `values` as JSON nested by `shape` (row-major; `[]` is a scalar; no dimension 0, and as many values
 * as the shape holds) at `at` in `out`, which must have {@link float32NestedBytes} bytes of room; returns the offset
 * after it, or -1 when a value is not finite (JSON has no text for it: what was written is to be dropped). Finiteness
 * is seen on the slow path only, so the usual values pay nothing for it. One loop over rows, without recursion or
 * closures: V8 keeps `at` in a register.
 */
export function writeFloat32Nested(
  values: Float32Array,
  shape: readonly number[],
  out: Uint8Array,
  at: number,
): number {
  const rank = shape.length;
  nonFinite = false;
  if (rank === 0) {
    const end = writeFloat32(values[0], out, at);
    return nonFinite ? -1 : end;
  }
  const inner = shape[rank - 1];
  const total = values.length;
  const bits = new Uint32Array(values.buffer, values.byteOffset, total);
  for (let d = 0; d < rank; d++) out[at++] = OPEN;
  let i = 0;
  for (;;) {
    at = writeFloat32Bits(values[i], bits[i], out, at);
    i++;
    for (let j = 1; j < inner; j++) {
      out[at++] = COMMA;
      at = writeFloat32Bits(values[i], bits[i], out, at);
      i++;
    }
    out[at++] = CLOSE;
    if (i >= total) break;
    // The outer dimensions that end with this row close, and as many open again.
    let ended = 0;
    let block = inner;
    for (let d = rank - 2; d >= 0; d--) {
      block *= shape[d];
      if (i % block !== 0) break;
      ended++;
    }
    for (let e = 0; e < ended; e++) out[at++] = CLOSE;
    out[at++] = COMMA;
    for (let e = 0; e <= ended; e++) out[at++] = OPEN;
  }
  for (let d = 1; d < rank; d++) out[at++] = CLOSE;
  return nonFinite ? -1 : at;
}

/** Bytes {@link writeFloat32Nested} may need for `count` elements nested by `shape`. */
export function float32NestedBytes(count: number, shape: readonly number[]): number {
  let brackets = 1;
  let rows = 1;
  for (const d of shape) {
    rows *= d;
    brackets += rows;
  }
  return count * (maxFloat32TextBytes + 1) + 2 * brackets + maxFloat32TextBytes;
}
