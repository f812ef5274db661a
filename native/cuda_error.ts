/**
 * Errors from the CUDA driver API, carrying the call that failed and the
 * driver's own name and description of the code.
 * @module
 */

/** Names and descriptions of driver error codes, read once while pointer access is still allowed. */
export type ErrorTable = Map<number, { name: string; text: string }>;

/** A failed CUDA driver call. */
export class CudaError extends Error {
  override name = "CudaError";
  /** Creates the error for `call` returning `code`. */
  constructor(readonly call: string, readonly code: number, table?: ErrorTable) {
    const known = table?.get(code);
    super(
      known ? `${call} failed: ${known.name} (${code}): ${known.text}` : `${call} failed with CUDA error ${code}`,
    );
  }
}
