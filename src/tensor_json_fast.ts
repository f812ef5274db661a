/**
 * The fast path of the `/v1` tensor JSON decoder: a `{"<input>": nested array
 * of numbers, ...}` body scanned straight from its bytes into doubles, without
 * building JSON objects. It takes only the plain form (ASCII, keys without
 * escapes, every key once, rectangular non-empty arrays of numbers) and gives
 * up (returns `undefined`) on anything else, so that the general decoder,
 * which knows every error message, takes the body as it came. Its numbers are
 * those of `JSON.parse`: it reads literals of up to 15 significant digits and
 * a decimal exponent within ±22, which a double holds exactly and one
 * correctly rounded operation converts (Clinger's fast path), and gives up at
 * the first other literal.
 * @module
 */

/** Powers of ten that a double holds exactly. */
const pow10 = [
  1e0,
  1e1,
  1e2,
  1e3,
  1e4,
  1e5,
  1e6,
  1e7,
  1e8,
  1e9,
  1e10,
  1e11,
  1e12,
  1e13,
  1e14,
  1e15,
  1e16,
  1e17,
  1e18,
  1e19,
  1e20,
  1e21,
  1e22,
];

/**
 * One tensor as scanned: its shape read off the nesting, and its elements row-major. `values` is a view of a buffer
 * that the next scan reuses: copy (or convert) it before scanning another body.
 */
export interface ScannedTensor {
  shape: number[];
  values: Float64Array;
}

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a, COMMA = 0x2c;
const OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d;
const MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e, ZERO = 0x30, NINE = 0x39, LOWER_E = 0x65, UPPER_E = 0x45;

/** Thrown inside the scanner to give up; never escapes it. */
const giveUp = Symbol("give up");

/**
 * Scans a `/v1` tensor body whose keys are exactly `names`, each a nested
 * array of numbers nested at most `maxRank` deep. Returns `undefined` when the
 * body is not in the plain form (or not JSON at all): the general decoder then
 * decides. The values are views of a buffer reused by the next call (see
 * {@link ScannedTensor}): a copy per body cost as much as a short body's scan.
 *
 * @example
 * ```ts
 * scanNumberTensors(new TextEncoder().encode('{"x":[[1,2],[3,4]]}'), ["x"], 32);
 * // Map { "x" => { shape: [2, 2], values: Float64Array [1, 2, 3, 4] } }
 * ```
 */
export function scanNumberTensors(
  bytes: Uint8Array,
  names: readonly string[],
  maxRank: number,
): Map<string, ScannedTensor> | undefined {
  try {
    return scan(bytes, names, maxRank);
  } catch {
    // Given up, or anything unforeseen: the general path reads the body and says what is wrong with it.
    return undefined;
  }
}

function scan(b: Uint8Array, names: readonly string[], maxRank: number): Map<string, ScannedTensor> {
  const n = b.length;
  const out = new Map<string, ScannedTensor>();
  // Every value takes at least two bytes (a digit and a separator): the tensors of a body fit one after the other.
  const scratch: Scratch = { values: valuesFor((n + 1) >> 1), count: 0 };
  let i = skipSpace(b, 0);
  if (b[i++] !== OPEN_OBJECT) throw giveUp;
  for (;;) {
    i = skipSpace(b, i);
    if (b[i++] !== QUOTE) throw giveUp;
    const start = i;
    let c = b[i];
    while (c !== QUOTE) {
      // Input names are short; a long key is no input's, and the general path says so.
      if (c < SPACE || c > 0x7e || c === BACKSLASH || i - start > 256) throw giveUp;
      c = b[++i];
    }
    const key = String.fromCharCode(...b.subarray(start, i));
    i = skipSpace(b, i + 1);
    if (!names.includes(key) || out.has(key)) throw giveUp;
    if (b[i++] !== COLON) throw giveUp;
    i = skipSpace(b, i);
    if (b[i] !== OPEN_ARRAY) throw giveUp;
    const shape: number[] = [];
    const first = scratch.count;
    i = scanTensor(b, i, maxRank, shape, scratch);
    if (i < 0) throw giveUp;
    out.set(key, { shape, values: scratch.values.subarray(first, scratch.count) });
    i = skipSpace(b, i);
    const d = b[i++];
    if (d === CLOSE_OBJECT) break;
    if (d !== COMMA) throw giveUp;
  }
  if (skipSpace(b, i) !== n || out.size !== names.length) throw giveUp;
  return out;
}

