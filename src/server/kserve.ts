/**
 * KServe v2 / Open Inference Protocol inference requests and responses, as
 * Triton's own clients send and read them: a JSON request, or the binary
 * tensor data extension (a JSON header of `Inference-Header-Content-Length`
 * bytes followed by the inputs' bytes, each input saying its
 * `parameters.binary_data_size`); outputs in JSON or, when asked
 * (`parameters.binary_data` per output, `binary_data_output` per request),
 * as bytes after the response's JSON header.
 *
 * Sources: Triton's `docs/protocol/extension_binary_data.md` and its Python
 * client `tritonclient/http` (`_utils.py` `_get_inference_request`,
 * `_infer_result.py`).
 * @module
 */
import { z } from "zod";
import { IsolaneError } from "../errors.ts";
import type { WireTensor } from "../protocol.ts";
import { type TensorDatatype, tensorDatatypes, type TensorSignature } from "../sdk.ts";
import {
  binaryToWire,
  checkAgainstSpec,
  decodeJsonText,
  flatJsonText,
  jsonToWire,
  parseJson,
  parseJsonExact,
} from "../tensors.ts";

/** The request header that says how many leading bytes of the body are the JSON inference header. */
export const inferenceHeaderLength = "Inference-Header-Content-Length";

const parameters = z.record(z.string(), z.unknown()).optional();

/** An inference request's JSON, without walking its tensor data (the tensor module converts that exactly). */
export const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters,
  inputs: z.array(z.object({
    name: z.string(),
    shape: z.array(z.number().int().min(0)),
    datatype: z.enum(tensorDatatypes),
    parameters,
    data: z.unknown().optional(),
  })).min(1),
  outputs: z.array(z.object({ name: z.string(), parameters })).optional(),
});

/** A parsed inference request. */
export type InferRequest = z.output<typeof inferRequestSchema>;

const datatypeSet: ReadonlySet<unknown> = new Set(tensorDatatypes);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isParameters(value: unknown): boolean {
  return value === undefined || isRecord(value);
}

/**
 * `value` as an {@link InferRequest} when {@link inferRequestSchema} surely takes it, checked by hand; `undefined`
 * for anything else, which the schema then judges (and words the error). The schema's walk cost as much as parsing
 * the JSON header of a binary request.
 */
export function plainInferRequest(value: unknown): InferRequest | undefined {
  if (!isRecord(value)) return undefined;
  const { id, parameters, inputs, outputs } = value;
  if ((id !== undefined && typeof id !== "string") || !isParameters(parameters)) return undefined;
  if (!Array.isArray(inputs) || inputs.length === 0) return undefined;
  for (const input of inputs) {
    if (!isRecord(input) || typeof input.name !== "string" || !datatypeSet.has(input.datatype)) return undefined;
    if (!isParameters(input.parameters) || !Array.isArray(input.shape)) return undefined;
    for (const d of input.shape) if (!(typeof d === "number" && Number.isSafeInteger(d) && d >= 0)) return undefined;
  }
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) return undefined;
    for (const o of outputs) {
      if (!isRecord(o) || typeof o.name !== "string" || !isParameters(o.parameters)) return undefined;
    }
  }
  return value as InferRequest;
}

/** A decoded inference request: its input tensors and what to answer with. */
export interface DecodedRequest {
  id?: string;
  inputs: WireTensor[];
  /** The outputs to return, in order, and whether each goes binary. */
  outputs: { name: string; binary: boolean }[];
}

function bad(message: string): IsolaneError {
  return new IsolaneError("invalid_input", message);
}

const unsupportedParameters = ["shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"];

function checkParameters(where: string, params: Record<string, unknown> | undefined): void {
  for (const key of unsupportedParameters) {
    if (params && key in params) {
      throw bad(`${where}: parameter '${key}' is not supported (no shared memory extension)`);
    }
  }
  if (params && "classification" in params) {
    throw bad(`${where}: parameter 'classification' is not supported (no classification extension)`);
  }
}

