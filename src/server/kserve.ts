/**
 * KServe v2 / Open Inference Protocol tensors ⇄ a function's JSON, by the
 * function's tensor signature: each input tensor becomes a nested array under
 * its name; each output array becomes a tensor, its shape read off the nesting.
 * @module
 */
import { z } from "zod";
import { IsolaneError } from "../errors.ts";
import { tensorDatatypes, type TensorSignature, type TensorSpec } from "../sdk.ts";

/** A tensor as the protocol carries it in JSON. */
export interface V2Tensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
  parameters?: Record<string, unknown>;
}

const nested: z.ZodType<unknown[]> = z.lazy(() => z.array(z.union([z.number(), z.boolean(), z.string(), nested])));

/** An inference request, as the protocol defines it. */
export const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  inputs: z.array(z.object({
    name: z.string(),
    shape: z.array(z.number().int().min(0)),
    datatype: z.enum(tensorDatatypes),
    parameters: z.record(z.string(), z.unknown()).optional(),
    data: nested,
  })).min(1),
  outputs: z.array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() })).optional(),
});

/** A parsed inference request. */
export type InferRequest = z.output<typeof inferRequestSchema>;

function flatten(data: unknown[]): unknown[] {
  return data.flat(Infinity as 1) as unknown[];
}

function checkValue(spec: TensorSpec, value: unknown): boolean {
  switch (spec.datatype) {
    case "BOOL":
      return typeof value === "boolean";
    case "BYTES":
      return typeof value === "string";
    case "FP16":
    case "FP32":
    case "FP64":
      return typeof value === "number" && Number.isFinite(value);
    default:
      return typeof value === "number" && Number.isInteger(value);
  }
}

function reshape(flat: unknown[], shape: number[]): unknown {
  if (shape.length === 0) return flat[0];
  if (shape.length === 1) return flat;
  const [outer, ...inner] = shape;
  const size = inner.reduce((a, b) => a * b, 1);
  return Array.from({ length: outer }, (_, i) => reshape(flat.slice(i * size, (i + 1) * size), inner));
}

function fits(spec: TensorSpec, shape: number[]): boolean {
  return spec.shape.length === shape.length && spec.shape.every((d, i) => d === -1 || d === shape[i]);
}

/** Turns request tensors into the function's JSON input; throws `invalid_input` saying what does not fit. */
export function tensorsToInput(signature: TensorSignature, request: InferRequest): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  const given = new Map(request.inputs.map((t) => [t.name, t]));
  for (const name of given.keys()) {
    if (!signature.inputs.some((s) => s.name === name)) {
      throw new IsolaneError(
        "invalid_input",
        `Unexpected input tensor '${name}'; expected ${signature.inputs.map((s) => s.name).join(", ")}`,
      );
    }
  }
  for (const spec of signature.inputs) {
    const tensor = given.get(spec.name);
    if (!tensor) throw new IsolaneError("invalid_input", `Missing input tensor '${spec.name}'`);
    if (tensor.datatype !== spec.datatype) {
      throw new IsolaneError("invalid_input", `Input '${spec.name}' must be ${spec.datatype}, got ${tensor.datatype}`);
    }
    if (!fits(spec, tensor.shape)) {
      throw new IsolaneError(
        "invalid_input",
        `Input '${spec.name}' has shape [${tensor.shape}]; expected [${spec.shape}] (-1: any)`,
      );
    }
    const flat = flatten(tensor.data);
    const size = tensor.shape.reduce((a, b) => a * b, 1);
    if (flat.length !== size) {
      throw new IsolaneError(
        "invalid_input",
        `Input '${spec.name}' has ${flat.length} values; shape [${tensor.shape}] needs ${size}`,
      );
    }
    const bad = flat.findIndex((v) => !checkValue(spec, v));
    if (bad >= 0) throw new IsolaneError("invalid_input", `Input '${spec.name}' value ${bad} is not ${spec.datatype}`);
    input[spec.name] = reshape(flat, tensor.shape);
  }
  return input;
}

function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  let at = value;
  while (Array.isArray(at)) {
    shape.push(at.length);
    at = at[0];
  }
  return shape;
}

/** Turns the function's JSON output into response tensors (all, or those asked for). */
export function outputToTensors(
  signature: TensorSignature,
  output: Record<string, unknown>,
  asked?: string[],
): V2Tensor[] {
  const specs = asked
    ? asked.map((name) => {
      const spec = signature.outputs.find((s) => s.name === name);
      if (!spec) {
        throw new IsolaneError(
          "invalid_input",
          `Unknown output '${name}'; outputs are ${signature.outputs.map((s) => s.name).join(", ")}`,
        );
      }
      return spec;
    })
    : signature.outputs;
  return specs.map((spec) => {
    const value = output[spec.name];
    const shape = shapeOf(value);
    const data = Array.isArray(value) ? flatten(value) : [value];
    if (!fits(spec, shape) || data.some((v) => !checkValue(spec, v))) {
      throw new IsolaneError(
        "invalid_output",
        `Output '${spec.name}' does not match its signature ${spec.datatype}[${spec.shape}]`,
      );
    }
    return { name: spec.name, datatype: spec.datatype, shape, data };
  });
}
