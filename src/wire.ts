/**
 * Frames the messages of `src/protocol.ts` over a byte stream (the pipes of a
 * process host), with their `ArrayBuffer`s carried as raw bytes beside the
 * JSON, never as JSON arrays. Both sides import this file.
 *
 * A frame is: magic `ISLN` (u32), JSON length (u32), buffer count (u32), the
 * JSON, then each buffer as length (u32) and bytes; integers little-endian.
 * In the JSON an `ArrayBuffer` stands as an object with one key, NUL + `buf`, holding its index.
 *
 * The messages of every request have a binary form without JSON: a `run` whose jobs hold only `id`, `body`,
 * `requestId` and `contentType` (magic `ISLJ`), and `results` that are all `ok` with only `id` and `body` (magic
 * `ISLK`). Such a frame is: magic (u32), frame length (u32), count (u32), then per job `id` (f64), the lengths
 * (u32) of `requestId` and `contentType` (0xFFFFFFFF where absent) and of `body`, then their bytes; per result `id`
 * (f64), the length of `body` (u32) and its bytes. JSON cost the main thread and the child some 10 µs a message each
 * way (cold caches: each runs once between waits).
 *
 * @example
 * ```ts
 * const bytes = encodeFrame({ type: "run", jobs: [{ id: 1, body: new ArrayBuffer(4) }] });
 * const reader = new FrameReader();
 * reader.push(bytes);
 * reader.next(); // the message, with `body` an ArrayBuffer again
 * ```
 * @module
 */

const magic = 0x4e4c5349; // "ISLN" little-endian
const runMagic = 0x4a4c5349; // "ISLJ"
const resultsMagic = 0x4b4c5349; // "ISLK"
const absent = 0xffffffff;
const headerBytes = 12;
// A key no JSON the runtime writes would hold by chance.
const bufKey = "\u0000buf";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Thrown when a stream does not hold frames (the other side wrote something else). */
export class FrameError extends Error {
  override name = "FrameError";
}

/** What carries buffers in the messages sent on every request: a body, and tensors' data. */
interface Carrier {
  body?: unknown;
  tensors?: { data: unknown }[];
}

/**
 * The lists of buffer carriers in a message of the hot path (`run`, `results`, `item`), or `undefined` for any other
 * message. Their buffers sit only in `body` and `tensors[].data` (`src/protocol.ts`), so they are swapped for
 * placeholders directly; a replacer or reviver walking every key cost several µs a message.
 */
function carriersOf(message: unknown): Carrier[] | undefined {
  const m = message as { type?: unknown; jobs?: Carrier[]; results?: Carrier[] };
  if (m?.type === "run" && Array.isArray(m.jobs)) return m.jobs;
  if (m?.type === "results" && Array.isArray(m.results)) return m.results;
  if (m?.type === "item") return [m as Carrier];
  return undefined;
}

function isPlaceholder(value: unknown): value is Record<string, number> {
  return value !== null && typeof value === "object" &&
    typeof (value as Record<string, unknown>)[bufKey] === "number" &&
    Object.keys(value).length === 1;
}

/** The message's JSON with each `ArrayBuffer` as a placeholder, pushed to `buffers`. */
function stringify(message: unknown, buffers: ArrayBuffer[]): string {
  const placeholder = (value: unknown) => {
    if (!(value instanceof ArrayBuffer)) return value;
    buffers.push(value);
    return { [bufKey]: buffers.length - 1 };
  };
  const carriers = carriersOf(message);
  if (carriers) {
    const list = carriers.map((c) => {
      const out: Carrier = { ...c };
      if ("body" in c) out.body = placeholder(c.body);
      if (c.tensors) out.tensors = c.tensors.map((t) => ({ ...t, data: placeholder(t.data) }));
      return out;
    });
    const m = message as { type: string };
    return JSON.stringify(
      m.type === "run" ? { ...m, jobs: list } : m.type === "results" ? { ...m, results: list } : list[0],
    );
  }
  return JSON.stringify(message, function replace(_key, value) {
    return placeholder(value);
  });
}

/** The message parsed, with each placeholder replaced by its buffer. */
function parse(json: string, buffers: ArrayBuffer[]): unknown {
  if (buffers.length === 0) return JSON.parse(json);
  const message = JSON.parse(json);
  const carriers = carriersOf(message);
  if (!carriers) {
    return JSON.parse(json, function revive(_key, value) {
      return isPlaceholder(value) ? buffers[value[bufKey]] : value;
    });
  }
  for (const c of carriers) {
    if (isPlaceholder(c.body)) c.body = buffers[c.body[bufKey]];
    for (const t of c.tensors ?? []) if (isPlaceholder(t.data)) t.data = buffers[t.data[bufKey]];
  }
  return message;
}

