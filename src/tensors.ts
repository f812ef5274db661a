/**
 * Tensors as the KServe v2 / Open Inference Protocol carries them, shared by
 * the host (which decodes requests) and the isolate (which builds the
 * handler's input): the datatype table, exact JSON ⇄ typed-array conversion,
 * the binary tensor data extension's little-endian layout, and BYTES as
 * Triton lays them out (a 4-byte little-endian length before each element).
 *
 * Every failure is an `IsolaneError` with code `invalid_input` (400) that
 * names the tensor; nothing here can throw anything else for bad input.
 *
 * Sources: the Open Inference Protocol's REST spec, Triton's binary tensor
 * data extension (`docs/protocol/extension_binary_data.md`) and Triton's
 * Python client (`tritonclient/utils` `serialize_byte_tensor`).
 *
 * @example
 * ```ts
 * const x = jsonToWire({ name: "x", datatype: "INT64", shape: [2], data: [1n, 2] });
 * new BigInt64Array(x.data); // [1n, 2n]
 * ```
 * @module
 */
import { IsolaneError } from "./errors.ts";
import type { StagingLayout, WireTensor } from "./protocol.ts";
import type { TensorDatatype, TensorSignature, TensorSpec } from "./sdk.ts";
import { scanNumberTensors } from "./tensor_json_fast.ts";
import { float32NestedBytes, writeFloat32Nested } from "./float32_json.ts";

// The binary layout is little-endian, and typed arrays use the platform's order.
if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) throw new Error("isolane needs a little-endian platform");

/** A typed array of a fixed-size datatype. */
export type TypedArray =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array;

type TypedArrayConstructor = {
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): TypedArray;
  new (length: number): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

/** What each v2 datatype is in memory, in ONNX Runtime and in Triton's model configuration. */
export interface DatatypeInfo {
  /** Bytes per element; 0 for BYTES (variable). */
  byteSize: number;
  /** The typed array holding the elements (BOOL: 0/1 bytes; FP16: the IEEE half bits); `null` for BYTES. */
  array: TypedArrayConstructor | null;
  /** ONNX Runtime's tensor type (`Tensor#type`). */
  ort: string;
  /** Triton's `data_type` in a model configuration. */
  triton: string;
  /** Inclusive range of integer datatypes. */
  range?: [bigint, bigint];
}

const intRange = (bits: number, signed: boolean): [bigint, bigint] =>
  signed ? [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n] : [0n, (1n << BigInt(bits)) - 1n];

/** The datatype table. */
export const datatypes: Readonly<Record<TensorDatatype, DatatypeInfo>> = {
  BOOL: { byteSize: 1, array: Uint8Array, ort: "bool", triton: "TYPE_BOOL" },
  UINT8: { byteSize: 1, array: Uint8Array, ort: "uint8", triton: "TYPE_UINT8", range: intRange(8, false) },
  UINT16: { byteSize: 2, array: Uint16Array, ort: "uint16", triton: "TYPE_UINT16", range: intRange(16, false) },
  UINT32: { byteSize: 4, array: Uint32Array, ort: "uint32", triton: "TYPE_UINT32", range: intRange(32, false) },
  UINT64: { byteSize: 8, array: BigUint64Array, ort: "uint64", triton: "TYPE_UINT64", range: intRange(64, false) },
  INT8: { byteSize: 1, array: Int8Array, ort: "int8", triton: "TYPE_INT8", range: intRange(8, true) },
  INT16: { byteSize: 2, array: Int16Array, ort: "int16", triton: "TYPE_INT16", range: intRange(16, true) },
  INT32: { byteSize: 4, array: Int32Array, ort: "int32", triton: "TYPE_INT32", range: intRange(32, true) },
  INT64: { byteSize: 8, array: BigInt64Array, ort: "int64", triton: "TYPE_INT64", range: intRange(64, true) },
  FP16: { byteSize: 2, array: Uint16Array, ort: "float16", triton: "TYPE_FP16" },
  FP32: { byteSize: 4, array: Float32Array, ort: "float32", triton: "TYPE_FP32" },
  FP64: { byteSize: 8, array: Float64Array, ort: "float64", triton: "TYPE_FP64" },
  BYTES: { byteSize: 0, array: null, ort: "string", triton: "TYPE_STRING" },
};

