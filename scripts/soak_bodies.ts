/**
 * Request bodies for the fault soak: valid ones, and malformed, truncated,
 * oversized and fuzzed ones, all from a seeded generator so a run can be
 * repeated.
 * @module
 */

/** A seeded pseudo-random generator (mulberry32): floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Helpers over one generator. */
export class Gen {
  /** Wraps a generator of floats in [0, 1), such as {@link seededRandom}'s. */
  constructor(readonly random: () => number) {}
  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }
  /** One of `items`, each as likely. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)];
  }
}

/** A valid `mlp` body of `rows` rows of 4 numbers. */
export function mlpBody(gen: Gen, rows = gen.int(1, 8)): string {
  const x = Array.from(
    { length: rows },
    () => Array.from({ length: 4 }, () => Math.round((gen.random() * 6 - 3) * 1e4) / 1e4),
  );
  return JSON.stringify({ x });
}

const malformed = [
  "",
  "{",
  "}",
  "{x: [[1, 2, 3, 4]]}",
  "{'x': [[1, 2, 3, 4]]}",
  '{"x": [[1, 2, 3, 4]],}',
  '{"x": [[1, 2, 3, 4]]} trailing',
  '{"x": [[1, 2, 3, 4]]',
  '{"x": [[1, 2, 3, 4]}',
  "[[1, 2, 3, 4]",
  "nul",
  "NaN",
  '{"x": [[1, 2, 3, 4e]]}',
  '{"x": [[01, 2, 3, 4]]}',
  '{"x": "\\u12"}',
  "\u0000\u0001\u0002",
  "\ufeff{}",
];

/** Bodies that are not JSON at all. */
export function malformedBody(gen: Gen): string {
  return gen.pick(malformed);
}

/** Valid JSON of the wrong shape for `mlp`. */
export function wrongSchemaBody(gen: Gen): string {
  return gen.pick([
    "null",
    "[]",
    "{}",
    "42",
    '"x"',
    '{"x": [[1, 2, 3]]}',
    '{"x": [[1, 2, 3, 4, 5]]}',
    '{"x": [["1", 2, 3, 4]]}',
    '{"x": [[null, 2, 3, 4]]}',
    '{"x": [[1e999, 2, 3, 4]]}',
    '{"x": {"0": [1, 2, 3, 4]}}',
    '{"y": [[1, 2, 3, 4]]}',
    '{"x": [[true, false, true, false]]}',
  ]);
}

/** A valid body cut short at a random byte (never the whole of it). */
export function truncatedBody(gen: Gen): string {
  const full = mlpBody(gen, gen.int(1, 16));
  return full.slice(0, gen.int(1, full.length - 1));
}

/** A body just over `limitBytes`: valid JSON in shape, too large to be read. */
export function oversizedBody(gen: Gen, limitBytes: number): Uint8Array<ArrayBuffer> {
  const size = limitBytes + gen.int(1, 64 * 1024);
  const bytes = new Uint8Array(size).fill(0x20);
  const head = new TextEncoder().encode('{"x": [[1, 2, 3, 4]], "pad": "');
  bytes.set(head);
  bytes[size - 2] = 0x22;
  bytes[size - 1] = 0x7d;
  return bytes;
}

const tokens = ["[", "]", "{", "}", ",", ":", '"', "\\", "-", "e", "1e308", "-0", "null", "true", "\u2028", "\ud800"];

/**
 * A fuzzed body: a valid `mlp` body mutated by byte flips, insertions,
 * deletions and duplicated spans, or one of a few pathological shapes (deep
 * nesting, huge numbers, long strings, invalid UTF-8).
 */
export function fuzzedBody(gen: Gen): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  const shape = gen.int(0, 9);
  if (shape === 0) {
    const depth = gen.int(1_000, 200_000);
    return encoder.encode('{"x": ' + "[".repeat(depth) + "1" + "]".repeat(gen.random() < 0.5 ? depth : 0) + "}");
  }
  if (shape === 1) return encoder.encode(`{"x": [[${"9".repeat(gen.int(300, 5000))}, 1, 2, 3]]}`);
  if (shape === 2) return encoder.encode(`{"x": [[1, 2, 3, 4]], "${"k".repeat(gen.int(1, 100_000))}": 1}`);
  if (shape === 3) {
    const bytes = new Uint8Array(gen.int(1, 512));
    for (let i = 0; i < bytes.length; i++) bytes[i] = gen.int(0, 255);
    return bytes;
  }
  let bytes = Array.from(encoder.encode(mlpBody(gen, gen.int(1, 8))));
  const mutations = gen.int(1, 6);
  for (let m = 0; m < mutations; m++) {
    const at = gen.int(0, bytes.length - 1);
    switch (gen.int(0, 4)) {
      case 0:
        bytes[at] ^= 1 << gen.int(0, 7);
        break;
      case 1:
        bytes.splice(at, 0, ...encoder.encode(gen.pick(tokens)));
        break;
      case 2:
        bytes.splice(at, gen.int(1, 8));
        break;
      case 3: {
        const end = Math.min(bytes.length, at + gen.int(1, 32));
        bytes.splice(at, 0, ...bytes.slice(at, end));
        break;
      }
      case 4:
        bytes[at] = gen.int(0x80, 0xff);
        break;
    }
    if (bytes.length === 0) bytes = [0x7b];
  }
  return new Uint8Array(bytes);
}
