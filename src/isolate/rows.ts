/**
 * Rows along the first dimension of a batchable value: a nested array (rows
 * are its items) or a tensor (`{ type, data, dims }`, rows are `dims[0]`).
 * @module
 */
import { Tensor } from "onnxruntime-common";

type TypedArray = Exclude<Tensor["data"], string[]>;

/** Rows of a value; -1 when it has none (not an array or tensor). */
export function rowsOf(value: unknown): number {
  if (Array.isArray(value)) return value.length;
  if (value instanceof Tensor) return value.dims[0] ?? -1;
  return -1;
}

/** The values' rows, one after another, as one value of the same kind. */
export function concatRows(values: unknown[]): unknown {
  if (values.every(Array.isArray)) return (values as unknown[][]).flat(1);
  const tensors = values as Tensor[];
  const first = tensors[0];
  const rows = tensors.reduce((n, t) => n + t.dims[0], 0);
  const length = tensors.reduce((n, t) => n + t.data.length, 0);
  const Ctor = (first.data as TypedArray).constructor as new (n: number) => TypedArray;
  const data = new Ctor(length);
  let at = 0;
  for (const t of tensors) {
    (data as Float32Array).set(t.data as Float32Array, at);
    at += t.data.length;
  }
  return new Tensor(first.type as "float32", data as Float32Array, [rows, ...first.dims.slice(1)]);
}

/** Rows `start` to `end` (exclusive) of a value. */
export function sliceRows(value: unknown, start: number, end: number): unknown {
  if (Array.isArray(value)) return value.slice(start, end);
  const t = value as Tensor;
  const width = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const data = (t.data as TypedArray).subarray(start * width, end * width) as Float32Array;
  return new Tensor(t.type as "float32", data, [end - start, ...t.dims.slice(1)]);
}