/** Whether `value` names a v2 datatype. */
export function isDatatype(value: unknown): value is TensorDatatype {
  return typeof value === "string" && Object.hasOwn(datatypes, value);
}

/** The largest tensor rank accepted (deeper nesting is refused before anything recurses). */
export const maxRank = 32;

function bad(message: string): IsolaneError {
  return new IsolaneError("invalid_input", message);
}

/** Element count of a shape; throws `invalid_input` for a dimension that is not a non-negative integer. */
export function elementCount(name: string, shape: readonly unknown[]): number {
  if (shape.length > maxRank) throw bad(`Tensor '${name}' has rank ${shape.length}; the limit is ${maxRank}`);
  let count = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw bad(`Tensor '${name}' has shape [${shape}]; dimensions must be non-negative integers`);
    }
    count *= d;
  }
  if (!Number.isSafeInteger(count)) throw bad(`Tensor '${name}' has shape [${shape}], too many elements`);
  return count;
}

/** Whether a shape fits a signature's shape (`-1`: any size; zero-size dimensions fit). */
export function shapeFits(spec: readonly number[], shape: readonly number[]): boolean {
  return spec.length === shape.length && spec.every((d, i) => d === -1 || d === shape[i]);
}

/** Checks a tensor's datatype and shape against its spec; throws `invalid_input` saying what differs. */
export function checkAgainstSpec(
  spec: TensorSpec,
  { datatype, shape }: { datatype: string; shape: readonly number[] },
): void {
  if (datatype !== spec.datatype) throw bad(`Input '${spec.name}' must be ${spec.datatype}, got ${datatype}`);
  if (!shapeFits(spec.shape, shape)) {
    throw bad(`Input '${spec.name}' has shape [${shape}]; expected [${spec.shape}] (-1: any)`);
  }
}

/** Rows of pinned staging a lane maps for a `runModel` function without dynamic batching. */
export const defaultStagingRows = 64;

/** The most pinned staging one lane maps for a function, in bytes (256 MiB). */
export const maxStagingBytes = 256 * 1024 * 1024;

/**
 * The pinned staging a CUDA lane maps for a `runModel` function (issue 15):
 * a slot per signature tensor for one model run of `rows` rows (a tensor
 * whose first size is fixed: that size), of its row's bytes each.
 * `undefined` when a tensor is BYTES or has an open size after the first
 * (then nothing is staged in place), or when the slots would pass
 * {@link maxStagingBytes}: such functions copy as other handlers do.
 *
 * @example
 * ```ts
 * stagingLayout({ inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }], outputs: [...] }, 256);
 * // { inputs: { x: 4096 }, outputs: { y: 3072 } }
 * ```
 */
export function stagingLayout(signature: TensorSignature, rows: number): StagingLayout | undefined {
  let total = 0;
  const slots = (specs: readonly TensorSpec[]): Record<string, number> | undefined => {
    const out: Record<string, number> = {};
    for (const spec of specs) {
      const inner = spec.shape.slice(1);
      const size = datatypes[spec.datatype].byteSize;
      if (size === 0 || inner.some((d) => d < 0)) return undefined;
      const first = spec.shape.length === 0 ? 1 : spec.shape[0] < 0 ? rows : spec.shape[0];
      out[spec.name] = first * inner.reduce((a, b) => a * b, 1) * size;
      total += out[spec.name];
    }
    return out;
  };
  const inputs = slots(signature.inputs);
  const outputs = slots(signature.outputs);
  if (!inputs || !outputs || total === 0 || total > maxStagingBytes) return undefined;
  return { inputs, outputs };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Decodes UTF-8 strictly; throws `invalid_json` when the bytes are not valid UTF-8. */
export function decodeJsonText(bytes: AllowSharedBufferSource): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new IsolaneError("invalid_json", "Request body is not valid UTF-8");
  }
}

// Integer literals of 16 digits or more may not fit a double exactly; only then does parsing pay for a reviver.
// A run of digits that belongs to a decimal (after a '.', or followed by '.', 'e' or 'E') is not one:
// FP32 data written with 17 significant digits must not send every request down the slow path.
const longInteger = /(?<![\d.])\d{16,}(?![\d.eE])/;
const integerLiteral = /^-?\d+$/;

