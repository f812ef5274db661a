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
import {
  bytesToStrings,
  checkAgainstSpec,
  datatypes,
  elementCount,
  jsonToWire,
  outputsToJsonBody,
  shapeFits,
  typedView,
  wireFromJsonBody,
} from "../tensors.ts";

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

/** The handler's input: one `Tensor` per signature input, checked (names unique and known, datatype, shape, size). */
export function tensorsFromWire(signature: TensorSignature, wire: readonly WireTensor[]): Record<string, Tensor> {
  const byName = new Map<string, WireTensor>();
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
      inputs[spec.name] = new Tensor("string", bytesToStrings(t), t.shape);
      continue;
    }
    const data = typedView(t);
    if (data.length !== count) {
      throw bad(`Input '${t.name}' has ${data.length} elements; shape [${t.shape}] needs ${count}`);
    }
    inputs[spec.name] = new Tensor(datatypes[spec.datatype].ort as "float32", data as Float32Array, t.shape);
  }
  return inputs;
}

function wrong(fn: string, spec: TensorSpec, why: string): IsolaneError {
  return new IsolaneError(
    "invalid_output",
    `Function '${fn}' returned output '${spec.name}' that does not match its signature ${spec.datatype}[${spec.shape}]: ${why}`,
  );
}

/** Checks what a handler returned against the signature's outputs; the outputs as wire tensors (copied). */
export function outputsToWire(
  signature: TensorSignature,
  value: unknown,
  { name: fn }: { name: string },
): WireTensor[] {
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
      return jsonToWire({ name: spec.name, datatype: "BYTES", shape, data });
    }
    if (spec.datatype === "FP16" && data instanceof Float16Array) {
      data = new Uint16Array(data.buffer, data.byteOffset, data.length);
    }
    if (!(data instanceof info.array!)) {
      throw wrong(fn, spec, `data must be a ${info.array!.name}, got ${(data as object)?.constructor?.name}`);
    }
    const typed = data as Uint8Array;
    if (typed.length !== count) throw wrong(fn, spec, `${typed.length} elements for shape [${shape}]`);
    const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength).slice();
    return { name: spec.name, datatype: spec.datatype, shape, data: bytes.buffer };
  });
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
