/**
 * The operation ring: how an HTTP thread hands the main thread its infer requests whose tensors lie in the thread's
 * arena, through shared memory instead of `postMessage`. Each thread has a ring of 32-bit words (a
 * `SharedArrayBuffer`) that it writes and the main thread drains; all threads share one doorbell word that says
 * whether a drain is already due. A thread rings (`Atomics.notify`, which resolves the main thread's
 * `Atomics.waitAsync`) only when none is due, so under load most requests cost the main thread no message and no
 * wake at all: they wait in the ring for the drain that the first of them asked for. On the 2-core VM a wake by
 * `Atomics.waitAsync` cost the idle main thread about 18 µs of CPU against 25–27 µs for a `postMessage` of one
 * number.
 *
 * A record is its length in words, then its words. Strings are a word `>= 0` (the index of a string defined before
 * in the same ring: function names, datatypes, tensor names) or `-(length + 1)` followed by one UTF-16 code unit per
 * word (request ids: each is new). A record that does not fit before the ring's end leaves a `-1` there and starts
 * over at 0. A request that does not fit at all (the ring is full, a number is not a 32-bit integer) is not written:
 * the caller sends it the usual way.
 * @module
 */
import { type Job, noBody, type SharedTensor } from "./protocol.ts";
import { WordRingReader, WordRingWriter } from "./word_ring.ts";

/** A record kind: one infer request. */
const kindInfer = 1;
/** A record kind: a string that later records name by its index. */
const kindString = 2;
/** A record kind: ids of jobs an isolate answered on its links (see {@link RingWriter.ids}). */
const kindIds = 3;
/** A record kind: a run of jobs whose inputs lie in HTTP threads' arenas (see {@link RingWriter.jobs}). */
const kindJobs = 4;
/** Bytes of one thread's ring: about 12,000 batch-1 requests of the 8×1024 MLP. */
export const ringBytes = 4 * 2 ** 20;

/** One infer request as it crosses the ring: the `infer` operation of `http_bridge.ts` with `shared` tensors. */
export interface RingInfer {
  k: "infer";
  id: number;
  version: number;
  name: string;
  requestId: string;
  shared: SharedTensor[];
}

function int32(n: number): boolean {
  return (n | 0) === n;
}

/** Options of {@link RingWriter}. */
export interface RingWriterOptions {
  /**
   * Whether the reader asked not to be rung for infer requests to function `name` now (it takes them when it next
   * drains for another reason). Asked when a request is written and again once it is published: a request is
   * published quietly only if both say so, so a reader that lifts its ask and then drains misses none.
   */
  quiet?: (name: string) => boolean;
}

/** A thread's side: writes records, publishes them at the end of the turn, and rings when no drain is due. */
export class RingWriter {
  readonly #ring: WordRingWriter;
  readonly #words: Int32Array;
  readonly #bell: Int32Array;
  #scheduled = false;
  readonly #quiet: ((name: string) => boolean) | undefined;
  /** Whether a record written since the last publish needs the bell rung. */
  #loud = false;
  /** Functions of the infer requests written quietly since the last publish. */
  readonly #quietNames: string[] = [];

  /** `ring` is the thread's ring, `bell` the doorbell shared by all threads. */
  constructor(ring: SharedArrayBuffer, bell: SharedArrayBuffer, options: RingWriterOptions = {}) {
    this.#quiet = options.quiet;
    this.#ring = new WordRingWriter(ring, kindString);
    this.#words = this.#ring.words;
    this.#bell = new Int32Array(bell, 0, 1);
  }

