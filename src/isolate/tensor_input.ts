/**
 * The isolate's side of tensor functions (those that declare a signature):
 * input tensors from the host's wire tensors (KServe v2) or from a `/v1`
 * JSON body, checked exactly against the signature, handed to the handler as
 * ONNX Runtime `Tensor`s; output tensors checked the same way and returned as
 * wire tensors (`/v2`) or as JSON with one nested array per output (`/v1`).
 * @module
 */
import { Tensor } from "onnxruntime-common";
import { IsolaneError } from "../errors.ts";
import type { Job, WireTensor } from "../protocol.ts";
import type { TensorFunctionDefinition, TensorSignature, TensorSpec } from "../sdk.ts";
import type { StagedModel } from "./staged_model.ts";
import type { StagedOutput } from "../../native/ort/mod.ts";
import { messageOf } from "./load_module.ts";
import { giveScratch, takeScratch } from "./scratch.ts";
import {
  bytesToStrings,
  checkAgainstSpec,
  datatypes,
  elementCount,
  encodeBytesElements,
  outputsToJsonBody,
  shapeFits,
  typedView,
  wireFromJsonBody,
} from "../tensors.ts";

const textEncoder = new TextEncoder();

/**
 * Makes ONNX Runtime's `Tensor` classes hold FP16 data as `Uint16Array` bits.
 * Where the runtime has a `Float16Array` global, onnxruntime-common turns
 * `Uint16Array` float16 data into a `Float16Array`, which onnxruntime-node's
 * native binding then sizes as 0 bytes ("not enough space: expected 6, got
 * 0"). onnxruntime-common picks its typed array for float16 once, on the
 * first tensor it makes, so this makes that first tensor with the global
 * hidden. Call it before any tensor is made (before user code runs).
 */
export function pinFloat16AsUint16(
  ...classes: { new (type: "float16", data: Uint16Array, dims: number[]): unknown }[]
) {
  const global = globalThis as { Float16Array?: unknown };
  const saved = global.Float16Array;
  try {
    delete global.Float16Array;
    for (const TensorClass of [Tensor, ...classes]) new TensorClass("float16", new Uint16Array(1), [1]);
  } finally {
    global.Float16Array = saved;
  }
}

function bad(message: string): IsolaneError {
  return new IsolaneError("invalid_input", message);
}

function names(specs: readonly TensorSpec[]): string {
  return specs.map((s) => `'${s.name}'`).join(", ");
}

/**
 * A wire tensor whose elements lie in `view`, a region of a buffer that holds other requests' inputs too (the
 * isolate copies a run of jobs out of an HTTP thread's arena into one buffer), instead of in `data` (then empty).
 * Only {@link tensorsFromWire} reads `view`; only a {@link runModel} handler's jobs carry one, so no user code sees
 * the shared buffer.
 */
export interface ViewedWireTensor extends WireTensor {
  view?: Uint8Array<ArrayBuffer>;
}

/** The handler's input: one `Tensor` per signature input, checked (names unique and known, datatype, shape, size). */
export function tensorsFromWire(signature: TensorSignature, wire: readonly ViewedWireTensor[]): Record<string, Tensor> {
  const byName = new Map<string, ViewedWireTensor>();
  for (const t of wire) {
    if (byName.has(t.name)) throw bad(`Input '${t.name}' is given more than once`);
    if (!signature.inputs.some((s) => s.name === t.name)) {
      throw bad(`Unexpected input '${t.name}'; the inputs are ${names(signature.inputs)}`);
    }
    byName.set(t.name, t);
  }
  const inputs: Record<string, Tensor> = {};
  for (const spec of signature.inputs) {
    const t = byName.get(spec.name);
    if (!t) throw bad(`Missing input '${spec.name}'`);
    checkAgainstSpec(spec, t);
    const count = elementCount(t.name, t.shape);
    if (spec.datatype === "BYTES") {
      inputs[spec.name] = new Tensor(
        "string",
        bytesToStrings(t.view ? { ...t, data: t.view.slice().buffer } : t),
        t.shape,
      );
      continue;
    }
    const data = t.view ? viewOf(spec, t.view) : typedView(t);
    if (data.length !== count) {
      throw bad(`Input '${t.name}' has ${data.length} elements; shape [${t.shape}] needs ${count}`);
    }
    inputs[spec.name] = new Tensor(datatypes[spec.datatype].ort as "float32", data as Float32Array, t.shape);
  }
  return inputs;
}

