/**
 * Errors from the ONNX Runtime C API: the call that failed, ORT's
 * `OrtErrorCode` and its message.
 * @module
 */

/** `OrtErrorCode` names by value (onnxruntime_c_api.h). */
export const ortErrorCodes = [
  "ORT_OK",
  "ORT_FAIL",
  "ORT_INVALID_ARGUMENT",
  "ORT_NO_SUCHFILE",
  "ORT_NO_MODEL",
  "ORT_ENGINE_ERROR",
  "ORT_RUNTIME_EXCEPTION",
  "ORT_INVALID_PROTOBUF",
  "ORT_MODEL_LOADED",
  "ORT_NOT_IMPLEMENTED",
  "ORT_INVALID_GRAPH",
  "ORT_EP_FAIL",
  "ORT_MODEL_LOAD_CANCELED",
  "ORT_MODEL_REQUIRES_COMPILATION",
  "ORT_NOT_FOUND",
  "ORT_DEVICE_RESET",
] as const;

/** The name of an `OrtErrorCode`. */
export type OrtErrorName = (typeof ortErrorCodes)[number] | `ORT_ERROR_${number}`;

/** A failed ORT call, or a check of this binding that refused something. */
export class OrtError extends Error {
  override name = "OrtError";
  /** ORT's code name, such as `ORT_NO_SUCHFILE`. */
  readonly codeName: OrtErrorName;

  /** Creates the error for `call` returning a status with `code` and ORT's `ortMessage`. */
  constructor(readonly call: string, readonly code: number, readonly ortMessage: string) {
    const codeName: OrtErrorName = ortErrorCodes[code] ?? `ORT_ERROR_${code}`;
    super(`${call} failed: ${codeName}: ${ortMessage}`);
    this.codeName = codeName;
  }
}
