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
 * rounded division, then `Math.fround`). Any other value, and any check that
 * fails, takes `toPrecision` with 1 to 9 digits, checked the same way.
 * @module
 */

/** Powers of ten that a double holds exactly (10^0 to 10^22). */
const pow10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

const ZERO = 0x30, MINUS = 0x2d, DOT = 0x2e, COMMA = 0x2c, OPEN = 0x5b, CLOSE = 0x5d;

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
  }
  const text = float32TextOther(v);
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}

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
  // Multiples of 10^t with 10^t ≤ high - low + 1 are surely inside; past that, at most one is.
  const width = high - low + 1;
  let t = width >= 100 ? 2 : width >= 10 ? 1 : 0;
  let step = pow10[t];
  // The candidate n = q·10^t nearest s, then larger steps while a multiple of one is inside. Quotients of integers
  // by powers of ten come from exact multiplies ((d * 0.1) | 0 is ⌊d / 10⌋ for every integer 0 ≤ d < 2^31, checked
  // exhaustively): a division each cost more than the rest of the number's arithmetic.
  let q = Math.round(t === 0 ? s : s / step);
  if (q * step > high) q--;
  else if (q * step < low) q++;
  let hq = high;
  for (let j = 0; j < t; j++) hq = (hq * 0.1) | 0;
  for (;;) {
    const h = (hq * 0.1) | 0;
    const next = pow10[t + 1];
    if (h * next < low) break;
    t++;
    step = next;
    q = h;
    hq = h;
  }
  const n = q * step;
  // What a reader gets: n·10^-k as one correctly rounded division (both exact), then rounded to float32.
  if (Math.fround(n / pow10[k]) !== v) return -1;
  // Digits of n without its trailing zeros (t of them; one more would have been a multiple of 10^(t+1) inside); n
  // has 9 digits, or 10 when it is 10^9.
  let length = n >= 1e9 ? 10 : 9;
  const point = length - k;
  let digits = q;
  length -= t;
  // `(d * 0.1) | 0` is ⌊d / 10⌋ for every integer 0 ≤ d < 2^31 (checked exhaustively to 10^9 + 1), and a multiply
  // costs a fraction of a division.
  for (let q = (digits * 0.1) | 0; q * 10 === digits && length > 1; q = (digits * 0.1) | 0) {
    digits = q;
    length--;
  }
  if (point >= length) {
    // An integer: its digits, then zeros.
    writeDigits(digits, length, out, at);
    at += length;
    for (let i = length; i < point; i++) out[at++] = ZERO;
    return at;
  }
  if (point > 0) {
    // The point inside the digits: the integer part, the point, then the fraction with its leading zeros.
    const fraction = length - point;
    const whole = (digits / pow10[fraction]) | 0;
    writeDigits(whole, point, out, at);
    out[at + point] = DOT;
    writeDigits(digits - whole * pow10[fraction], fraction, out, at + point + 1);
    return at + length + 1;
  }
  // 0.000ddd
  out[at++] = ZERO;
  out[at++] = DOT;
  for (let i = point; i < 0; i++) out[at++] = ZERO;
  writeDigits(digits, length, out, at);
  return at + length;
}

/** ASCII of "00" to "99", two bytes each. */
const digitPairs = Uint8Array.from({ length: 200 }, (_, i) => ZERO + (i & 1 ? (i >> 1) % 10 : ((i >> 1) / 10) | 0));

/**
 * Writes the `length` last decimal digits of the integer `n` (0 ≤ n < 2^31; leading zeros included) at `at`. Four
 * digits a step, two by two from a table: a digit a step was a chain of dependent multiplies that cost more than
 * the rest of the number's work. `(d * 1e-4) | 0` is ⌊d / 10^4⌋ for every integer 0 ≤ d < 2^31, and `(d * 0.01) | 0`
 * is ⌊d / 100⌋ for 0 ≤ d < 10^5 (both checked exhaustively); a multiply costs a fraction of a division.
 */
function writeDigits(n: number, length: number, out: Uint8Array, at: number): void {
  let i = at + length;
  let rest = n;
  while (i - at >= 4) {
    const q = (rest * 1e-4) | 0;
    const r = rest - q * 10_000;
    const hi = (r * 0.01) | 0;
    const lo = (r - hi * 100) << 1;
    out[i - 1] = digitPairs[lo + 1];
    out[i - 2] = digitPairs[lo];
    out[i - 3] = digitPairs[(hi << 1) + 1];
    out[i - 4] = digitPairs[hi << 1];
    i -= 4;
    rest = q;
  }
  if (i - at >= 2) {
    const q = (rest * 0.01) | 0;
    const r = (rest - q * 100) << 1;
    out[i - 1] = digitPairs[r + 1];
    out[i - 2] = digitPairs[r];
    i -= 2;
    rest = q;
  }
  if (i > at) out[at] = ZERO + rest;
}

/**
 * Writes finite float32 `values` as JSON nested by `shape` (row-major; `[]` is a scalar; no dimension 0, and as many
 * values as the shape holds) at `at` in `out`, which must have {@link float32NestedBytes} bytes of room; returns the
 * offset after it. One loop over rows, without recursion or closures: V8 keeps `at` in a register.
 */
export function writeFloat32Nested(
  values: Float32Array,
  shape: readonly number[],
  out: Uint8Array,
  at: number,
): number {
  const rank = shape.length;
  if (rank === 0) return writeFloat32(values[0], out, at);
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
  return at;
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
