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
import { headerWords, WordRingReader, WordRingWriter } from "./word_ring.ts";

/** A record kind: a string that later records name by its index. */
const kindString = 1;
/** A record kind: one answer (a thread's request id and its output tensors). */
const kindAnswer = 2;

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

/** An output tensor as {@link AnswerRingWriter.answer} takes it: a wire tensor, or one whose bytes are a view. */
export type AnswerTensor = WireTensor | { name: string; datatype: string; shape: readonly number[]; bytes: Uint8Array };

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
  readonly #ring: WordRingWriter;
  readonly #words: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #bell: Int32Array;

  /** `ring`: the link's ring ({@link answerRingBytes}, made by the thread); `bell`: the thread's doorbell. */
  constructor(ring: SharedArrayBuffer, bell: SharedArrayBuffer) {
    this.#ring = new WordRingWriter(ring, kindString);
    this.#words = this.#ring.words;
    this.#bytes = new Uint8Array(ring, headerWords * 4);
    this.#bell = new Int32Array(bell, 0, 1);
  }

  /**
   * Writes the answer to the thread's request `id`: its output tensors, bytes and all. `false` when it does not fit
   * (nothing of it is written then, but strings it defined stay defined); the thread sees it after {@link publish}.
   */
  answer(id: number, tensors: readonly AnswerTensor[]): boolean {
    if (!int32(id)) return false;
    let words = 4;
    for (const t of tensors) {
      if (this.#ring.ref(t.name) === undefined || this.#ring.ref(t.datatype) === undefined) return false;
      for (const d of t.shape) if (!int32(d)) return false;
      words += 4 + t.shape.length + ((("bytes" in t ? t.bytes : t.data).byteLength + 3) >>> 2);
    }
    const at = this.#ring.reserve(words);
    if (at < 0) return false;
    const w = this.#words;
    let i = at;
    w[i++] = words;
    w[i++] = kindAnswer;
    w[i++] = id;
    w[i++] = tensors.length;
    for (const t of tensors) {
      w[i++] = this.#ring.ref(t.name)!;
      w[i++] = this.#ring.ref(t.datatype)!;
      w[i++] = t.shape.length;
      for (const d of t.shape) w[i++] = d;
      const data = "bytes" in t ? t.bytes : new Uint8Array(t.data);
      const bytes = data.byteLength;
      w[i++] = bytes;
      this.#bytes.set(data, i * 4);
      i += (bytes + 3) >>> 2;
    }
    return true;
  }

  /**
   * Makes every answer written so far visible to the thread, and rings its bell unless a drain is due already. Call
   * it before the host hears that these jobs were answered: a host that counts a job answered never answers it again.
   */
  publish(): void {
    if (!this.#ring.publish()) return;
    if (Atomics.compareExchange(this.#bell, 0, 0, 1) === 0) Atomics.notify(this.#bell, 0);
  }
}

/** The HTTP thread's side of one link's ring. */
export class AnswerRingReader {
  readonly #ring: WordRingReader;
  readonly #bytes: Uint8Array;
  /** The sink of the drain in progress, and the answers it was handed. */
  #sink: (id: number, tensors: WireTensor[]) => void = () => {};
  #count = 0;

  /** `ring`: the link's ring to offer the isolate (a new one of {@link answerRingBytes} unless given). */
  constructor(readonly ring: SharedArrayBuffer = new SharedArrayBuffer(answerRingBytes)) {
    this.#ring = new WordRingReader(ring, kindString);
    this.#bytes = new Uint8Array(ring, headerWords * 4);
  }

  /**
   * Hands `sink` every answer published so far, in order (its tensors' bytes copied into buffers of their own), and
   * frees their words; returns how many.
   */
  drain(sink: (id: number, tensors: WireTensor[]) => void): number {
    this.#sink = sink;
    this.#count = 0;
    try {
      this.#ring.drain(this.#record);
    } finally {
      this.#sink = () => {};
    }
    return this.#count;
  }

  #record = (at: number, kind: number): void => {
    if (kind !== kindAnswer) return;
    const w = this.#ring.words;
    const strings = this.#ring.strings;
    let i = at + 2;
    const id = w[i++];
    const tensors: WireTensor[] = new Array(w[i++]);
    for (let t = 0; t < tensors.length; t++) {
      const name = strings[w[i++]];
      const datatype = strings[w[i++]];
      const shape: number[] = new Array(w[i++]);
      for (let d = 0; d < shape.length; d++) shape[d] = w[i++];
      const bytes = w[i++];
      const data = this.#bytes.slice(i * 4, i * 4 + bytes).buffer;
      i += (bytes + 3) >>> 2;
      tensors[t] = { name, datatype, shape, data };
    }
    this.#count++;
    this.#sink(id, tensors);
  };
}