/**
 * `JSON.parse` that keeps integers exact: an integer literal that a double
 * cannot hold exactly becomes a `bigint`. Throws `invalid_json` for text
 * that is not JSON.
 */
export function parseJsonExact(text: string): unknown {
  try {
    if (!longInteger.test(text)) return JSON.parse(text);
    return JSON.parse(text, function revive(_key, value, context?: { source?: string }) {
      if (typeof value === "number" && !Number.isSafeInteger(value) && context?.source !== undefined) {
        // 64-bit integers have at most 20 digits; longer literals stay numbers (and are refused where exactness counts).
        if (context.source.length <= 21 && integerLiteral.test(context.source)) return BigInt(context.source);
      }
      return value;
    });
  } catch (error) {
    throw new IsolaneError(
      "invalid_json",
      `Request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/**
 * `JSON.parse`; throws `invalid_json` for text that is not JSON. Use {@link parseJsonExact} where 64-bit integers
 * must stay exact.
 */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new IsolaneError(
      "invalid_json",
      `Request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/**
 * Flattens tensor data given flat or nested (row-major), without recursion.
 * Throws `invalid_input` for nesting deeper than {@link maxRank}.
 */
export function flattenData(name: string, data: unknown): unknown[] {
  if (!Array.isArray(data)) throw bad(`Tensor '${name}' data must be an array`);
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const stack: { items: unknown[]; at: number }[] = [{ items: data, at: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.at === top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.at++];
    if (Array.isArray(item)) {
      if (stack.length >= maxRank) throw bad(`Tensor '${name}' data is nested deeper than ${maxRank}`);
      stack.push({ items: item, at: 0 });
    } else out.push(item);
  }
  return out;
}

/**
 * The shape of nested arrays (the `/v1` form of a tensor), checked to be
 * rectangular, and their elements flat. A scalar has shape `[]`.
 */
export function nestedShape(name: string, value: unknown): { shape: number[]; flat: unknown[] } {
  const shape: number[] = [];
  let at = value;
  while (Array.isArray(at)) {
    if (shape.length >= maxRank) throw bad(`Input '${name}' is nested deeper than ${maxRank}`);
    shape.push(at.length);
    if (at.length === 0) break;
    at = at[0];
  }
  if (shape.length === 0) return { shape, flat: [value] };
  let count = 1;
  for (const d of shape) count *= d;
  const flat: unknown[] = new Array(count);
  let k = 0;
  const last = shape.length - 1;
  const walk = (items: unknown[], depth: number): void => {
    if (items.length !== shape[depth]) throw bad(`Input '${name}' is not rectangular: expected shape [${shape}]`);
    if (depth === last) {
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (Array.isArray(item)) throw bad(`Input '${name}' is not rectangular: expected shape [${shape}]`);
        flat[k++] = item;
      }
      return;
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (!Array.isArray(item)) throw bad(`Input '${name}' is not rectangular: expected shape [${shape}]`);
      walk(item, depth + 1);
    }
  };
  walk(value as unknown[], 0);
  return { shape, flat };
}

/** Half-precision bits of a number (round to nearest even, as `Float16Array` does). */
export function toFloat16Bits(values: ArrayLike<number>): Uint16Array {
  return new Uint16Array(new Float16Array(values).buffer);
}

/** Numbers of half-precision bits. */
export function fromFloat16Bits(bits: Uint16Array): Float64Array {
  return Float64Array.from(new Float16Array(bits.buffer, bits.byteOffset, bits.length));
}

function notType(name: string, index: number, datatype: TensorDatatype, value: unknown, why = ""): IsolaneError {
  // JSON.stringify would show a non-finite number (a literal such as 1e400) as null.
  const plain = typeof value === "bigint" || (typeof value === "number" && !Number.isFinite(value));
  const shown = plain ? String(value) : JSON.stringify(value) ?? String(value);
  return bad(`Tensor '${name}' element ${index} (${shown?.slice(0, 40)}) is not ${datatype}${why}`);
}

/**
 * Converts flat JSON values to a typed array of `datatype`, exactly:
 * integers range-checked, 64-bit integers from `bigint` (see
 * {@link parseJsonExact}) or safe integers, floats finite in the type's range.
 */
function jsonToTyped(name: string, datatype: TensorDatatype, values: readonly unknown[]): TypedArray {
  const info = datatypes[datatype];
  const n = values.length;
  switch (datatype) {
    case "BOOL": {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== "boolean") throw notType(name, i, datatype, v);
        out[i] = v ? 1 : 0;
      }
      return out;
    }
    case "FP32": {
      // One pass: each element a finite number, and finite as FP32; a type error anywhere comes before a range one.
      const out = new Float32Array(n);
      let outOfRange = -1;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        const x = typeof v === "bigint" ? Number(v) : v;
        if (typeof x !== "number" || !Number.isFinite(x)) throw notType(name, i, datatype, v);
        out[i] = x;
        if (outOfRange < 0 && !Number.isFinite(out[i])) outOfRange = i;
      }
      if (outOfRange >= 0) throw notType(name, outOfRange, datatype, values[outOfRange], ": out of range");
      return out;
    }
    case "FP16":
    case "FP64": {
      // Every element is checked to be a finite number first, then (FP16) to fit the type.
      const numbers = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        const x = typeof v === "bigint" ? Number(v) : v;
        if (typeof x !== "number" || !Number.isFinite(x)) throw notType(name, i, datatype, v);
        numbers[i] = x;
      }
      if (datatype === "FP64") return numbers;
      const out = toFloat16Bits(numbers);
      const check = fromFloat16Bits(out);
      for (let i = 0; i < n; i++) {
        if (!Number.isFinite(check[i])) throw notType(name, i, datatype, values[i], ": out of range");
      }
      return out;
    }
    case "INT64":
    case "UINT64": {
      const [lo, hi] = info.range!;
      const out = datatype === "INT64" ? new BigInt64Array(n) : new BigUint64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        let b: bigint;
        if (typeof v === "bigint") b = v;
        else if (typeof v === "number" && Number.isSafeInteger(v)) b = BigInt(v);
        else if (typeof v === "number" && Number.isInteger(v)) {
          throw notType(name, i, datatype, v, ": write integers above 2^53 as plain digits to keep them exact");
        } else throw notType(name, i, datatype, v);
        if (b < lo || b > hi) throw notType(name, i, datatype, v, ": out of range");
        out[i] = b;
      }
      return out;
    }
    case "BYTES":
      throw new Error("BYTES has no typed array");
    default: {
      const [lo, hi] = info.range!.map(Number);
      const out = new info.array!(n) as Exclude<TypedArray, BigInt64Array | BigUint64Array>;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (typeof v !== "number" || !Number.isInteger(v)) throw notType(name, i, datatype, v);
        if (v < lo || v > hi) throw notType(name, i, datatype, v, ": out of range");
        out[i] = v;
      }
      return out;
    }
  }
}

