/**
 * Rows along the first dimension, for dynamic batching: tensors combined
 * into one, and wire tensors cut back into each request's rows.
 * @module
 */
import { Tensor } from "onnxruntime-common";
import type { WireTensor } from "../protocol.ts";

type TypedArray = Exclude<Tensor["data"], string[]>;

/** The tensors' rows, one after another, as one tensor (same type; dims after the first must agree). */
export function concatRows(tensors: Tensor[]): Tensor {
  const first = tensors[0];
  const rows = tensors.reduce((n, t) => n + t.dims[0], 0);
  const dims = [rows, ...first.dims.slice(1)];
  if (first.type === "string") {
    return new Tensor("string", tensors.flatMap((t) => t.data as string[]), dims);
  }
  const length = tensors.reduce((n, t) => n + t.data.length, 0);
  const Ctor = (first.data as TypedArray).constructor as new (n: number) => TypedArray;
  const data = new Ctor(length);
  let at = 0;
  for (const t of tensors) {
    (data as Float32Array).set(t.data as Float32Array, at);
    at += t.data.length;
  }
  return new Tensor(first.type as "float32", data as Float32Array, dims);
}

/** Rows `start` to `end` (exclusive) of a fixed-size wire tensor, as a wire tensor with its own buffer. */
export function sliceWireRows(tensor: WireTensor, start: number, end: number): WireTensor {
  const rows = tensor.shape[0];
  const rowBytes = rows > 0 ? tensor.data.byteLength / rows : 0;
  return {
    name: tensor.name,
    datatype: tensor.datatype,
    shape: [end - start, ...tensor.shape.slice(1)],
    data: tensor.data.slice(start * rowBytes, end * rowBytes),
  };
}