/** A job of the binary `run` form: nothing but these keys, a body, and strings where set. */
function isPlainJob(job: unknown): job is { id: number; body: ArrayBuffer; requestId?: string; contentType?: string } {
  const j = job as Record<string, unknown>;
  if (typeof j !== "object" || j === null || typeof j.id !== "number" || !(j.body instanceof ArrayBuffer)) return false;
  for (const key in j) {
    if (key === "id" || key === "body") continue;
    if ((key === "requestId" || key === "contentType") && (j[key] === undefined || typeof j[key] === "string")) {
      continue;
    }
    return false;
  }
  return true;
}

/** A result of the binary `results` form: `ok`, and nothing but an id and a body. */
function isPlainResult(result: unknown): result is { id: number; ok: true; body: ArrayBuffer } {
  const r = result as Record<string, unknown>;
  if (typeof r !== "object" || r === null || r.ok !== true || typeof r.id !== "number") return false;
  if (!(r.body instanceof ArrayBuffer)) return false;
  for (const key in r) if (key !== "id" && key !== "ok" && key !== "body") return false;
  return true;
}

/** Writes `text` as UTF-8 at `at` and its length at `lengthAt` (0xFFFFFFFF when absent); returns the bytes written. */
function writeString(out: Uint8Array, view: DataView, at: number, lengthAt: number, text: string | undefined): number {
  if (text === undefined) {
    view.setUint32(lengthAt, absent, true);
    return 0;
  }
  const written = encoder.encodeInto(text, out.subarray(at)).written;
  view.setUint32(lengthAt, written, true);
  return written;
}

/** A job of the binary `run` form, as {@link isPlainJob} finds it. */
type PlainJob = { id: number; body: ArrayBuffer; requestId?: string; contentType?: string };

/**
 * The frame of the message `{ type: "run", jobs }` in its binary form, as {@link encodeFrame} writes it, or
 * `undefined` where a job is not plain (tensors, shared inputs, a reply link: the caller then sends the message).
 * What a process host sends for every request; it skips the checks of the message's own keys and the message object.
 */
export function encodeRunFrame(jobs: readonly unknown[]): Uint8Array | undefined {
  for (let i = 0; i < jobs.length; i++) if (!isPlainJob(jobs[i])) return undefined;
  return encodeRun(jobs as readonly PlainJob[]);
}

/** The binary form of a `run` of plain jobs. */
function encodeRun(jobs: readonly PlainJob[]): Uint8Array {
  let size = headerBytes;
  // Strings as UTF-8 take at most 3 bytes a UTF-16 unit: the frame is cut to the bytes written.
  for (const j of jobs) {
    size += 20 + 3 * ((j.requestId?.length ?? 0) + (j.contentType?.length ?? 0)) + j.body.byteLength;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, runMagic, true);
  view.setUint32(8, jobs.length, true);
  let at = headerBytes;
  for (const j of jobs) {
    view.setFloat64(at, j.id, true);
    const head = at;
    at += 20;
    at += writeString(out, view, at, head + 8, j.requestId);
    at += writeString(out, view, at, head + 12, j.contentType);
    view.setUint32(head + 16, j.body.byteLength, true);
    out.set(new Uint8Array(j.body), at);
    at += j.body.byteLength;
  }
  view.setUint32(4, at, true);
  return out.subarray(0, at);
}

/** The message in its binary form (see the module's doc), or `undefined` where it has none. */
function encodeBinary(message: unknown): Uint8Array | undefined {
  const m = message as { type?: unknown; jobs?: unknown; results?: unknown };
  let keys = 0;
  for (const _ in m) keys++;
  if (keys !== 2) return undefined;
  if (m.type === "run" && Array.isArray(m.jobs) && m.jobs.every(isPlainJob)) return encodeRun(m.jobs);
  if (m.type === "results" && Array.isArray(m.results) && m.results.every(isPlainResult)) {
    const results = m.results;
    let size = headerBytes;
    for (const r of results) size += 12 + r.body.byteLength;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    view.setUint32(0, resultsMagic, true);
    view.setUint32(4, size, true);
    view.setUint32(8, results.length, true);
    let at = headerBytes;
    for (const r of results) {
      view.setFloat64(at, r.id, true);
      view.setUint32(at + 8, r.body.byteLength, true);
      out.set(new Uint8Array(r.body), at + 12);
      at += 12 + r.body.byteLength;
    }
    return out;
  }
  return undefined;
}