/** Lays out BYTES elements as Triton does: a 4-byte little-endian length before each element's bytes. */
export function encodeBytesElements(elements: readonly Uint8Array[]): ArrayBuffer {
  let size = 0;
  for (const e of elements) size += 4 + e.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const e of elements) {
    view.setUint32(at, e.length, true);
    out.set(e, at + 4);
    at += 4 + e.length;
  }
  return out.buffer;
}

/** Splits Triton's BYTES layout into elements (views into `bytes`); throws `invalid_input` unless it holds exactly `count`. */
export function decodeBytesElements(
  bytes: Uint8Array,
  { name, count }: { name: string; count: number },
): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (out.length === count) {
      throw bad(
        `BYTES tensor '${name}' has ${bytes.length - at} bytes after its ${count} elements; its shape needs ${count}`,
      );
    }
    if (at + 4 > bytes.length) throw bad(`BYTES tensor '${name}' ends inside a length prefix`);
    const length = view.getUint32(at, true);
    if (at + 4 + length > bytes.length) throw bad(`BYTES tensor '${name}' element ${out.length} runs past its data`);
    out.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  if (out.length !== count) throw bad(`BYTES tensor '${name}' has ${out.length} elements; its shape needs ${count}`);
  return out;
}

/** A tensor of the protocol's JSON form, before checks. */
export interface JsonTensor {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  /** Flat or nested row-major values (strings for BYTES, booleans for BOOL, `bigint` allowed for 64-bit integers). */
  data: unknown;
}

