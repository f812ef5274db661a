/**
 * A ring of 32-bit words in a `SharedArrayBuffer`, one writer thread and one reader thread: what the operation ring
 * (`op_ring.ts`, HTTP threads → main thread → isolates) and the answer ring (`answer_ring.ts`, isolates → HTTP
 * threads) are made of. The header holds the write index and the read index; the writer publishes by storing its
 * index, the reader frees by storing its own.
 *
 * A record is its length in words, then its kind, then its words. A record that does not fit before the ring's end
 * leaves a `-1` there and starts over at 0; one word always stays free, so that equal indexes mean an empty ring.
 * Strings that records name often (function names, tensor names, datatypes) are defined once per ring by a record of
 * the ring's string kind (`[length, kind, index, code units...]`) and named by their index after.
 * @module
 */

/** Words of each ring's header: the write index, the read index. */
export const headerWords = 2;
const W = 0;
const R = 1;
/** Strings a ring defines at most, and their longest: past either, `ref` says no. */
const maxDefined = 4096;
const maxDefinedLength = 256;

/** The writer's side: reserves records, defines strings, publishes. */
export class WordRingWriter {
  /** The ring's words after the header; records are written here at the index {@link reserve} gives. */
  readonly words: Int32Array;
  readonly #head: Int32Array;
  readonly #capacity: number;
  /** Where the next record goes; published (the header's write index) by {@link publish}. */
  #at: number;
  readonly #defined = new Map<string, number>();

  /** `ring`: the shared ring; `stringKind`: the record kind of its string definitions. */
  constructor(ring: SharedArrayBuffer, readonly stringKind: number) {
    this.#head = new Int32Array(ring, 0, headerWords);
    this.words = new Int32Array(ring, headerWords * 4);
    this.#capacity = this.words.length;
    this.#at = Atomics.load(this.#head, W);
  }

  /**
   * Where a record of `words` goes, moving the write cursor past it; -1 when the reader has not freed enough. One
   * word always stays free, so that equal indexes mean an empty ring.
   */
  reserve(words: number): number {
    const read = Atomics.load(this.#head, R);
    const at = this.#at;
    if (at >= read) {
      if (at + words < this.#capacity) {
        this.#at = at + words;
        return at;
      }
      // Wrap: a -1 where the record would not fit, the record at 0.
      if (words >= read) return -1;
      this.words[at] = -1;
      this.#at = words;
      return 0;
    }
    if (at + words >= read) return -1;
    this.#at = at + words;
    return at;
  }

  /**
   * The index of a defined string, defining it first (unpublished until the next {@link publish}, like any record);
   * `undefined` when the ring has no room for it, or holds as many strings as it may.
   */
  ref(s: string): number | undefined {
    const known = this.#defined.get(s);
    if (known !== undefined) return known;
    if (this.#defined.size >= maxDefined || s.length > maxDefinedLength) return undefined;
    const words = 3 + s.length;
    const at = this.reserve(words);
    if (at < 0) return undefined;
    const index = this.#defined.size;
    const w = this.words;
    w[at] = words;
    w[at + 1] = this.stringKind;
    w[at + 2] = index;
    for (let c = 0; c < s.length; c++) w[at + 3 + c] = s.charCodeAt(c);
    this.#defined.set(s, index);
    return index;
  }

  /** Makes every record written so far visible to the reader; `false` when there was none. */
  publish(): boolean {
    if (Atomics.load(this.#head, W) === this.#at) return false;
    Atomics.store(this.#head, W, this.#at);
    return true;
  }
}

/** The reader's side: hands over records in order, keeps the strings defined, frees what it read. */
export class WordRingReader {
  /** The ring's words after the header. */
  readonly words: Int32Array;
  /** The strings defined so far, by index. */
  readonly strings: string[] = [];
  readonly #head: Int32Array;

  /** `ring`: the shared ring; `stringKind`: the record kind of its string definitions. */
  constructor(ring: SharedArrayBuffer, readonly stringKind: number) {
    this.#head = new Int32Array(ring, 0, headerWords);
    this.words = new Int32Array(ring, headerWords * 4);
  }

  /**
   * Calls `record(at, kind, words)` for every record published so far other than string definitions (which it
   * keeps in {@link strings}), in order, then frees their words.
   */
  drain(record: (at: number, kind: number, words: number) => void): void {
    const w = this.words;
    const end = Atomics.load(this.#head, W);
    let at = Atomics.load(this.#head, R);
    while (at !== end) {
      const words = w[at];
      if (words === -1) {
        at = 0;
        continue;
      }
      const kind = w[at + 1];
      if (kind === this.stringKind) {
        this.strings[w[at + 2]] = String.fromCharCode.apply(null, w.subarray(at + 3, at + words) as never);
      } else {
        record(at, kind, words);
      }
      at += words;
    }
    Atomics.store(this.#head, R, at);
  }
}
