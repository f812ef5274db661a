/**
 * An HTTP thread's tensor arena: one `SharedArrayBuffer` in which the thread
 * leaves the input tensors of the requests it sends to the main thread, so
 * that the isolate that runs them (a Worker, which shares the memory) copies
 * them from there and the main thread never carries their bytes. Blocks come
 * in power-of-two sizes, each size with its own free list; a tensor larger
 * than the largest block, or one that does not fit any more, is not placed
 * (the caller sends it the usual way).
 * @module
 */

/** The smallest block, in bytes (a power of two). */
const minBlock = 256;

/** A block of the arena. */
export interface ArenaBlock {
  offset: number;
  /** The block's size in bytes (a power of two, at least the bytes asked for). */
  size: number;
}

/** Blocks of one `SharedArrayBuffer`, by size class. */
export class TensorArena {
  readonly #bytes: Uint8Array;
  readonly #free: number[][] = [];
  #top = 0;
  /** Bytes of blocks in use. */
  used = 0;

  /**
   * @param buffer The arena; blocks are carved from it as first needed, so untouched pages cost nothing.
   * @param maxBlock The largest block (a power of two); larger tensors are not placed.
   */
  constructor(readonly buffer: SharedArrayBuffer, readonly maxBlock = 4 * 2 ** 20) {
    this.#bytes = new Uint8Array(buffer);
  }

  /** A block of at least `bytes`, or `undefined` when the arena has none. */
  alloc(bytes: number): ArenaBlock | undefined {
    if (bytes > this.maxBlock) return undefined;
    let size = minBlock;
    let sizeClass = 0;
    while (size < bytes) {
      size *= 2;
      sizeClass++;
    }
    const offset = this.#free[sizeClass]?.pop() ??
      (this.#top + size <= this.buffer.byteLength ? (this.#top += size) - size : undefined);
    if (offset === undefined) return undefined;
    this.used += size;
    return { offset, size };
  }

  /** Copies `data` into a new block; `undefined` when the arena has none. */
  place(data: ArrayBuffer): ArenaBlock | undefined {
    const block = this.alloc(data.byteLength);
    if (block) this.#bytes.set(new Uint8Array(data), block.offset);
    return block;
  }

  /**
   * Gives a block back. An isolate may still read it after this (a request answered by its deadline or abort
   * before its run began); it then reads another request's bytes, for an answer no one takes.
   */
  free(block: ArenaBlock): void {
    const sizeClass = Math.log2(block.size / minBlock);
    (this.#free[sizeClass] ??= []).push(block.offset);
    this.used -= block.size;
  }
}