/**
 * Converts a JSON tensor to a wire tensor, exactly; throws `invalid_input` saying which element does not fit. Nested
 * data must be nested as `shape` says (a zero-size tensor may stop at its empty dimension): flattened, ragged rows
 * would move values into other rows unseen.
 */
export function jsonToWire({ name, datatype, shape, data }: JsonTensor): WireTensor {
  if (!Array.isArray(data) || !data.some(Array.isArray)) {
    return flatToWire({ name, datatype, shape, data: flattenData(name, data) });
  }
  const nested = nestedShape(name, data);
  const prefix = nested.shape.at(-1) === 0 && nested.shape.length <= shape.length;
  const n = prefix ? nested.shape.length : shape.length;
  if (nested.shape.length !== n || nested.shape.some((d, i) => d !== shape[i])) {
    throw bad(
      `Tensor '${name}' data is nested as [${nested.shape}] but its shape is [${shape}]; nest it as the shape or send it flat`,
    );
  }
  return flatToWire({ name, datatype, shape, data: nested.flat });
}

/** {@link jsonToWire} for values already flat. */
function flatToWire({ name, datatype, shape, data: flat }: JsonTensor & { data: unknown[] }): WireTensor {
  const count = elementCount(name, shape);
  if (flat.length !== count) throw bad(`Tensor '${name}' has ${flat.length} values; shape [${shape}] needs ${count}`);
  if (datatype === "BYTES") {
    const elements = flat.map((v, i) => {
      if (typeof v !== "string") throw notType(name, i, datatype, v);
      // TextEncoder would write U+FFFD for it: the element would change unseen.
      if (!v.isWellFormed()) throw notType(name, i, datatype, v, ": a lone surrogate, not text");
      return encoder.encode(v);
    });
    return { name, datatype, shape, data: encodeBytesElements(elements) };
  }
  const typed = jsonToTyped(name, datatype, flat);
  return { name, datatype, shape, data: typed.buffer as ArrayBuffer };
}

/**
 * Copies a binary tensor's bytes into a wire tensor, checking the size
 * against the shape (BYTES: the element count) and BOOL bytes to be 0 or 1.
 */
export function binaryToWire(
  { name, datatype, shape }: { name: string; datatype: TensorDatatype; shape: number[] },
  bytes: Uint8Array,
): WireTensor {
  const count = elementCount(name, shape);
  const info = datatypes[datatype];
  if (datatype === "BYTES") decodeBytesElements(bytes, { name, count });
  else if (bytes.length !== count * info.byteSize) {
    throw bad(
      `Tensor '${name}' has ${bytes.length} bytes of binary data; ${datatype}[${shape}] needs ${count * info.byteSize}`,
    );
  }
  if (datatype === "BOOL") {
    const i = bytes.findIndex((b) => b > 1);
    if (i >= 0) throw notType(name, i, datatype, bytes[i]);
  }
  return { name, datatype, shape, data: bytes.slice().buffer };
}

