/**
 * Triton's Python HTTP client (`tritonclient.http`), ported to what it puts
 * on the wire and how it reads the answer, so that tests speak exactly its
 * format:
 * - `_utils.py` `_get_inference_request`: `{"id"?, "inputs", "outputs"?,
 *   "parameters"?}` as compact ASCII JSON (python-rapidjson), then each
 *   binary input's raw bytes; with no outputs named it asks
 *   `binary_data_output: true`.
 * - `_infer_input.py`: an input is binary by default
 *   (`parameters.binary_data_size`); BYTES as 4-byte little-endian lengths
 *   before each element (`serialize_byte_tensor`); JSON data is flat.
 * - `_requested_output.py`: `parameters.binary_data` (default true).
 * - `_client.py` `infer`: POST `v2/models/<name>[/versions/<v>]/infer` with
 *   NO content type; `Inference-Header-Content-Length` only when some input
 *   is binary; `Content-Encoding: gzip|deflate` when compressing.
 * - `_infer_result.py`: the response's `Inference-Header-Content-Length`
 *   splits JSON from binary outputs, taken in order of `binary_data_size`.
 * - `_utils.py` `_get_error`: an error body must be `{"error": <string>}`.
 * @module
 */

/** A typed array of tensor elements (FP16 as `Uint16Array` bits, BOOL as `Uint8Array`). */
export type Elements =
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

/** `InferInput` with `set_data_from_numpy(data, binary_data)`. */
export interface InferInput {
  name: string;
  shape: number[];
  datatype: string;
  /** Typed elements, or strings (BYTES). */
  data: Elements | string[];
  /** Default true, as in the client. */
  binary?: boolean;
}

/** `InferRequestedOutput(name, binary_data)`. */
export interface RequestedOutput {
  name: string;
  /** Default true, as in the client. */
  binary?: boolean;
}

/** Options of {@link buildInferRequest}. */
export interface InferOptions {
  requestId?: string;
  outputs?: RequestedOutput[];
  parameters?: Record<string, unknown>;
  compression?: "gzip" | "deflate";
}

const encoder = new TextEncoder();

/** python-rapidjson's `dumps`: compact, ASCII only (`ensure_ascii`), Python ints as plain digits. */
export function rapidjsonDumps(value: unknown): string {
  const text = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `\u0000big:${v}` : v));
  return text
    .replace(/"\\u0000big:(-?\d+)"/g, "$1")
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** `serialize_byte_tensor`: each element's UTF-8 bytes after its 4-byte little-endian length. */
export function serializeByteTensor(strings: readonly (string | Uint8Array)[]): Uint8Array {
  const parts = strings.map((s) => (typeof s === "string" ? encoder.encode(s) : s));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length, true);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** `deserialize_bytes_tensor`. */