/**
 * Decodes an inference request body. `headerLength` is the value of
 * `Inference-Header-Content-Length` (binary tensor data), if sent. Throws
 * `invalid_json` or `invalid_input` (400) saying what is wrong.
 */
export function decodeInferRequest(
  signature: TensorSignature,
  body: Uint8Array,
  { headerLength }: { headerLength?: string } = {},
): DecodedRequest {
  let jsonBytes = body;
  let binary: Uint8Array = new Uint8Array(0);
  if (headerLength !== undefined) {
    const n = /^\d{1,15}$/.test(headerLength.trim()) ? Number(headerLength) : NaN;
    if (!(n >= 0 && n <= body.length)) {
      throw bad(`${inferenceHeaderLength} is '${headerLength}'; it must be a byte count up to ${body.length}`);
    }
    jsonBytes = body.subarray(0, n);
    binary = body.subarray(n);
    const known = knownHeaders.get(signature);
    if (known && sameBytes(known.header, jsonBytes)) return fromPlan(known.plan, binary);
  }
  // Only 64-bit integer inputs need literals a double cannot hold; the search for them costs as much as a third of
  // the parse.
  const exact = signature.inputs.some((s) => s.datatype === "INT64" || s.datatype === "UINT64");
  const text = decodeJsonText(jsonBytes);
  const json = exact ? parseJsonExact(text) : parseJson(text);
  let request = plainInferRequest(json);
  if (!request) {
    const parsed = inferRequestSchema.safeParse(json);
    if (!parsed.success) {
      throw bad(
        `Not a v2 inference request: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      );
    }
    request = parsed.data;
  }
  checkParameters("Request", request.parameters);
  const seen = new Set<string>();
  let offset = 0;
  let allBinaryInputs = true;
  const inputs = request.inputs.map((input) => {
    if (seen.has(input.name)) throw bad(`Input '${input.name}' is given more than once`);
    seen.add(input.name);
    checkParameters(`Input '${input.name}'`, input.parameters);
    const spec = signature.inputs.find((s) => s.name === input.name);
    if (!spec) {
      throw bad(
        `Unexpected input '${input.name}'; the inputs are ${signature.inputs.map((s) => `'${s.name}'`).join(", ")}`,
      );
    }
    checkAgainstSpec(spec, input);
    const size = input.parameters?.binary_data_size;
    if (size === undefined) {
      if (input.data === undefined) throw bad(`Input '${input.name}' has neither 'data' nor binary_data_size`);
      allBinaryInputs = false;
      return jsonToWire({ name: input.name, datatype: input.datatype, shape: input.shape, data: input.data });
    }
    if (input.data !== undefined) throw bad(`Input '${input.name}' has both 'data' and binary_data_size`);
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
      throw bad(`Input '${input.name}' binary_data_size must be a non-negative integer`);
    }
    if (offset + size > binary.length) {
      throw bad(
        `Input '${input.name}' needs ${size} bytes of binary data at offset ${offset}; the body has ${binary.length}`,
      );
    }
    const bytes = binary.subarray(offset, offset + size);
    offset += size;
    return binaryToWire({ name: input.name, datatype: input.datatype, shape: input.shape }, bytes);
  });
  if (offset !== binary.length) {
    throw bad(`The body has ${binary.length - offset} bytes after the inputs' binary data`);
  }
  const allBinary = request.parameters?.binary_data_output;
  if (allBinary !== undefined && typeof allBinary !== "boolean") throw bad("binary_data_output must be a boolean");
  // No outputs named, or none in the list, means all of them (Triton's rule).
  const asked = request.outputs?.length
    ? request.outputs
    : signature.outputs.map((s) => ({ name: s.name, parameters: undefined }));
  const outputNames = new Set<string>();
  const outputs = asked.map((o) => {
    if (!signature.outputs.some((s) => s.name === o.name)) {
      throw bad(`Unknown output '${o.name}'; outputs are ${signature.outputs.map((s) => s.name).join(", ")}`);
    }
    if (outputNames.has(o.name)) throw bad(`Output '${o.name}' is asked for more than once`);
    outputNames.add(o.name);
    checkParameters(`Output '${o.name}'`, o.parameters);
    const binary = o.parameters?.binary_data ?? allBinary ?? false;
    if (typeof binary !== "boolean") throw bad(`Output '${o.name}' binary_data must be a boolean`);
    return { name: o.name, binary };
  });
  if (headerLength !== undefined && allBinaryInputs && jsonBytes.length <= maxKnownHeader) {
    // Every check of the header passed: the same header again needs only its binary data checked.
    knownHeaders.set(signature, {
      header: jsonBytes.slice(),
      plan: {
        ...(request.id !== undefined ? { id: request.id } : {}),
        inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype as TensorDatatype, shape: t.shape })),
        sizes: inputs.map((t) => t.data.byteLength),
        outputs: Object.freeze(outputs.map((o) => Object.freeze(o))) as DecodedRequest["outputs"],
      },
    });
  }
  return { ...(request.id !== undefined ? { id: request.id } : {}), inputs, outputs };
}

