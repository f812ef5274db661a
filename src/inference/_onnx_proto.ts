/**
 * onnx-proto (protobufjs, some 30 ms to import in an isolate), loaded the
 * first time a model must be decoded: most isolates never do (a model
 * without external data is not decoded at all), so their boot skips it.
 * @module
 */
import type onnxProto from "onnx-proto";

/** The onnx-proto module. */
export type OnnxProto = typeof onnxProto;

let loading: Promise<OnnxProto> | undefined;

/** Imports onnx-proto once per isolate. */
export function loadOnnxProto(): Promise<OnnxProto> {
  loading ??= import("onnx-proto").then((m) => m.default);
  return loading;
}
