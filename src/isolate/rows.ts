/**
 * Rows along the first dimension, for dynamic batching: tensors combined
 * into one (outputs are cut back by `splitRows` in tensor_input.ts).
 * @module
 */
import { Tensor } from "onnxruntime-common";

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