/**
 * What a binary request's JSON header decodes to, all of its checks passed: its inputs' names, datatypes, shapes and
 * `binary_data_size`s, and the outputs asked for (frozen: every request with this header shares them).
 */
interface HeaderPlan {
  id?: string;
  inputs: { name: string; datatype: TensorDatatype; shape: number[] }[];
  sizes: number[];
  outputs: DecodedRequest["outputs"];
}

/** The longest JSON header kept as a {@link HeaderPlan}, in bytes. */
const maxKnownHeader = 4096;

/**
 * The last binary request header decoded for each signature (of this thread), and its plan. Clients send the same
 * header with every request of a model (Triton's client writes it from the same inputs and outputs each time): parsing
 * and checking it again (UTF-8, `JSON.parse`, the request's checks) was most of a binary request's decoding. Keyed by
 * the signature object, so a function's new version starts afresh.
 */
const knownHeaders = new WeakMap<TensorSignature, { header: Uint8Array; plan: HeaderPlan }>();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The request of a known header: its binary data checked and cut into inputs as {@link decodeInferRequest} does. */
function fromPlan(plan: HeaderPlan, binary: Uint8Array): DecodedRequest {
  const inputs: WireTensor[] = new Array(plan.inputs.length);
  let offset = 0;
  for (let i = 0; i < inputs.length; i++) {
    const { name, datatype, shape } = plan.inputs[i];
    const size = plan.sizes[i];
    if (offset + size > binary.length) {
      throw bad(
        `Input '${name}' needs ${size} bytes of binary data at offset ${offset}; the body has ${binary.length}`,
      );
    }
    const bytes = binary.subarray(offset, offset + size);
    offset += size;
    inputs[i] = binaryToWire({ name, datatype, shape: [...shape] }, bytes);
  }
  if (offset !== binary.length) {
    throw bad(`The body has ${binary.length - offset} bytes after the inputs' binary data`);
  }
  return plan.id !== undefined ? { id: plan.id, inputs, outputs: plan.outputs } : { inputs, outputs: plan.outputs };
}

/**
 * One v2 infer request from its body to its answer: decodes `body` against `signature` (binary tensors after
 * `headerLength` bytes of JSON, when given), runs the inputs through `infer`, encodes the outputs the request asked
 * for as `model`'s answer, and hands the encoding to `respond` at once, in the same turn: with `reuse` (see
 * {@link encodeInferResponse}) the body lies in a buffer the next encoding overwrites, so `respond` must copy it (a
 * `Response` built from it does). Shared by the Hono route (`kserve_routes.ts`), the main thread's direct path
 * (`app.tsx`) and the HTTP threads (`http_thread.ts`).
 * @throws {IsolaneError} 400 for a body the protocol or the signature refuses; whatever `infer` rejects with.
 */
