/**
 * Buffers that an isolate's batches reuse: the inputs of a run of jobs copied out of an HTTP thread's arena, a
 * batch's outputs copied out of the session's. A batch's buffer is a few hundred KiB (64 rows of 4 KiB); allocated
 * afresh, each is zeroed memory that the C allocator maps and unmaps, and external memory that brings V8's next
 * garbage collection nearer. A buffer is given back once nothing reads it any more.
 * @module
 */

/** Buffers kept for reuse, by size: powers of two, at most {@link keptBytes} in all. */
const free: ArrayBuffer[] = [];
let freeBytes = 0;
/** The most bytes kept for reuse. */
const keptBytes = 32 * 2 ** 20;

/**
 * A view of `bytes` bytes (not zeroed: the caller writes all of them) of a buffer kept for reuse, or of a new one;
 * give it back with {@link giveScratch} once nothing reads it.
 */
export function takeScratch(bytes: number): Uint8Array<ArrayBuffer> {
  for (let i = 0; i < free.length; i++) {
    if (free[i].byteLength < bytes) continue;
    const [buffer] = free.splice(i, 1);
    freeBytes -= buffer.byteLength;
    return new Uint8Array(buffer, 0, bytes);
  }
  return new Uint8Array(new ArrayBuffer(bytes <= 64 ? 64 : 2 ** Math.ceil(Math.log2(bytes))), 0, bytes);
}

/** Gives back a view {@link takeScratch} gave: its buffer may be handed out again from now on. */
export function giveScratch(view: Uint8Array<ArrayBuffer>): void {
  const buffer = view.buffer;
  if (freeBytes + buffer.byteLength > keptBytes || free.includes(buffer)) return;
  // Smallest first: a take finds the smallest buffer that fits.
  let i = 0;
  while (i < free.length && free[i].byteLength < buffer.byteLength) i++;
  free.splice(i, 0, buffer);
  freeBytes += buffer.byteLength;
}