  /** Writes one infer request; `false` when it does not fit (nothing is written then). */
  infer(op: RingInfer): boolean {
    const name = this.#ring.ref(op.name);
    if (name === undefined) return false;
    const tensors = this.#tensorWords(op.shared);
    if (tensors < 0 || !int32(op.id) || !int32(op.version)) return false;
    const words = 5 + this.#inlineWords(op.requestId) + tensors;
    const at = this.#ring.reserve(words);
    if (at < 0) return false;
    const w = this.#words;
    let i = at;
    w[i++] = words;
    w[i++] = kindInfer;
    w[i++] = op.id;
    w[i++] = op.version;
    w[i++] = name;
    i = this.#writeInline(i, op.requestId);
    this.#writeTensors(i, op.shared);
    if (!this.#quiet?.(op.name)) this.#loud = true;
    else if (!this.#quietNames.includes(op.name)) this.#quietNames.push(op.name);
    this.#publishSoon();
    return true;
  }

  /**
   * Writes a list of ids (32-bit integers): an isolate's jobs answered on their links, which the host then counts as
   * done without a `results` message. `false` when it does not fit.
   */
  ids(ids: readonly number[]): boolean {
    for (const id of ids) if (!int32(id)) return false;
    const words = 2 + ids.length;
    const at = this.#ring.reserve(words);
    if (at < 0) return false;
    const w = this.#words;
    w[at] = words;
    w[at + 1] = kindIds;
    for (let i = 0; i < ids.length; i++) w[at + 2 + i] = ids[i];
    this.#loud = true;
    this.#publishSoon();
    return true;
  }

  /**
   * Writes a run of jobs that take their inputs from HTTP threads' arenas and answer on links (each has `shared` and
   * `reply`, and no body, tensors or content type: `packable` in `packed.ts`). `false` when one does not fit.
   */
  jobs(jobs: readonly Job[]): boolean {
    let words = 3;
    // Indexed loops here and below: the main thread writes every job of every batch.
    for (let j = 0; j < jobs.length; j++) {
      const job = jobs[j];
      if (!int32(job.id) || !int32(job.reply!.link) || !int32(job.reply!.id)) return false;
      const tensors = this.#tensorWords(job.shared!);
      if (tensors < 0) return false;
      words += 3 + this.#inlineWords(job.requestId ?? "") + tensors;
    }
    const at = this.#ring.reserve(words);
    if (at < 0) return false;
    const w = this.#words;
    let i = at;
    w[i++] = words;
    w[i++] = kindJobs;
    w[i++] = jobs.length;
    for (let j = 0; j < jobs.length; j++) {
      const job = jobs[j];
      w[i++] = job.id;
      w[i++] = job.reply!.link;
      w[i++] = job.reply!.id;
      i = this.#writeInline(i, job.requestId ?? "");
      i = this.#writeTensors(i, job.shared!);
    }
    this.#loud = true;
    this.#publishSoon();
    return true;
  }

  /**
   * The words `#writeTensors` takes for `shared` (its count, then each tensor's name, datatype, rank, dimensions,
   * offset and bytes), their names and datatypes defined on the ring first; -1 when one cannot be written (a name that
   * does not fit, or a number past 32 bits).
   */
  #tensorWords(shared: readonly SharedTensor[]): number {
    let words = 1;
    for (let k = 0; k < shared.length; k++) {
      const t = shared[k];
      if (this.#ring.ref(t.name) === undefined || this.#ring.ref(t.datatype) === undefined) return -1;
      for (let d = 0; d < t.shape.length; d++) if (!int32(t.shape[d])) return -1;
      if (!int32(t.offset) || !int32(t.bytes)) return -1;
      words += 5 + t.shape.length;
    }
    return words;
  }

  #writeTensors(i: number, shared: readonly SharedTensor[]): number {
    const w = this.#words;
    w[i++] = shared.length;
    for (let k = 0; k < shared.length; k++) {
      const t = shared[k];
      w[i++] = this.#ring.ref(t.name) ?? 0;
      w[i++] = this.#ring.ref(t.datatype) ?? 0;
      w[i++] = t.shape.length;
      for (let d = 0; d < t.shape.length; d++) w[i++] = t.shape[d];
      w[i++] = t.offset;
      w[i++] = t.bytes;
    }
    return i;
  }

  #inlineWords(s: string): number {
    return 1 + s.length;
  }