export async function answerInferRequest(
  signature: TensorSignature,
  body: Uint8Array,
  headerLength: string | undefined,
  model: { name: string; version: number },
  infer: (inputs: WireTensor[]) => Promise<WireTensor[]>,
  respond: (encoded: EncodedResponse) => Response,
  options: { reuse?: boolean } = {},
): Promise<Response> {
  const request = decodeInferRequest(signature, body, { headerLength });
  const tensors = await infer(request.inputs);
  return respond(encodeInferResponse(
    { name: model.name, version: String(model.version), ...(request.id !== undefined ? { id: request.id } : {}) },
    { tensors, outputs: request.outputs },
    options,
  ));
}

/** The headers of an encoded answer: its content type, its request id, and its JSON header's length when binary. */
export function inferResponseHeaders(encoded: EncodedResponse, requestId: string): [string, string][] {
  const headers: [string, string][] = [["content-type", encoded.contentType], ["x-request-id", requestId]];
  if (encoded.headerLength !== undefined) headers.push([inferenceHeaderLength, String(encoded.headerLength)]);
  return headers;
}

/** An encoded inference response: the body, and `Inference-Header-Content-Length` when outputs are binary. */
export interface EncodedResponse {
  body: Uint8Array;
  contentType: string;
  headerLength?: number;
}

const encoder = new TextEncoder();

/** Where {@link encodeInferResponse} writes with `reuse` (grown as needed, up to 16 MiB; larger answers get their own). */
let scratch = new Uint8Array(64 * 1024);

/**
 * Encodes the response: `{"model_name", "model_version", "id"?, "outputs"}`,
 * each output with `data` (JSON, 64-bit integers exact) or with
 * `parameters.binary_data_size` and its bytes after the JSON header.
 * With `reuse`, the body lies in a buffer this module reuses: it holds until the next call, so use it at once (a
 * `Response` built from it copies it, as the Fetch standard copies a BufferSource body).
 */