/** The elements of `view` as the spec's typed array, in place (`view` starts at a multiple of the element size). */
function viewOf(spec: TensorSpec, view: Uint8Array<ArrayBuffer>) {
  const info = datatypes[spec.datatype];
  return new info.array!(view.buffer, view.byteOffset, view.byteLength / info.byteSize);
}

/** v2 datatypes by onnxruntime-common's element type names. */
const byOrtType = new Map(Object.values(datatypes).map((info) => [info.ort as string, info]));

function wrong(fn: string, spec: TensorSpec, why: string): IsolaneError {
  return new IsolaneError(
    "invalid_output",
    `Function '${fn}' returned output '${spec.name}' that does not match its signature ${spec.datatype}[${spec.shape}]: ${why}`,
  );
}

/** An output checked against its spec: its bytes, still where the handler or the session left them. */
export interface CheckedOutput {
  name: string;
  datatype: string;
  shape: number[];
  /** The elements' bytes: a view of the returned data (BYTES: the encoded wire bytes). */
  bytes: Uint8Array;
}

/** Checks what a handler returned against the signature's outputs; the outputs as wire tensors (copied). */
export function outputsToWire(
  signature: TensorSignature,
  value: unknown,
  { name }: { name: string },
): WireTensor[] {
  return checkOutputs(signature, value, { name }).map((o) => ({
    name: o.name,
    datatype: o.datatype,
    shape: o.shape,
    data: o.bytes.slice().buffer,
  }));
}

/**
 * Checks what a handler returned against the signature's outputs, copying
 * nothing: each output's bytes are a view of the data returned.
 * @throws {IsolaneError} `invalid_output` naming the output and what is wrong with it.
 */
export function checkOutputs(
  signature: TensorSignature,
  value: unknown,
  { name: fn }: { name: string },
): CheckedOutput[] {
  if (typeof value !== "object" || value === null) {
    throw new IsolaneError(
      "invalid_output",
      `Function '${fn}' must return an object of output tensors ${names(signature.outputs)}`,
    );
  }
  const outputs = value as Record<string, unknown>;
  return signature.outputs.map((spec) => {
    const out = outputs[spec.name] as { data?: unknown; dims?: unknown; type?: unknown } | undefined;
    if (typeof out !== "object" || out === null) throw wrong(fn, spec, "missing");
    const info = datatypes[spec.datatype];
    if (out.type !== undefined && out.type !== info.ort) throw wrong(fn, spec, `tensor type is ${out.type}`);
    const dims = out.dims;
    if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw wrong(fn, spec, "dims must be non-negative integers");
    }
    const shape = [...dims] as number[];
    if (!shapeFits(spec.shape, shape)) throw wrong(fn, spec, `shape is [${shape}]`);
    const count = shape.reduce((a, b) => a * b, 1);
    let data = out.data;
    if (spec.datatype === "BYTES") {
      if (!Array.isArray(data) || !data.every((s) => typeof s === "string")) {
        throw wrong(fn, spec, "data must be strings");
      }
      if (data.length !== count) throw wrong(fn, spec, `${data.length} elements for shape [${shape}]`);
      // As TextEncoder writes them (half a surrogate pair as U+FFFD): jsonToWire's refusal is for requests.
      const bytes = new Uint8Array(encodeBytesElements(data.map((s) => textEncoder.encode(s))));
      return { name: spec.name, datatype: "BYTES", shape, bytes };
    }
    if (spec.datatype === "FP16" && data instanceof Float16Array) {
      data = new Uint16Array(data.buffer, data.byteOffset, data.length);
    }
    if (!(data instanceof info.array!)) {
      throw wrong(fn, spec, `data must be a ${info.array!.name}, got ${(data as object)?.constructor?.name}`);
    }
    const typed = data as Uint8Array;
    if (typed.length !== count) throw wrong(fn, spec, `${typed.length} elements for shape [${shape}]`);
    return {
      name: spec.name,
      datatype: spec.datatype,
      shape,
      bytes: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength),
    };
  });
}

