/**
 * Frames the messages of `src/protocol.ts` over a byte stream (the pipes of a
 * process host), with their `ArrayBuffer`s carried as raw bytes beside the
 * JSON, never as JSON arrays. Both sides import this file.
 *
 * A frame is: magic `ISLN` (u32), JSON length (u32), buffer count (u32), the
 * JSON, then each buffer as length (u32) and bytes; integers little-endian.
 * In the JSON an `ArrayBuffer` stands as an object with one key, NUL + `buf`, holding its index.
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

/** Encodes one message as a frame. */
export function encodeFrame(message: unknown): Uint8Array {
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
    if (view.getUint32(0, true) !== magic) throw new FrameError("The stream holds something other than frames");
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
    this.#chunks = rest.byteLength > 0 ? [rest, ...this.#chunks.slice(1)] : this.#chunks.slice(1);
    this.#buffered -= n;
    return frame;
  }
}
