/**
 * The answer ring: how a Worker isolate hands an HTTP thread the output tensors of the jobs it answers on their link
 * (`Job.reply`), through shared memory instead of a `postMessage` on the link's port. The HTTP thread makes one ring
 * per link (a `SharedArrayBuffer` of 32-bit words) and one doorbell for all its links, and sends both to the isolate
 * on the link's port ({@link AnswerRingOffer}); the isolate writes each answer's tensors, bytes and all, and the
 * thread drains the ring when the bell rings. The isolate rings only when no drain is due, so a run of many answers
 * costs one wake, and no structured clone on either side. An answer that does not fit (larger than the free part of
 * the ring, a number past 32 bits) is not written: the isolate sends it on the port as before.
 *
 * A record is its length in words, then its kind, then its words. Strings (tensor names, datatypes) are defined once
 * per ring by a string record and named by their index after. A record that does not fit before the ring's end
 * leaves a `-1` there and starts over at 0. Tensor bytes follow their tensor's words, padded to a whole word.
 * @module
 */
import type { WireTensor } from "./protocol.ts";

/** Words of each ring's header: the write index, the read index. */
const headerWords = 2;
const W = 0;
const R = 1;
/** A record kind: a string that later records name by its index. */
const kindString = 1;
/** A record kind: one answer (a thread's request id and its output tensors). */
const kindAnswer = 2;
/** Strings a ring defines at most, and their longest: past either, an answer goes on the port. */
const maxDefined = 4096;
const maxDefinedLength = 256;

/**
 * Bytes of one link's ring: 256 answers of the 8×1024 MLP (4 KiB each), four batches of 64. Its pages are touched
 * only as answers reach them.
 */
export const answerRingBytes = 2 ** 20;

/**
 * What an HTTP thread sends an isolate on a link's port, once: the link's answer ring and the thread's doorbell,
 * which the isolate then writes and rings ({@link AnswerRingWriter}).
 */
export interface AnswerRingOffer {
  k: "answer-ring";
  ring: SharedArrayBuffer;
  bell: SharedArrayBuffer;
}

/** Whether a message on a link's port is an {@link AnswerRingOffer}. */
export function isAnswerRingOffer(message: unknown): message is AnswerRingOffer {
  const m = message as Partial<AnswerRingOffer> | null;
  return typeof m === "object" && m !== null && m.k === "answer-ring" && m.ring instanceof SharedArrayBuffer &&
    m.bell instanceof SharedArrayBuffer;
}

function int32(n: number): boolean {
  return (n | 0) === n;
}

/**
 * The isolate's side of one link's ring: writes answers, and publishes them with {@link publish}, which rings the
 * thread's bell when no drain is due.
 * @example
 * ```ts
 * const writer = new AnswerRingWriter(offer.ring, offer.bell);
 * if (!writer.answer(replyId, tensors)) port.postMessage([{ id: replyId, tensors }]);
 * writer.publish();
 * ```
 */
export class AnswerRingWriter {
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #head: Int32Array;
  readonly #bell: Int32Array;
  readonly #capacity: number;
  /** Where the next record goes; published (the header's write index) by {@link publish}. */
  #at: number;
  readonly #defined = new Map<string, number>();

  /** `ring`: the link's ring ({@link answerRingBytes}, made by the thread); `bell`: the thread's doorbell. */
  constructor(ring: SharedArrayBuffer, bell: SharedArrayBuffer) {
    this.#head = new Int32Array(ring, 0, headerWords);
    this.#words = new Int32Array(ring, headerWords * 4);
    this.#bytes = new Uint8Array(ring, headerWords * 4);
    this.#capacity = this.#words.length;
    this.#bell = new Int32Array(bell, 0, 1);
    this.#at = Atomics.load(this.#head, W);
  }