/** The message of a whole frame in binary form. */
function decodeBinary(frame: Uint8Array, kind: number): unknown {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const count = view.getUint32(8, true);
  let at = headerBytes;
  if (kind === runMagic) {
    const jobs: PlainJob[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const id = view.getFloat64(at, true);
      const requestIdLength = view.getUint32(at + 8, true);
      const contentTypeLength = view.getUint32(at + 12, true);
      const bodyLength = view.getUint32(at + 16, true);
      at += 20;
      let requestId: string | undefined;
      if (requestIdLength !== absent) {
        requestId = decoder.decode(frame.subarray(at, at + requestIdLength));
        at += requestIdLength;
      }
      let contentType: string | undefined;
      if (contentTypeLength !== absent) {
        contentType = decoder.decode(frame.subarray(at, at + contentTypeLength));
        at += contentTypeLength;
      }
      const body = frame.slice(at, at + bodyLength).buffer;
      at += bodyLength;
      // Keys absent where the frame has no value, as in the job that was sent.
      jobs[i] = requestId === undefined
        ? (contentType === undefined ? { id, body } : { id, body, contentType })
        : (contentType === undefined ? { id, body, requestId } : { id, body, requestId, contentType });
    }
    return { type: "run", jobs };
  }
  const results = [];
  for (let i = 0; i < count; i++) {
    const id = view.getFloat64(at, true);
    const bodyLength = view.getUint32(at + 8, true);
    results.push({ id, ok: true, body: frame.slice(at + 12, at + 12 + bodyLength).buffer });
    at += 12 + bodyLength;
  }
  return { type: "results", results };
}

/** Encodes one message as a frame. */
export function encodeFrame(message: unknown): Uint8Array {
  const binary = encodeBinary(message);
  if (binary) return binary;
  const buffers: ArrayBuffer[] = [];
  const json = encoder.encode(stringify(message, buffers));
  let size = headerBytes + json.byteLength;
  for (const b of buffers) size += 4 + b.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic, true);
  view.setUint32(4, json.byteLength, true);
  view.setUint32(8, buffers.length, true);
  out.set(json, headerBytes);
  let at = headerBytes + json.byteLength;
  for (const b of buffers) {
    view.setUint32(at, b.byteLength, true);
    out.set(new Uint8Array(b), at + 4);
    at += 4 + b.byteLength;
  }
  return out;
}

/** Collects bytes from a stream and yields whole messages as they complete. */
export class FrameReader {
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  /** Adds bytes read from the stream. */
  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
  }

  /** The next complete message, or `undefined` until more bytes arrive; throws `FrameError` on garbage. */
  next(): unknown {
    if (this.#buffered < headerBytes) return undefined;
    const head = this.#peek(headerBytes);
    const view = new DataView(head.buffer, head.byteOffset, headerBytes);
    const kind = view.getUint32(0, true);
    if (kind === runMagic || kind === resultsMagic) {
      const size = view.getUint32(4, true);
      if (size < headerBytes) throw new FrameError("The stream holds a frame shorter than its header");
      if (this.#buffered < size) return undefined;
      return decodeBinary(this.#take(size), kind);
    }
    if (kind !== magic) throw new FrameError("The stream holds something other than frames");
    const jsonLength = view.getUint32(4, true);
    const count = view.getUint32(8, true);
    // Buffer lengths follow the JSON; walk them without copying until the frame is whole.
    let need = headerBytes + jsonLength;
    const lengths: number[] = [];
    for (let i = 0; i < count; i++) {
      if (this.#buffered < need + 4) return undefined;
      const bytes = this.#peek(need + 4);
      const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(need, true);
      lengths.push(len);
      need += 4 + len;
    }
    if (this.#buffered < need) return undefined;
    const frame = this.#take(need);
    const json = decoder.decode(frame.subarray(headerBytes, headerBytes + jsonLength));
    const buffers: ArrayBuffer[] = [];
    let at = headerBytes + jsonLength;
    for (const len of lengths) {
      buffers.push(frame.slice(at + 4, at + 4 + len).buffer);
      at += 4 + len;
    }
    return parse(json, buffers);
  }

  /** The first `n` buffered bytes, contiguous (merges chunks when needed). */
  #peek(n: number): Uint8Array {
    if (this.#chunks[0].byteLength < n) {
      const merged = new Uint8Array(this.#buffered);
      let at = 0;
      for (const c of this.#chunks) {
        merged.set(c, at);
        at += c.byteLength;
      }
      this.#chunks = [merged];
    }
    return this.#chunks[0];
  }

  #take(n: number): Uint8Array {
    const first = this.#peek(n);
    const frame = first.subarray(0, n);
    const rest = first.subarray(n);
    // Chunks after the first are kept: the first may have held the whole frame without a merge.
    if (rest.byteLength > 0) this.#chunks[0] = rest;
    else this.#chunks.shift();
    this.#buffered -= n;
    return frame;
  }
}