/** A typed view over a fixed-size wire tensor's data. */
export function typedView(tensor: WireTensor): TypedArray {
  const array = datatypes[tensor.datatype as TensorDatatype].array;
  if (!array) throw new Error(`Tensor '${tensor.name}' is BYTES, not a typed array`);
  return new array(tensor.data);
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** The elements of a BYTES wire tensor as strings; throws `invalid_input` for an element that is not UTF-8. */
export function bytesToStrings(tensor: WireTensor): string[] {
  const count = elementCount(tensor.name, tensor.shape);
  return decodeBytesElements(new Uint8Array(tensor.data), { name: tensor.name, count }).map((e, i) => {
    try {
      return utf8Strict.decode(e);
    } catch {
      throw bad(`BYTES tensor '${tensor.name}' element ${i} is not valid UTF-8`);
    }
  });
}

/** The JSON text of a flat array of elements of a wire tensor (64-bit integers exact, FP16 as numbers). */
export function flatJsonText(tensor: WireTensor): string {
  if (tensor.datatype === "BYTES") return JSON.stringify(bytesToStrings(tensor));
  const float32 = finiteFloat32(tensor, null);
  if (float32) return float32JsonText(float32, [float32.length]);
  const typed = typedView(tensor);
  if (tensor.datatype === "BOOL") return JSON.stringify(Array.from(typed as Uint8Array, (b) => b !== 0));
  if (tensor.datatype === "FP16") return JSON.stringify(Array.from(fromFloat16Bits(typed as Uint16Array)));
  if (typed instanceof BigInt64Array || typed instanceof BigUint64Array) return `[${typed.join(",")}]`;
  // Finite numbers: `join` writes them as JSON.stringify does, faster; NaN and infinities are JSON's null.
  if (allFinite(typed as Float64Array)) return `[${typed.join(",")}]`;
  return JSON.stringify(Array.from(typed as Float64Array));
}

/** Datatypes whose elements `JSON.stringify` writes exactly as numbers from their typed array. */
const plainNumbers = new Set(["FP32", "FP64", "INT8", "INT16", "INT32", "UINT8", "UINT16", "UINT32"]);

function allFinite(values: ArrayLike<number>): boolean {
  // x - x is 0 for a finite x and NaN for an infinity or NaN.
  for (let i = 0; i < values.length; i++) if (values[i] - values[i] !== 0) return false;
  return true;
}

/**
 * The elements of an FP32 tensor when there are some and every one is finite (and, with `shape`, they are as many as
 * it says): those are written by `float32_json.ts`, as the shortest text that reads back to the same float32. NaN and
 * infinities are JSON's `null`, written the general way.
 */
function finiteFloat32(tensor: WireTensor, shape: readonly number[] | null): Float32Array | undefined {
  const values = float32Of(tensor, shape);
  return values && allFinite(values) ? values : undefined;
}

/** An FP32 tensor's values, when it has as many as `shape` holds (any number, with `null`), finite or not. */
function float32Of(tensor: WireTensor, shape: readonly number[] | null): Float32Array | undefined {
  if (tensor.datatype !== "FP32" || tensor.data.byteLength % 4 !== 0) return undefined;
  const values = new Float32Array(tensor.data);
  if (values.length === 0) return undefined;
  if (shape) {
    let count = 1;
    for (const d of shape) count *= d;
    if (count !== values.length) return undefined;
  }
  return values;
}

/** Bytes of FP32 JSON texts, reused (one request's output at a time; the largest get their own). */
let scratch = new Uint8Array(64 * 1024);

function scratchFor(bytes: number): Uint8Array<ArrayBuffer> {
  if (bytes <= scratch.length) return scratch;
  if (bytes > 16 * 2 ** 20) return new Uint8Array(bytes);
  return (scratch = new Uint8Array(Math.max(bytes, 2 * scratch.length)));
}

const latin1 = new TextDecoder("latin1");

function float32JsonText(values: Float32Array, shape: readonly number[]): string {
  const out = scratchFor(float32NestedBytes(values.length, shape));
  return latin1.decode(out.subarray(0, writeFloat32Nested(values, shape, out, 0)));
}

/** The JSON text of a wire tensor's elements nested by its shape (the `/v1` form); a scalar for shape `[]`. */
export function nestedJsonText(tensor: WireTensor): string {
  const { shape } = tensor;
  const float32 = finiteFloat32(tensor, shape);
  if (float32) return float32JsonText(float32, shape);
  if (shape.length > 0 && plainNumbers.has(tensor.datatype) && allFinite(typedView(tensor) as Float64Array)) {
    // Finite numbers: `join` writes each as JSON.stringify does (the shortest text that reads back), about twice as
    // fast as JSON.stringify of an array of them.
    const typed = typedView(tensor) as Float64Array;
    let at = 0;
    const last = shape.length - 1;
    const build = (depth: number): string => {
      if (depth === last) {
        const row = typed.subarray(at, at + shape[depth]);
        at += shape[depth];
        return `[${row.join(",")}]`;
      }
      const parts: string[] = new Array(shape[depth]);
      for (let i = 0; i < shape[depth]; i++) parts[i] = build(depth + 1);
      return `[${parts.join(",")}]`;
    };
    return build(0);
  }
  if (shape.length > 0 && plainNumbers.has(tensor.datatype)) {
    // Nested arrays of numbers, written by one JSON.stringify: the same text as the general path, faster.
    const typed = typedView(tensor) as Float64Array;
    let at = 0;
    const last = shape.length - 1;
    const build = (depth: number): unknown[] => {
      if (depth === last) {
        const row = Array.from(typed.subarray(at, at + shape[depth]));
        at += shape[depth];
        return row;
      }
      const parts: unknown[] = new Array(shape[depth]);
      for (let i = 0; i < shape[depth]; i++) parts[i] = build(depth + 1);
      return parts;
    };
    return JSON.stringify(build(0));
  }
  const flat = flatJsonText(tensor);
  if (shape.length === 1) return flat;
  // Element texts never contain top-level commas of their own except inside strings, so BYTES take the slow path.
  const items: string[] = tensor.datatype === "BYTES"
    ? (JSON.parse(flat) as string[]).map((s) => JSON.stringify(s))
    : flat.length > 2
    ? flat.slice(1, -1).split(",")
    : [];
  if (shape.length === 0) return items[0] ?? "null";
  let at = 0;
  const build = (depth: number): string => {
    if (depth === shape.length) return items[at++];
    const parts: string[] = [];
    for (let i = 0; i < shape[depth]; i++) parts.push(build(depth + 1));
    return `[${parts.join(",")}]`;
  };
  return build(0);
}

/** A JSON Schema of a signature's tensors in their `/v1` form: an object with one nested array per tensor. */
export function signatureJsonSchema(specs: readonly TensorSpec[]): Record<string, unknown> {
  const element = (datatype: TensorDatatype): Record<string, unknown> => {
    if (datatype === "BOOL") return { type: "boolean" };
    if (datatype === "BYTES") return { type: "string" };
    if (datatype.startsWith("FP")) return { type: "number" };
    const [lo, hi] = datatypes[datatype].range!;
    const safe = (b: bigint) => b >= -(2n ** 53n) && b <= 2n ** 53n;
    return {
      type: "integer",
      ...(safe(lo) ? { minimum: Number(lo) } : {}),
      ...(safe(hi) ? { maximum: Number(hi) } : {}),
    };
  };
  const nest = (spec: TensorSpec): Record<string, unknown> =>
    spec.shape.reduceRight<Record<string, unknown>>(
      (inner, d) => ({ type: "array", items: inner, ...(d >= 0 ? { minItems: d, maxItems: d } : {}) }),
      { ...element(spec.datatype), description: `${spec.datatype}[${spec.shape}]` },
    );
  return {
    type: "object",
    properties: Object.fromEntries(specs.map((s) => [s.name, nest(s)])),
    required: specs.map((s) => s.name),
    additionalProperties: false,
  };
}

/** Wire tensors from a `/v1` JSON body: `{"<input>": nested array, ...}`, shapes read off the nesting. */
export function wireFromJsonBody(signature: TensorSignature, body: ArrayBuffer): WireTensor[] {
  const fast = fastFloatInputs(signature, body);
  if (fast) return fast;
  // Only 64-bit integer inputs need literals a double cannot hold; every other type refuses them either way.
  const exact = signature.inputs.some((s) => s.datatype === "INT64" || s.datatype === "UINT64");
  const json = exact ? parseJsonExact(decodeJsonText(body)) : parseJson(decodeJsonText(body));
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw bad(`Request body must be an object with the input tensors ${namesOf(signature.inputs)}`);
  }
  const given = json as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!signature.inputs.some((s) => s.name === key)) {
      throw bad(`Unexpected input '${key}'; the inputs are ${namesOf(signature.inputs)}`);
    }
  }
  return signature.inputs.map((spec) => {
    if (!Object.hasOwn(given, spec.name)) throw bad(`Missing input '${spec.name}'`);
    const { shape, flat } = nestedShape(spec.name, given[spec.name]);
    // `[]` for a tensor of rank 2 or more has zero rows; its other dimensions come from the signature.
    if (shape.length < spec.shape.length && shape.at(-1) === 0) {
      for (let i = shape.length; i < spec.shape.length; i++) shape.push(Math.max(spec.shape[i], 0));
    }
    checkAgainstSpec(spec, { datatype: spec.datatype, shape });
    return flatToWire({ name: spec.name, datatype: spec.datatype, shape, data: flat });
  });
}