export function deserializeBytesTensor(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const length = view.getUint32(at, true);
    out.push(bytes.slice(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return out;
}

function jsonData(input: InferInput): unknown[] {
  if (input.datatype === "BYTES") return [...(input.data as string[])];
  if (input.datatype === "BOOL") return Array.from(input.data as Uint8Array, (b) => b !== 0);
  if (input.datatype === "FP16") {
    const bits = input.data as Uint16Array;
    return Array.from(new Float16Array(bits.buffer, bits.byteOffset, bits.length));
  }
  return Array.from(input.data as ArrayLike<number | bigint>);
}

function rawData(input: InferInput): Uint8Array {
  if (input.datatype === "BYTES") return serializeByteTensor(input.data as string[]);
  const typed = input.data as Elements;
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

async function compress(body: Uint8Array, format: "gzip" | "deflate"): Promise<Uint8Array> {
  const stream = new Blob([body as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The body and headers `InferenceServerClient.infer` sends. */
export async function buildInferRequest(
  inputs: InferInput[],
  options: InferOptions = {},
): Promise<{ body: Uint8Array; headers: Record<string, string> }> {
  const request: Record<string, unknown> = {};
  const parameters: Record<string, unknown> = {};
  if (options.requestId) request.id = options.requestId;
  const raw: Uint8Array[] = [];
  request.inputs = inputs.map((input) => {
    const tensor: Record<string, unknown> = { name: input.name, shape: input.shape, datatype: input.datatype };
    if (input.binary ?? true) {
      const bytes = rawData(input);
      raw.push(bytes);
      tensor.parameters = { binary_data_size: bytes.length };
    } else tensor.data = jsonData(input);
    return tensor;
  });
  if (options.outputs) {
    request.outputs = options.outputs.map((o) => ({ name: o.name, parameters: { binary_data: o.binary ?? true } }));
  } else parameters.binary_data_output = true;
  Object.assign(parameters, options.parameters);
  if (Object.keys(parameters).length > 0) request.parameters = parameters;
  const json = encoder.encode(rapidjsonDumps(request));
  let body: Uint8Array = new Uint8Array(json.length + raw.reduce((n, r) => n + r.length, 0));
  body.set(json);
  let at = json.length;
  for (const r of raw) {
    body.set(r, at);
    at += r.length;
  }
  const headers: Record<string, string> = {};
  if (options.compression) {
    headers["Content-Encoding"] = options.compression;
    body = await compress(body, options.compression);
  }
  if (raw.length > 0) headers["Inference-Header-Content-Length"] = String(json.length);
  return { body, headers };
}

/** One output as `InferResult.as_numpy` would give it: its JSON entry and, if binary, its bytes. */
export interface ResultOutput {
  name: string;
  datatype: string;
  shape: number[];
  /** JSON `data`, when the output came as JSON. */
  data?: unknown[];
  /** The output's bytes, when it came binary. */
  bytes?: Uint8Array;
}

/** `InferResult`: the response's JSON and each output's binary slice. */
export interface InferResult {
  json: Record<string, unknown>;
  outputs: Map<string, ResultOutput>;
}

/** Reads a 200 response as `InferResult.__init__` does. */
export function parseInferResult(body: Uint8Array, headerLength: string | null): InferResult {
  const length = headerLength === null ? body.length : Number(headerLength);
  const json = JSON.parse(new TextDecoder().decode(body.subarray(0, length)));
  const buffer = body.subarray(length);
  const outputs = new Map<string, ResultOutput>();
  let index = 0;
  for (const output of json.outputs as (ResultOutput & { parameters?: { binary_data_size?: number } })[]) {
    const size = output.parameters?.binary_data_size;
    const entry: ResultOutput = { name: output.name, datatype: output.datatype, shape: output.shape };
    if (size !== undefined) {
      entry.bytes = buffer.slice(index, index + size);
      index += size;
    } else entry.data = output.data;
    outputs.set(output.name, entry);
  }
  return { json, outputs };
}

/** `InferenceServerClient.infer` against `url`: the status, and the result or the error string. */
export async function infer(
  url: string,
  model: string,
  inputs: InferInput[],
  options: InferOptions & { version?: string } = {},
): Promise<
  { status: number; result?: InferResult; error?: string; contentType: string | null }
> {
  const { body, headers } = await buildInferRequest(inputs, options);
  const path = options.version ? `v2/models/${model}/versions/${options.version}/infer` : `v2/models/${model}/infer`;
  const response = await fetch(`${url}/${path}`, { method: "POST", headers, body: body as Uint8Array<ArrayBuffer> });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const contentType = response.headers.get("content-type");
  if (response.status !== 200) {
    // `_get_error`: `msg=error_response["error"]` must be a string.
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof parsed.error !== "string") {
      throw new Error(`Error body is not {"error": string}: ${JSON.stringify(parsed)}`);
    }
    return { status: response.status, error: parsed.error, contentType };
  }
  return {
    status: 200,
    result: parseInferResult(bytes, response.headers.get("Inference-Header-Content-Length")),
    contentType,
  };
}
