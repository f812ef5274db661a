/**
 * Loads ONNX Runtime's Node binding. Isolates call this before they import user
 * code, while they still hold the ffi permission that the native addon needs.
 * @module
 */

/** The onnxruntime-node module. */
export type Ort = typeof import("onnxruntime-node");

let loaded: Promise<Ort> | undefined;

/** Loads onnxruntime-node once per isolate. */
export function loadOrt(): Promise<Ort> {
  loaded ??= import("onnxruntime-node");
  return loaded;
}