  #writeInline(i: number, s: string): number {
    const w = this.#words;
    w[i++] = -(s.length + 1);
    for (let c = 0; c < s.length; c++) w[i++] = s.charCodeAt(c);
    return i;
  }

  #publishSoon(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#publish);
  }

  #publish = (): void => {
    this.#scheduled = false;
    this.#ring.publish();
    // Asked again after the store: a reader that lifted its ask before this drains after it, and sees the records.
    let loud = this.#loud;
    const names = this.#quietNames;
    for (let i = 0; i < names.length && !loud; i++) if (!this.#quiet!(names[i])) loud = true;
    this.#loud = false;
    names.length = 0;
    if (loud && Atomics.compareExchange(this.#bell, 0, 0, 1) === 0) Atomics.notify(this.#bell, 0);
  };
}

/** What a ring's records go to, in order. */
export interface RingSink {
  infer?(op: RingInfer): void;
  ids?(ids: number[]): void;
  /** Jobs as `unpackJobs` in `packed.ts` makes them: `body` is `noBody`. */
  jobs?(jobs: Job[]): void;
}

/** The main thread's side of one ring. */
export class RingReader {
  readonly #ring: WordRingReader;
  readonly #words: Int32Array;
  readonly #strings: string[];
  /** The sink of the drain in progress, and the records it was handed. */
  #sink: RingSink = {};
  #count = 0;

  constructor(ring: SharedArrayBuffer) {
    this.#ring = new WordRingReader(ring, kindString);
    this.#words = this.#ring.words;
    this.#strings = this.#ring.strings;
  }

  /** Hands `sink` every record written and published so far, in order, and frees their words; returns how many. */
  drain(sink: RingSink): number {
    this.#sink = sink;
    this.#count = 0;
    try {
      this.#ring.drain(this.#record);
    } finally {
      this.#sink = {};
    }
    return this.#count;
  }

  #record = (at: number, kind: number, words: number): void => {
    const w = this.#words;
    const sink = this.#sink;
    if (kind === kindIds) {
      this.#count++;
      sink.ids?.(Array.from(w.subarray(at + 2, at + words)));
    } else if (kind === kindInfer) {
      let i = at + 2;
      const id = w[i++];
      const version = w[i++];
      const name = this.#strings[w[i++]];
      this.#at = i;
      const requestId = this.#inline();
      const shared = this.#tensors();
      this.#count++;
      sink.infer?.({ k: "infer", id, version, name, requestId, shared });
    } else if (kind === kindJobs) {
      this.#at = at + 2;
      const jobs: Job[] = new Array(w[this.#at++]);
      for (let j = 0; j < jobs.length; j++) {
        const id = w[this.#at++];
        const link = w[this.#at++];
        const replyId = w[this.#at++];
        const requestId = this.#inline();
        const job: Job = { id, body: noBody, shared: this.#tensors(), reply: { link, id: replyId } };
        if (requestId) job.requestId = requestId;
        jobs[j] = job;
      }
      this.#count++;
      sink.jobs?.(jobs);
    }
  };

  /** Where {@link #inline} and {@link #tensors} read next. */
  #at = 0;

  /**
   * A string written inline (`-(length + 1)`, then its code units); the empty string for a 0. Its code units go
   * through an array kept per length (request ids: one or two lengths), not a `subarray` view: the view and the
   * argument list `apply` copies from a typed array were the largest allocations per request on the main thread.
   */
  #inline(): string {
    const w = this.#words;
    const length = -w[this.#at++] - 1;
    if (length <= 0) return "";
    let units = this.#units[length];
    if (!units) units = this.#units[length] = new Array<number>(length).fill(0);
    for (let c = 0, at = this.#at; c < length; c++) units[c] = w[at + c];
    this.#at += length;
    return String.fromCharCode.apply(null, units);
  }

  /** Arrays of code units by length, for {@link #inline}. */
  readonly #units: number[][] = [];

  #tensors(): SharedTensor[] {
    const w = this.#words;
    const shared: SharedTensor[] = new Array(w[this.#at++]);
    for (let t = 0; t < shared.length; t++) {
      const name = this.#strings[w[this.#at++]];
      const datatype = this.#strings[w[this.#at++]];
      const shape: number[] = new Array(w[this.#at++]);
      for (let d = 0; d < shape.length; d++) shape[d] = w[this.#at++];
      shared[t] = { name, datatype, shape, offset: w[this.#at++], bytes: w[this.#at++] };
    }
    return shared;
  }
}

/**
 * The main thread's doorbell: calls every drain added whenever a writer rang, until {@link close}. A drain that is
 * due keeps the bell at 1, so writers do not ring meanwhile; it is set back to 0 before the rings are read, so that
 * a record published after that rings again. Drains run in the order added.
 */
export class Doorbell {
  readonly #bell: Int32Array;
  readonly #drains = new Set<() => void>();
  #closed = false;

  #waiting = false;

  /** `buffer`: the bell's shared memory (4 bytes), made here unless the writers' side made it. */
  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.#bell = new Int32Array(buffer, 0, 1);
  }

  /**
   * Calls `drain` now (a writer may have rung before it was added: that ring went to the drains of then) and on
   * every ring of the bell from now on. The first drain added starts the wait.
   */
  add(drain: () => void): void {
    this.#drains.add(drain);
    drain();
    if (!this.#waiting) {
      this.#waiting = true;
      this.#wait();
    }
  }

  delete(drain: () => void): void {
    this.#drains.delete(drain);
  }

  /** Calls every drain; one that throws is reported as uncaught, and neither stops the others nor the bell. */
  ring(): void {
    for (const drain of this.#drains) {
      try {
        drain();
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  #wait(): void {
    for (;;) {
      const wait = Atomics.waitAsync(this.#bell, 0, 0);
      if (wait.async) {
        void wait.value.then(this.#rung);
        return;
      }
      if (this.#closed) return;
      Atomics.store(this.#bell, 0, 0);
      this.ring();
    }
  }

  #rung = (): void => {
    if (this.#closed) return;
    Atomics.store(this.#bell, 0, 0);
    this.ring();
    this.#wait();
  };

  /** Stops listening (the pending wait is woken and ends). */
  close(): void {
    this.#closed = true;
    Atomics.store(this.#bell, 0, 1);
    Atomics.notify(this.#bell, 0);
  }
}

let doorbell: Doorbell | undefined;

/**
 * The runtime's one doorbell on the main thread, made on first use: HTTP threads and Worker isolates ring it. A
 * wait on it does not keep the process alive.
 */
export function mainDoorbell(): Doorbell {
  return doorbell ??= new Doorbell();
}