/**
 * {@link wireFromJsonBody} for signatures of FP32 and FP64 inputs only, by scanning the bytes (`tensor_json_fast.ts`);
 * `undefined` when the body is not in the plain form or breaks a rule: the general path then decides, and says why.
 */
function fastFloatInputs(signature: TensorSignature, body: ArrayBuffer): WireTensor[] | undefined {
  const { inputs } = signature;
  if (!inputs.every((s) => s.datatype === "FP32" || s.datatype === "FP64")) return undefined;
  const scanned = scanNumberTensors(new Uint8Array(body), inputs.map((s) => s.name), maxRank);
  if (!scanned) return undefined;
  const out: WireTensor[] = [];
  for (const spec of inputs) {
    const { shape, values } = scanned.get(spec.name)!;
    if (!shapeFits(spec.shape, shape)) return undefined;
    // The scanned values lie in a buffer the next scan reuses: converted (FP32) or copied (FP64) out of it.
    const typed = spec.datatype === "FP32" ? toFiniteFloat32(values) : values.slice();
    if (!typed || (spec.datatype === "FP64" && !allFinite(typed as Float64Array))) return undefined;
    out.push({ name: spec.name, datatype: spec.datatype, shape, data: typed.buffer as ArrayBuffer });
  }
  return out;
}

