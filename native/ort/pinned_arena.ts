/**
 * Pinned host memory that JS code reads and writes in place: one block from
 * the caller's pinned allocator (a lane's `cuMemHostAlloc`), mapped once as
 * one `ArrayBuffer` while the ffi permission is still held
 * (`Deno.UnsafePointerView.getArrayBuffer`; the buffer stays valid after the
 * permission is dropped), and laid out in one slot per model input and
 * output. A session that stages in a slot needs no copy between JS memory
 * and its pinned staging: the DMA to
 * the device reads the bytes where JS wrote them, and JS reads the outputs
 * where the DMA put them.
 *
 * The slots are the runtime's own: views of them never reach user code
 * (`NativeSession.runStaged` hands them to the caller's callbacks only).
 *
 * @example
 * ```ts
 * // Before Deno.permissions.revoke({ name: "ffi" }):
 * const arena = PinnedArena.map(lane.pinnedMemory(), { inputs: { x: 262144 }, outputs: { y: 262144 } });
 * const { offset, bytes } = arena.slot("input", "x")!;
 * arena.bytes(offset, bytes).fill(0); // the pinned memory at arena.address + BigInt(offset)
 * arena.close();
 * ```
 * @module
 */
import { OrtError } from "./error.ts";
import type { PinnedHostMemory } from "./native_session.ts";

/** Slots start at multiples of this many bytes (any element type's alignment, and a DMA-friendly one). */
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

/** The slots of an arena: bytes for each input and each output of the model, by name. */
export interface ArenaLayout {
  inputs: Record<string, number>;
  outputs: Record<string, number>;
}

/** One slot of an arena. */
export interface ArenaSlot {
  /** Where it starts in the arena: at `arena.address + BigInt(offset)`. */
  offset: number;
  /** Its size in bytes. */
  bytes: number;
}

/**
 * One block of pinned memory mapped as JS memory, laid out once in a fixed
 * slot per input and per output (no allocation, so no fragmentation, after
 * the mapping).
 */
export class PinnedArena {
  /** The block's address: offset `o` is at `address + BigInt(o)`. */
  readonly address: bigint;
  /** The block's size in bytes. */
  readonly byteLength: number;
  readonly #pinned: PinnedHostMemory;
  readonly #slots: { input: Map<string, ArenaSlot>; output: Map<string, ArenaSlot> };
  #buffer: ArrayBuffer;
  #closed = false;

  private constructor(
    pinned: PinnedHostMemory,
    parts: { address: bigint; byteLength: number; buffer: ArrayBuffer; slots: PinnedArena["slots"] },
  ) {
    this.#pinned = pinned;
    this.address = parts.address;
    this.byteLength = parts.byteLength;
    this.#buffer = parts.buffer;
    this.#slots = { input: new Map(parts.slots.input), output: new Map(parts.slots.output) };
  }

  /**
   * Allocates one block for every slot of `layout` (each rounded up to {@link arenaAlignment}) and maps it. Call
   * while the ffi permission is held.
   * @throws {OrtError} `ORT_INVALID_ARGUMENT` for a slot size that is not a non-negative integer, or no bytes at all.
   * @throws the allocator's error (a `CudaError` from a lane) when the memory cannot be had; Deno's `NotCapable`
   * when ffi was dropped already.
   */
  static map(pinned: PinnedHostMemory, layout: ArenaLayout, mapper: HostMapper = mapHostMemory): PinnedArena {
    let end = 0;
    const place = (sizes: Record<string, number>) =>
      Object.entries(sizes).map(([name, bytes]): [string, ArenaSlot] => {
        if (!Number.isSafeInteger(bytes) || bytes < 0) {
          throw new OrtError("PinnedArena.map", 2, `slot '${name}' needs a whole number of bytes, got ${bytes}`);
        }
        const slot = { offset: end, bytes: align(bytes) };
        end += slot.bytes;
        return [name, slot];
      });
    const slots = { input: place(layout.inputs), output: place(layout.outputs) };
    if (end === 0) throw new OrtError("PinnedArena.map", 2, "an arena needs at least one slot of some bytes");
    const address = pinned.alloc(end);
    try {
      return new PinnedArena(pinned, { address, byteLength: end, buffer: mapper(address, end), slots });
    } catch (error) {
      pinned.free(address);
      throw error;
    }
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Every slot, by kind and name (for reports and tests). */
  get slots(): { input: [string, ArenaSlot][]; output: [string, ArenaSlot][] } {
    return { input: [...this.#slots.input], output: [...this.#slots.output] };
  }

  /** The slot of input or output `name`; `undefined` when the layout has none or the arena is closed. */
  slot(kind: "input" | "output", name: string): ArenaSlot | undefined {
    return this.#closed ? undefined : this.#slots[kind].get(name);
  }

  /**
   * `length` bytes at `offset`, as a view of the pinned memory itself.
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
    this.#pinned.free(this.address);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
