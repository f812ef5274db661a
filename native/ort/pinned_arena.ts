/**
 * Pinned host memory that JS code reads and writes in place: one block from
 * the caller's pinned allocator (a lane's `cuMemHostAlloc`), mapped once as
 * one `ArrayBuffer` while the ffi permission is still held
 * (`Deno.UnsafePointerView.getArrayBuffer`; the buffer stays valid after the
 * permission is dropped), and carved into regions. A session that stages in
 * a region needs no copy between JS memory and its pinned staging: the DMA to
 * the device reads the bytes where JS wrote them, and JS reads the outputs
 * where the DMA put them.
 *
 * The regions are the runtime's own: views of them never reach user code
 * (`NativeSession.runStaged` hands them to the caller's callbacks only).
 *
 * @example
 * ```ts
 * const arena = PinnedArena.map(lane.pinnedMemory(), 4 << 20); // before Deno.permissions.revoke({ name: "ffi" })
 * const at = arena.alloc(1024)!;
 * arena.bytes(at, 1024).fill(1); // pinned memory at arena.address + BigInt(at)
 * arena.close();
 * ```
 * @module
 */
import { OrtError } from "./error.ts";
import type { PinnedHostMemory } from "./native_session.ts";

/** Regions start at multiples of this many bytes (any element type's alignment, and a DMA-friendly one). */
export const arenaAlignment = 256;

/** Maps `bytes` of host memory at `address` as an `ArrayBuffer`; needs the ffi permission. */
export type HostMapper = (address: bigint, bytes: number) => ArrayBuffer;

/** Deno's own mapping of host memory as an `ArrayBuffer` (no copy; the memory stays the caller's). */
export function mapHostMemory(address: bigint, bytes: number): ArrayBuffer {
  const pointer = Deno.UnsafePointer.create(address);
  if (pointer === null) throw new OrtError("PinnedArena.map", 2, "cannot map address 0");
  return Deno.UnsafePointerView.getArrayBuffer(pointer, bytes);
}

function align(bytes: number): number {
  return Math.ceil(bytes / arenaAlignment) * arenaAlignment;
}

/** One block of pinned memory mapped as JS memory, carved into regions (first fit). */
export class PinnedArena {
  /** The block's address: region `offset` is at `address + BigInt(offset)`. */
  readonly address: bigint;
  /** The block's size in bytes. */
  readonly byteLength: number;
  readonly #pinned: PinnedHostMemory;
  #buffer: ArrayBuffer;
  /** Free spans, sorted by offset, never adjacent (merged on free). */
  #free: { offset: number; bytes: number }[];
  /** Regions handed out: offset → bytes (aligned). */
  readonly #used = new Map<number, number>();
  #closed = false;

  private constructor(pinned: PinnedHostMemory, address: bigint, byteLength: number, buffer: ArrayBuffer) {
    this.#pinned = pinned;
    this.address = address;
    this.byteLength = byteLength;
    this.#buffer = buffer;
    this.#free = byteLength > 0 ? [{ offset: 0, bytes: byteLength }] : [];
  }

  /**
   * Allocates `bytes` (rounded up to {@link arenaAlignment}) of pinned memory and maps it. Call while the ffi
   * permission is held.
   * @throws {OrtError} `ORT_INVALID_ARGUMENT` for a size that is not a positive integer.
   * @throws the allocator's error (a `CudaError` from a lane) when the memory cannot be had; Deno's `NotCapable`
   * when ffi was dropped already.
   */
  static map(pinned: PinnedHostMemory, bytes: number, mapper: HostMapper = mapHostMemory): PinnedArena {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new OrtError("PinnedArena.map", 2, `an arena needs a positive whole number of bytes, got ${bytes}`);
    }
    const size = align(bytes);
    const address = pinned.alloc(size);
    try {
      return new PinnedArena(pinned, address, size, mapper(address, size));
    } catch (error) {
      pinned.free(address);
      throw error;
    }
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes not handed out (possibly in several spans). */
  get freeBytes(): number {
    return this.#free.reduce((n, span) => n + span.bytes, 0);
  }

  /** A region of at least `bytes` (0 gets the smallest region); its offset, or `null` when no free span fits. */
  alloc(bytes: number): number | null {
    if (this.#closed) return null;
    const size = align(Math.max(bytes, 1));
    const at = this.#free.findIndex((span) => span.bytes >= size);
    if (at < 0) return null;
    const span = this.#free[at];
    const offset = span.offset;
    if (span.bytes === size) this.#free.splice(at, 1);
    else this.#free[at] = { offset: offset + size, bytes: span.bytes - size };
    this.#used.set(offset, size);
    return offset;
  }

  /** Returns a region from {@link alloc}; an offset that is not one is ignored. */
  free(offset: number): void {
    const size = this.#used.get(offset);
    if (size === undefined) return;
    this.#used.delete(offset);
    let at = this.#free.findIndex((span) => span.offset > offset);
    if (at < 0) at = this.#free.length;
    this.#free.splice(at, 0, { offset, bytes: size });
    const next = this.#free[at + 1];
    if (next && offset + size === next.offset) {
      this.#free[at].bytes += next.bytes;
      this.#free.splice(at + 1, 1);
    }
    const previous = this.#free[at - 1];
    if (previous && previous.offset + previous.bytes === offset) {
      previous.bytes += this.#free[at].bytes;
      this.#free.splice(at, 1);
    }
  }

  /**
   * `length` bytes at region offset `offset`, as a view of the pinned memory itself.
   * @throws {OrtError} `ORT_INVALID_ARGUMENT` past the block, or once closed.
   */
  bytes(offset: number, length: number): Uint8Array {
    if (this.#closed || offset < 0 || length < 0 || offset + length > this.byteLength) {
      throw new OrtError(
        "PinnedArena.bytes",
        2,
        this.#closed ? "the arena is closed" : `bytes ${offset}..${offset + length} lie outside the arena`,
      );
    }
    return new Uint8Array(this.#buffer, offset, length);
  }

  /**
   * Detaches the mapping (every view of it reads as empty from now on) and frees the pinned memory. Sessions that
   * stage in the arena must be released first.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // transfer(0) detaches the buffer over the pinned memory, so no view outlives the free below.
    this.#buffer = this.#buffer.transfer(0);
    this.#used.clear();
    this.#free = [];
    this.#pinned.free(this.address);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