/** Values of the bodies scanned, reused: a new buffer per body costs as much as a short body's scan. */
let kept = new Float64Array(0);

/** Room for `count` values: the kept buffer, grown as bodies need (bodies of more than 8 MiB of values get their own). */
function valuesFor(count: number): Float64Array {
  if (count <= kept.length) return kept;
  if (count > 2 ** 20) return new Float64Array(count);
  return (kept = new Float64Array(Math.max(count, 2 * kept.length)));
}

interface Scratch {
  values: Float64Array;
  /** Values written so far (the next tensor's start). */
  count: number;
}

function skipSpace(b: Uint8Array, i: number): number {
  let c = b[i];
  while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++i];
  return i;
}

/**
 * Scans the nested array at `i` (a `[`) into `scratch.values` from `scratch.count` on (moved past it) and `shape`; returns
 * the index after its `]`, or -1 to give up. One loop with its state in locals, so that V8 keeps it all in
 * registers.
 */
function scanTensor(b: Uint8Array, i: number, maxRank: number, shape: number[], scratch: Scratch): number {
  const values = scratch.values;
  const counts: number[] = [];
  let rank = -1;
  let depth = 0;
  let count = scratch.count;
  for (;;) {
    // At a value.
    let c = b[i];
    while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++i];
    if (c === OPEN_ARRAY) {
      if (depth > 0) counts[depth - 1]++;
      if (rank !== -1 && depth >= rank) return -1;
      if (++depth > maxRank) return -1;
      counts[depth - 1] = 0;
      i++;
      continue;
    }
    if (rank === -1) rank = depth;
    else if (depth !== rank) return -1;
    counts[depth - 1]++;
    // A JSON number.
    let negative = false;
    if (c === MINUS) {
      negative = true;
      c = b[++i];
    }
    let mantissa = 0;
    let digits = 0;
    let exponent = 0;
    if (c === ZERO) {
      c = b[++i];
      if (c >= ZERO && c <= NINE) return -1;
    } else if (c > ZERO && c <= NINE) {
      // Every digit goes into the mantissa: past 15 significant ones the literal is given up below, so a mantissa
      // that is no longer exact then is never used.
      do {
        mantissa = mantissa * 10 + (c - ZERO);
        digits++;
        c = b[++i];
      } while (c >= ZERO && c <= NINE);
    } else return -1;
    if (c === DOT) {
      c = b[++i];
      if (!(c >= ZERO && c <= NINE)) return -1;
      const dot = i;
      // Significant digits start at the first that is not zero: after `0.`, the zeros before it are skipped. The
      // counts come from positions after the loop, not per digit.
      if (mantissa === 0) {
        while (c === ZERO) c = b[++i];
      }
      const first = i;
      while (c >= ZERO && c <= NINE) {
        mantissa = mantissa * 10 + (c - ZERO);
        c = b[++i];
      }
      digits += i - first;
      exponent -= i - dot;
    }
    if (c === LOWER_E || c === UPPER_E) {
      c = b[++i];
      let sign = 1;
      if (c === MINUS || c === PLUS) {
        if (c === MINUS) sign = -1;
        c = b[++i];
      }
      if (!(c >= ZERO && c <= NINE)) return -1;
      let e = 0;
      do {
        if (e < 100_000) e = e * 10 + (c - ZERO);
        c = b[++i];
      } while (c >= ZERO && c <= NINE);
      exponent += sign * e;
    }
    let value: number;
    if (mantissa === 0) value = negative ? -0 : 0;
    else if (digits <= 15 && exponent >= -22 && exponent <= 22) {
      value = exponent < 0 ? mantissa / pow10[-exponent] : mantissa * pow10[exponent];
      if (negative) value = -value;
    } else {
      // Past the fast path (16 or more significant digits, as a float32 written as a double has): such bodies are
      // rarely a mix, and JSON.parse reads them faster than literal by literal here.
      return -1;
    }
    values[count++] = value;
    // After a value: `,` and the next, or `]`s.
    for (;;) {
      while (c === SPACE || c === LF || c === CR || c === TAB) c = b[++i];
      i++;
      if (c === COMMA) break;
      if (c !== CLOSE_ARRAY) return -1;
      const length = counts[depth - 1];
      const known = shape[depth - 1];
      if (known === undefined) shape[depth - 1] = length;
      else if (known !== length) return -1;
      if (--depth === 0) {
        scratch.count = count;
        return i;
      }
      c = b[i];
    }
  }
}