export function encodeInferResponse(
  model: { name: string; version: string; id?: string },
  { tensors, outputs }: { tensors: readonly WireTensor[]; outputs: readonly { name: string; binary: boolean }[] },
  { reuse = false }: { reuse?: boolean } = {},
): EncodedResponse {
  const header = knownResponseHeader(model, tensors, outputs);
  if (header) return encodeBinary(header, tensors, outputs, reuse);
  const chunks: Uint8Array[] = [];
  let chunkBytes = 0;
  const parts = outputs.map(({ name, binary }) => {
    const t = tensors.find((t) => t.name === name);
    if (!t) throw new IsolaneError("invalid_output", `The function returned no output '${name}'`);
    const head = `"name":${JSON.stringify(t.name)},"datatype":${JSON.stringify(t.datatype)},"shape":${
      JSON.stringify(t.shape)
    }`;
    if (!binary) return `{${head},"data":${flatJsonText(t)}}`;
    chunks.push(new Uint8Array(t.data));
    chunkBytes += t.data.byteLength;
    return `{${head},"parameters":{"binary_data_size":${t.data.byteLength}}}`;
  });
  const text = `{"model_name":${JSON.stringify(model.name)},"model_version":${JSON.stringify(model.version)},${
    model.id !== undefined ? `"id":${JSON.stringify(model.id)},` : ""
  }"outputs":[${parts.join(",")}]}`;
  if (chunks.length > 0 && chunks.length === outputs.length) {
    const header = encoder.encode(text);
    rememberResponseHeader(model, tensors, outputs, header);
    return encodeBinary(header, tensors, outputs, reuse);
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  const most = 3 * text.length + chunkBytes;
  if (!reuse || most > 16 * 2 ** 20) {
    const header = encoder.encode(text);
    if (chunks.length === 0) return { body: header, contentType: "application/json" };
    const body = new Uint8Array(header.length + chunkBytes);
    body.set(header);
    let at = header.length;
    for (const c of chunks) {
      body.set(c, at);
      at += c.length;
    }
    return { body, contentType: "application/octet-stream", headerLength: header.length };
  }
  if (most > scratch.length) scratch = new Uint8Array(Math.max(most, 2 * scratch.length));
  const headerLength = encoder.encodeInto(text, scratch).written;
  if (chunks.length === 0) return { body: scratch.subarray(0, headerLength), contentType: "application/json" };
  let at = headerLength;
  for (const c of chunks) {
    scratch.set(c, at);
    at += c.length;
  }
  return { body: scratch.subarray(0, at), contentType: "application/octet-stream", headerLength };
}

/** The JSON header of the last answer whose outputs were all binary, and what it was written from. */
let lastHeader:
  | {
    name: string;
    version: string;
    id: string | undefined;
    outputs: string[];
    datatypes: string[];
    shapes: number[][];
    sizes: number[];
    bytes: Uint8Array;
  }
  | undefined;

function rememberResponseHeader(
  model: { name: string; version: string; id?: string },
  tensors: readonly WireTensor[],
  outputs: readonly { name: string }[],
  bytes: Uint8Array,
): void {
  const ts = outputs.map((o) => tensors.find((t) => t.name === o.name)!);
  lastHeader = {
    name: model.name,
    version: model.version,
    id: model.id,
    outputs: outputs.map((o) => o.name),
    datatypes: ts.map((t) => t.datatype),
    shapes: ts.map((t) => [...t.shape]),
    sizes: ts.map((t) => t.data.byteLength),
    bytes,
  };
}

/**
 * The JSON header bytes of an answer whose outputs are all binary, when the last such answer had the same model, id,
 * outputs, datatypes, shapes and sizes (batch-1 requests of one model: each answer's header is the same); else
 * `undefined`. Writing it afresh (`JSON.stringify` of each name and shape, the UTF-8 encoding) was most of encoding
 * such an answer.
 */
function knownResponseHeader(
  model: { name: string; version: string; id?: string },
  tensors: readonly WireTensor[],
  outputs: readonly { name: string; binary: boolean }[],
): Uint8Array | undefined {
  const last = lastHeader;
  if (!last || last.name !== model.name || last.version !== model.version || last.id !== model.id) return undefined;
  if (last.outputs.length !== outputs.length) return undefined;
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i];
    if (!o.binary || o.name !== last.outputs[i]) return undefined;
    const t = tensors.find((t) => t.name === o.name);
    if (!t || t.datatype !== last.datatypes[i] || t.data.byteLength !== last.sizes[i]) return undefined;
    const shape = last.shapes[i];
    if (t.shape.length !== shape.length) return undefined;
    for (let d = 0; d < shape.length; d++) if (t.shape[d] !== shape[d]) return undefined;
  }
  return last.bytes;
}

/** An answer of binary outputs after `header` (from {@link knownResponseHeader}), as {@link encodeInferResponse} writes it. */
function encodeBinary(
  header: Uint8Array,
  tensors: readonly WireTensor[],
  outputs: readonly { name: string }[],
  reuse: boolean,
): EncodedResponse {
  let bytes = header.length;
  for (const o of outputs) bytes += tensors.find((t) => t.name === o.name)!.data.byteLength;
  let body: Uint8Array;
  if (reuse && bytes <= 16 * 2 ** 20) {
    if (bytes > scratch.length) scratch = new Uint8Array(Math.max(bytes, 2 * scratch.length));
    body = scratch.subarray(0, bytes);
  } else body = new Uint8Array(bytes);
  body.set(header);
  let at = header.length;
  for (const o of outputs) {
    const data = new Uint8Array(tensors.find((t) => t.name === o.name)!.data);
    body.set(data, at);
    at += data.length;
  }
  return { body, contentType: "application/octet-stream", headerLength: header.length };
}