/**
 * Each request's rows of checked, fixed-size outputs: `rows[i]` rows for request `i`, in order, as views of one copy
 * of each output, made in a buffer kept for reuse ({@link takeScratch}: no allocation per request, nor per batch
 * once warm). The views hold after the outputs' own memory is reused, until the caller gives the copies back with
 * {@link giveRows}; {@link wireOf} makes a request's wire tensors of them.
 */
export function cutRows(outputs: readonly CheckedOutput[], rows: readonly number[]): CheckedOutput[][] {
  const copies = outputs.map((o) => {
    const copy = takeScratch(o.bytes.byteLength);
    copy.set(o.bytes);
    return copy;
  });
  let start = 0;
  return rows.map((n) => {
    const end = start + n;
    const cut = outputs.map((o, k) => {
      const rowBytes = o.shape[0] > 0 ? o.bytes.byteLength / o.shape[0] : 0;
      return {
        name: o.name,
        datatype: o.datatype,
        shape: [n, ...o.shape.slice(1)],
        bytes: copies[k].subarray(start * rowBytes, end * rowBytes),
      };
    });
    start = end;
    return cut;
  });
}

/** Gives back the copies {@link cutRows} made: nothing may read `cut`'s views after. */
export function giveRows(cut: readonly CheckedOutput[][]): void {
  if (cut.length === 0) return;
  for (const o of cut[0]) giveScratch(o.bytes as Uint8Array<ArrayBuffer>);
}

/** A checked output as a wire tensor: its bytes copied into a buffer of its own. */
export function wireOf(output: CheckedOutput): WireTensor {
  return { name: output.name, datatype: output.datatype, shape: output.shape, data: output.bytes.slice().buffer };
}

/** An output of a padded run, cut to the batch's own rows. */
function unpad(out: StagedOutput, padded: number, rows: number): StagedOutput {
  return {
    ...out,
    dims: [rows, ...out.dims.slice(1)],
    bytes: out.bytes.subarray(0, out.bytes.byteLength / padded * rows),
  };
}

/**
 * Runs the model of a {@link runModel} handler on one or more requests'
 * checked inputs, combined along the first dimension: `fill` writes each
 * input's rows request after request where the session stages it (a CUDA
 * lane's pinned arena: no copy in between), `consume` checks the outputs
 * against the signature and splits them into each request's outputs: one
 * request's are copies of their own, several requests' views of one copy of
 * each output ({@link cutRows}; the caller gives them back with
 * {@link giveRows}). No user code runs in between, so the staging buffers
 * reach none. `undefined` when the requests cannot be combined (their inner sizes
 * differ) or the outputs' rows do not add up: the caller runs them alone.
 * @throws {IsolaneError} `invalid_output` when an output does not match the
 * signature, `handler_error` with the model's error.
 */