/** The values rounded to float32, in one pass; `undefined` when one is not finite as a float32. */
function toFiniteFloat32(values: Float64Array): Float32Array | undefined {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = Math.fround(values[i]);
    // x - x is 0 for a finite x and NaN for an infinity or NaN.
    if (x - x !== 0) return undefined;
    out[i] = x;
  }
  return out;
}

function namesOf(specs: readonly TensorSpec[]): string {
  return specs.map((s) => `'${s.name}'`).join(", ");
}

/** Writes `text` as UTF-8 at `at` in `out` (room for 3 bytes per UTF-16 unit); returns the offset after it. */
function writeText(text: string, out: Uint8Array, at: number): number {
  // Names are ASCII nearly always: byte by byte costs less than a call to the encoder for a few bytes.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return at + encoder.encodeInto(text.slice(i), out.subarray(at)).written;
    out[at++] = c;
  }
  return at;
}

/** `{"<output>": nested array, ...}` as UTF-8 JSON (64-bit integers exact). */
export function outputsToJsonBody(outputs: readonly WireTensor[]): ArrayBuffer {
  return outputsToJsonBytes(outputs).slice().buffer;
}

/**
 * {@link outputsToJsonBody} written into a buffer this module reuses: the bytes hold until the next call of this
 * module's writers, so use them at once. A `Response` built from them copies them (the Fetch standard copies a
 * BufferSource body), so an answer needs no copy of its own.
 */
export function outputsToJsonBytes(outputs: readonly WireTensor[]): Uint8Array<ArrayBuffer> {
  // FP32 outputs are written unchecked (the writer sees a value that is not finite on its slow path); one that is
  // not finite after all has them all written again, each checked first.
  return writeOutputs(outputs, false) ?? writeOutputs(outputs, true)!;
}

function writeOutputs(outputs: readonly WireTensor[], checked: boolean): Uint8Array<ArrayBuffer> | undefined {
  // FP32 elements go straight to bytes (the bulk of a model's answer); the rest as text.
  let size = 2;
  const parts = outputs.map((t) => {
    const key = `${JSON.stringify(t.name)}:`;
    const float32 = checked ? finiteFloat32(t, t.shape) : float32Of(t, t.shape);
    const text = float32 ? "" : nestedJsonText(t);
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    size += 3 * (key.length + text.length) + 1 + (float32 ? float32NestedBytes(float32.length, t.shape) : 0);
    return { key, float32, text };
  });
  const out = scratchFor(size);
  let at = 0;
  out[at++] = 0x7b;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (i > 0) out[at++] = 0x2c;
    at = writeText(p.key, out, at);
    if (p.float32) {
      at = writeFloat32Nested(p.float32, outputs[i].shape, out, at);
      if (at < 0) return undefined;
    } else at += encoder.encodeInto(p.text, out.subarray(at)).written;
  }
  out[at++] = 0x7d;
  return out.subarray(0, at);
}