  /**
   * Writes the answer to the thread's request `id`: its output tensors, bytes and all. `false` when it does not fit
   * (nothing of it is written then, but strings it defined stay defined); the thread sees it after {@link publish}.
   */
  answer(id: number, tensors: readonly WireTensor[]): boolean {
    if (!int32(id)) return false;
    let words = 4;
    for (const t of tensors) {
      if (this.#ref(t.name) === undefined || this.#ref(t.datatype) === undefined) return false;
      for (const d of t.shape) if (!int32(d)) return false;
      words += 4 + t.shape.length + ((t.data.byteLength + 3) >>> 2);
    }
    const at = this.#reserve(words);
    if (at < 0) return false;
    const w = this.#words;
    let i = at;
    w[i++] = words;
    w[i++] = kindAnswer;
    w[i++] = id;
    w[i++] = tensors.length;
    for (const t of tensors) {
      w[i++] = this.#defined.get(t.name)!;
      w[i++] = this.#defined.get(t.datatype)!;
      w[i++] = t.shape.length;
      for (const d of t.shape) w[i++] = d;
      const bytes = t.data.byteLength;
      w[i++] = bytes;
      this.#bytes.set(new Uint8Array(t.data), i * 4);
      i += (bytes + 3) >>> 2;
    }
    return true;
  }

  /**
   * Makes every answer written so far visible to the thread, and rings its bell unless a drain is due already. Call
   * it before the host hears that these jobs were answered: a host that counts a job answered never answers it again.
   */
  publish(): void {
    if (Atomics.load(this.#head, W) === this.#at) return;
    Atomics.store(this.#head, W, this.#at);
    if (Atomics.compareExchange(this.#bell, 0, 0, 1) === 0) Atomics.notify(this.#bell, 0);
  }

  /** The index of a defined string, defining it first; `undefined` when the ring has no room for it. */
  #ref(s: string): number | undefined {
    const known = this.#defined.get(s);
    if (known !== undefined) return known;
    if (this.#defined.size >= maxDefined || s.length > maxDefinedLength) return undefined;
    const words = 3 + s.length;
    const at = this.#reserve(words);
    if (at < 0) return undefined;
    const index = this.#defined.size;
    const w = this.#words;
    w[at] = words;
    w[at + 1] = kindString;
    w[at + 2] = index;
    for (let c = 0; c < s.length; c++) w[at + 3 + c] = s.charCodeAt(c);
    this.#defined.set(s, index);
    return index;
  }

  /**
   * Where a record of `words` goes, moving the write cursor past it; -1 when the reader has not freed enough. One
   * word always stays free, so that equal indexes mean an empty ring.
   */
  #reserve(words: number): number {
    const read = Atomics.load(this.#head, R);
    const at = this.#at;
    if (at >= read) {
      if (at + words < this.#capacity) {
        this.#at = at + words;
        return at;
      }
      // Wrap: a -1 where the record would not fit, the record at 0.
      if (words >= read) return -1;
      this.#words[at] = -1;
      this.#at = words;
      return 0;
    }
    if (at + words >= read) return -1;
    this.#at = at + words;
    return at;
  }
}

/** The HTTP thread's side of one link's ring. */
export class AnswerRingReader {
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #head: Int32Array;
  readonly #strings: string[] = [];

  /** `ring`: the link's ring to offer the isolate (a new one of {@link answerRingBytes} unless given). */
  constructor(readonly ring: SharedArrayBuffer = new SharedArrayBuffer(answerRingBytes)) {
    this.#head = new Int32Array(ring, 0, headerWords);
    this.#words = new Int32Array(ring, headerWords * 4);
    this.#bytes = new Uint8Array(ring, headerWords * 4);
  }

  /**
   * Hands `sink` every answer published so far, in order (its tensors' bytes copied into buffers of their own), and
   * frees their words; returns how many.
   */
  drain(sink: (id: number, tensors: WireTensor[]) => void): number {
    const w = this.#words;
    const end = Atomics.load(this.#head, W);
    let at = Atomics.load(this.#head, R);
    let count = 0;
    while (at !== end) {
      const words = w[at];
      if (words === -1) {
        at = 0;
        continue;
      }
      const kind = w[at + 1];
      if (kind === kindString) {
        this.#strings[w[at + 2]] = String.fromCharCode.apply(null, w.subarray(at + 3, at + words) as never);
      } else if (kind === kindAnswer) {
        let i = at + 2;
        const id = w[i++];
        const tensors: WireTensor[] = new Array(w[i++]);
        for (let t = 0; t < tensors.length; t++) {
          const name = this.#strings[w[i++]];
          const datatype = this.#strings[w[i++]];
          const shape: number[] = new Array(w[i++]);
          for (let d = 0; d < shape.length; d++) shape[d] = w[i++];
          const bytes = w[i++];
          const data = this.#bytes.slice(i * 4, i * 4 + bytes).buffer;
          i += (bytes + 3) >>> 2;
          tensors[t] = { name, datatype, shape, data };
        }
        count++;
        sink(id, tensors);
      }
      at += words;
    }
    Atomics.store(this.#head, R, at);
    return count;
  }
}
