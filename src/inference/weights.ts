/**
 * A model's weights as its file holds them: the main graph's initializers,
 * read with onnx-proto (external data from the files beside the model, whose
 * locations `checkModelFiles` has kept inside the function's folder), for
 * one copy per device shared by a function's CUDA lanes (issue 15).
 *
 * @example
 * ```ts
 * const weights = await readModelWeights("functions/mlp/mlp.onnx", { minBytes: 0 });
 * weights.map((w) => [w.name, w.type, w.dims]); // [["w1", "float32", [4, 16]], ...]
 * ```
 * @module
 */
import { dirname, resolve } from "node:path";
import type onnxProto from "onnx-proto";
import { type ElementType, elementTypeName, elementTypes } from "../../native/ort/mod.ts";
import { loadOnnxProto } from "./_onnx_proto.ts";

type TensorProto = onnxProto.onnx.ITensorProto;

/**
 * Initializers of at least this many bytes are shared; smaller ones (shape
 * constants among them, which CPU nodes read) stay ORT's own.
 */
export const minSharedWeightBytes = 64 * 1024;

/** One initializer: its name, element type, shape and little-endian bytes. */
export interface ModelWeight {
  name: string;
  type: ElementType;
  dims: number[];
  bytes: Uint8Array;
}

function count(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The bytes of a tensor kept in the typed fields instead of `raw_data` (the common cases); `null` for others. */
function fieldBytes(t: TensorProto, type: ElementType, n: number): Uint8Array | null {
  const view = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (type === "float32" && t.floatData?.length === n) return view(Float32Array.from(t.floatData));
  if (type === "float64" && t.doubleData?.length === n) return view(Float64Array.from(t.doubleData));
  if (type === "int32" && t.int32Data?.length === n) return view(Int32Array.from(t.int32Data));
  if (type === "int64" && t.int64Data?.length === n) {
    return view(BigInt64Array.from(t.int64Data, (v) => BigInt(v.toString())));
  }
  return null;
}

async function externalBytes(t: TensorProto, modelDir: string, bytes: number): Promise<Uint8Array | null> {
  const entry = (key: string) => t.externalData?.find((e) => e.key === key)?.value;
  const location = entry("location");
  if (!location) return null;
  const offset = Number(entry("offset") ?? 0);
  const length = Number(entry("length") ?? bytes);
  if (length !== bytes) return null;
  using file = await Deno.open(resolve(modelDir, location));
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(bytes);
  let at = 0;
  while (at < bytes) {
    const read = await file.read(out.subarray(at));
    if (read === null) return null;
    at += read;
  }
  return out;
}

/**
 * The numeric initializers of the model's main graph with at least
 * `minBytes` bytes (default {@link minSharedWeightBytes}), with their
 * bytes. Tensors this cannot read as plain little-endian elements (strings,
 * sparse, types the binding does not know) are left out: ORT loads them as
 * usual.
 * @throws {Error} when the file is not an ONNX model, or an external data file cannot be read.
 */
export async function readModelWeights(
  path: string,
  { minBytes = minSharedWeightBytes }: { minBytes?: number } = {},
): Promise<ModelWeight[]> {
  const { onnx } = await loadOnnxProto();
  const model = onnx.ModelProto.decode(await Deno.readFile(path));
  const modelDir = dirname(resolve(path));
  const weights: ModelWeight[] = [];
  for (const t of model.graph?.initializer ?? []) {
    const type = elementTypeName(t.dataType ?? 0);
    if (!t.name || !(type in elementTypes)) continue;
    const elementType = type as ElementType;
    const dims = (t.dims ?? []).map((d) => Number(d.toString()));
    const bytes = count(dims) * elementTypes[elementType].bytes;
    if (bytes < minBytes || bytes === 0) continue;
    const external = t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
    const data = external
      ? await externalBytes(t, modelDir, bytes)
      : t.rawData && t.rawData.length > 0
      ? (t.rawData.length === bytes ? t.rawData : null)
      : fieldBytes(t, elementType, count(dims));
    if (data) weights.push({ name: t.name, type: elementType, dims, bytes: data });
  }
  return weights;
}