export async function runModelRows(
  model: StagedModel,
  signature: TensorSignature,
  requests: readonly Readonly<Record<string, Tensor>>[],
  { name: fn }: { name: string },
): Promise<CheckedOutput[][] | undefined> {
  const first = requests[0];
  const rows = requests.map((inputs) => inputs[signature.inputs[0].name].dims[0] ?? 0);
  const total = rows.reduce((a, b) => a + b, 0);
  // Zero rows after the requests' up to a size the model runs batches as (a CUDA graph per size); cut off after.
  // Only when every input of every request has that request's rows first (Triton's rule for batched inputs).
  const rowwise = requests.every((r, i) => signature.inputs.every((spec) => r[spec.name].dims[0] === rows[i]));
  const padded = rowwise ? model.padRows?.(total) ?? total : total;
  const inputs = [];
  for (const spec of signature.inputs) {
    const inner = first[spec.name].dims.slice(1);
    const agree = requests.every((r) =>
      r[spec.name].dims.length === inner.length + 1 &&
      r[spec.name].dims.every((d, i) => i === 0 || d === inner[i - 1])
    );
    if (!agree) return undefined;
    const dims = requests.length === 1 && padded === total ? [...first[spec.name].dims] : [padded, ...inner];
    inputs.push({ name: spec.name, type: datatypes[spec.datatype].ort, dims });
  }
  try {
    return await model.run({
      inputs,
      fill(name, into) {
        let at = 0;
        for (const request of requests) {
          const data = request[name].data as ArrayBufferView;
          into.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
          at += data.byteLength;
        }
        if (at < into.byteLength) into.fill(0, at);
      },
      consume(outputs) {
        // A padded run whose outputs do not have the padded rows is not row by row: run the requests as they come.
        if (padded !== total && Object.values(outputs).some((out) => out.dims[0] !== padded)) return undefined;
        const value = Object.fromEntries(
          Object.entries(outputs).map(([name, padOut]) => {
            const out = padded === total ? padOut : unpad(padOut, padded, total);
            const info = byOrtType.get(out.type);
            const data = info?.array
              ? new info.array(
                out.bytes.buffer as ArrayBuffer,
                out.bytes.byteOffset,
                out.bytes.byteLength / info.byteSize,
              )
              : undefined;
            return [name, { type: out.type, dims: out.dims, data }];
          }),
        );
        const checked = checkOutputs(signature, value, { name: fn });
        if (requests.length === 1) return [checked.map((o) => ({ ...o, bytes: o.bytes.slice() }))];
        return checked.every((o) => o.shape[0] === total) ? cutRows(checked, rows) : undefined;
      },
    });
  } catch (error) {
    if (error instanceof IsolaneError) throw error;
    throw new IsolaneError("handler_error", `Function '${fn}' threw: ${messageOf(error)}`);
  }
}

/**
 * Runs a job of a tensor function: tensors in (the job's, or the `/v1` JSON
 * body's), `call` the handler, tensors out (as the job came: wire tensors, or
 * a JSON body).
 */
export async function runTensorJob(
  definition: TensorFunctionDefinition,
  job: Job,
  { name, call }: { name: string; call: (inputs: Record<string, Tensor>) => Promise<unknown> },
): Promise<{ body: ArrayBuffer; tensors?: WireTensor[] }> {
  const { signature } = definition;
  const inputs = tensorsFromWire(signature, job.tensors ?? wireFromJsonBody(signature, job.body));
  const outputs = outputsToWire(signature, await call(inputs), { name });
  return job.tensors ? { body: new ArrayBuffer(0), tensors: outputs } : { body: outputsToJsonBody(outputs) };
}

/**
 * {@link runTensorJob} for a {@link runModel} handler: the model run by the runtime ({@link runModelRows});
 * `undefined` when the inputs have no rows to stage (a scalar input), for the caller to run the handler instead.
 */
export async function runModelJob(
  definition: TensorFunctionDefinition,
  job: Job,
  { name, model }: { name: string; model: StagedModel },
): Promise<{ body: ArrayBuffer; tensors?: WireTensor[] } | undefined> {
  const { signature } = definition;
  const inputs = tensorsFromWire(signature, job.tensors ?? wireFromJsonBody(signature, job.body));
  const staged = await runModelRows(model, signature, [inputs], { name });
  // Inputs without rows to stage (a scalar, say): the caller runs the handler as any other.
  if (!staged) return undefined;
  // One request's outputs are copies of their own (runModelRows): their buffers go as they are.
  const outputs = staged[0].map((o) => ({
    name: o.name,
    datatype: o.datatype,
    shape: o.shape,
    data: o.bytes.buffer as ArrayBuffer,
  }));
  return job.tensors ? { body: new ArrayBuffer(0), tensors: outputs } : { body: outputsToJsonBody(outputs) };
}
