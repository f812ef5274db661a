/**
 * The SDK that function modules import as `"isolane"`.
 *
 * It depends on Zod and on ONNX Runtime's pure-JS tensor type only, never on
 * runtime internals, so a module can be inspected without loading native code.
 *
 * @example
 * ```ts
 * import { defineFunction, z } from "isolane";
 *
 * export default defineFunction({
 *   description: "Doubles a number",
 *   input: z.object({ x: z.number() }),
 *   output: z.object({ y: z.number() }),
 *   handler: (input) => ({ y: input.x * 2 }),
 * });
 * ```
 * @module
 */
import { z } from "zod";
import type { InferenceSession } from "onnxruntime-common";
// Types only: the SDK loads nothing of the native layer.
import type { ResizeNormalizeOptions, RgbaImage } from "../native/kernels.ts";

export { z };
export { Tensor } from "onnxruntime-common";
export type { InferenceSession } from "onnxruntime-common";

/**
 * Thrown by a handler when the request itself is at fault (an unreadable
 * image, say): the caller gets 400 `invalid_input` with this message instead
 * of 500.
 */
export class InputError extends Error {
  override name = "InputError";
}

/** Where a function's isolates run: any GPU if usable, the CPU, any GPU (required), or these GPUs. */
export type DeviceOption = "auto" | "cpu" | "cuda" | number[];

/** Tensor datatypes of the KServe v2 / Open Inference Protocol. */
export const tensorDatatypes = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;

/** One named tensor of a signature; `-1` in a shape is any size. */
export interface TensorSpec {
  name: string;
  datatype: (typeof tensorDatatypes)[number];
  shape: number[];
}

/**
 * A tensor signature: the function's input is an object with one nested array
 * per input tensor, its output one nested array per output tensor. Declaring
 * it serves the function over KServe v2 (`/v2/models/<name>/infer`) too.
 */
export interface TensorSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** Permissions a function asks for beyond reading its own folder. Paths are relative to the module's folder. */
export interface FunctionPermissions {
  /** Hosts (`"api.example.com"`, `"127.0.0.1:8080"`) the function may fetch from. */
  net?: string[];
  /** Environment variable names the function may read. */
  env?: string[];
  /** Extra paths the function may read. */
  read?: string[];
  /** Paths the function may write. */
  write?: string[];
}

export type { ResizeNormalizeOptions, RgbaImage };

/** A GPU lane: the device, context and stream an isolate owns, and isolane's kernels on it. `null` on a CPU lane. */
export interface GpuLane {
  /** The CUDA device index as the runtime sees it. */
  readonly device: number;
  /** The device's primary context (hex handle). */
  readonly context: string;
  /** The lane's stream (hex handle): a created non-blocking stream, never a default stream. */
  readonly stream: string;
  /** What the calling thread has current now, and whether it is this lane's primary context. */
  binding(): { current: string; device: number; primary: boolean };
  /** Resize and normalise on the GPU, on the lane's stream. */
  resizeNormalize(image: RgbaImage, options: ResizeNormalizeOptions): Float32Array;
  /** Kernel launches and copies by stream handle, counted by the runtime. */
  streamUse(): Record<string, number>;
  /** Free and total memory of the lane's device. */
  memory(): { freeBytes: number; totalBytes: number };
}

/** What a handler gets besides its input. */
export interface FunctionContext<M extends string = string> {
  /** The function's name as served. */
  readonly name: string;
  /** One loaded ONNX Runtime session per declared model. */
  readonly models: Readonly<Record<M, InferenceSession>>;
  /** Absolute paths of the declared assets, by name; the isolate may read them. */
  readonly assets: Readonly<Record<string, string>>;
  /** Aborts when the request times out or the client goes away. */
  readonly signal: AbortSignal;
  /** The isolate's GPU lane, or `null` on the CPU. */
  readonly gpu: GpuLane | null;
}

/** What `setup` gets: the context without a request. */
export type SetupContext<M extends string = string> = Omit<FunctionContext<M>, "signal">;

/** A function definition, as a module default-exports it. */
export interface FunctionDefinition<
  I extends z.ZodType = z.ZodType,
  O extends z.ZodType = z.ZodType,
  M extends string = string,
  S = unknown,
> {
  /** One line that says what the function does. */
  description: string;
  /** Validates the request body. */
  input: I;
  /** Validates what the handler returns. */
  output: O;
  /** Named ONNX models: a path relative to the module, or `npm:<package>@<version>/<file>`. */
  models?: Record<M, string>;
  /** Other files the function reads (a dictionary, labels), resolved like models; see `ctx.assets`. */
  assets?: Record<string, string>;
  /** Where to run; default `"auto"`. */
  device?: DeviceOption;
  /** On CUDA lanes: ONNX Runtime's CUDA provider (default), TensorRT (fail to load without it), or TensorRT if installed else CUDA. */
  gpuProvider?: "cuda" | "tensorrt" | "tensorrt-or-cuda";
  /** Isolates per device; default 1. */
  instances?: number;
  /** Wall-clock limit of one call in milliseconds; default 30000. */
  timeoutMs?: number;
  /** Largest accepted request body in bytes; default 8 MiB. */
  maxBodyBytes?: number;
  /** Requests that may wait for an isolate before new ones get 429; default 64. */
  queueDepth?: number;
  /** Extra permissions; none by default. */
  permissions?: FunctionPermissions;
  /** A tensor signature, to be served over KServe v2 as well. */
  signature?: TensorSignature;
  /** Runs once per isolate before it serves; its result is passed to every handler call as `state`. */
  setup?: (ctx: SetupContext<M>) => S | Promise<S>;
  /** Handles one call. */
  handler: (
    input: z.output<I>,
    ctx: FunctionContext<M> & { state: Awaited<S> },
  ) => z.input<O> | Promise<z.input<O>>;
}

const MiB = 1024 * 1024;
const hostPattern = /^[A-Za-z0-9.\-\[\]:]+$/;

const tensorSpecSchema = z.object({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/),
  datatype: z.enum(tensorDatatypes),
  shape: z.array(z.number().int().min(-1)),
});

/** The options of a definition, with defaults; the runtime validates every module against it. */
export const functionOptionsSchema = z.object({
  description: z.string().min(1),
  models: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().min(1)).default({}),
  assets: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().min(1)).default({}),
  device: z.union([
    z.enum(["auto", "cpu", "cuda"]),
    z.array(z.number().int().min(0)).min(1),
  ]).default("auto"),
  gpuProvider: z.enum(["cuda", "tensorrt", "tensorrt-or-cuda"]).default("cuda"),
  instances: z.number().int().min(1).max(64).default(1),
  timeoutMs: z.number().int().min(1).max(600_000).default(30_000),
  maxBodyBytes: z.number().int().min(1).max(256 * MiB).default(8 * MiB),
  queueDepth: z.number().int().min(0).max(100_000).default(64),
  signature: z.object({
    inputs: z.array(tensorSpecSchema).min(1),
    outputs: z.array(tensorSpecSchema).min(1),
  }).optional(),
  permissions: z.object({
    net: z.array(z.string().regex(hostPattern)).optional(),
    env: z.array(z.string().min(1)).optional(),
    read: z.array(z.string().min(1)).optional(),
    write: z.array(z.string().min(1)).optional(),
  }).strict().default({}),
});

/** Validated options of a function, defaults applied. */
export type FunctionOptions = z.output<typeof functionOptionsSchema>;

/**
 * Every key a definition may have, in one strict schema: the options above
 * plus the code (`input`, `output`, `handler`, `setup`). An unknown key, such
 * as the typo `timeOutMs` or an option of a later version, is refused rather
 * than silently dropped. Options added to `functionOptionsSchema` are known here
 * without a second list.
 */
export const functionDefinitionSchema = functionOptionsSchema.extend({
  input: z.custom<z.ZodType>((v) => v instanceof z.ZodType, "must be a Zod schema"),
  output: z.custom<z.ZodType>((v) => v instanceof z.ZodType, "must be a Zod schema"),
  handler: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function"),
  setup: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function").optional(),
}).strict();

/**
 * What is wrong with a definition, as one sentence naming each key at fault
 * (and, for unknown keys, every known one); `undefined` when it is valid.
 *
 * @example
 * ```ts
 * definitionProblems({ description: "d", input, output, handler, timeOutMs: 5 });
 * // "Unknown option 'timeOutMs'; known options: description, models, ..., handler, setup"
 * ```
 */
export function definitionProblems(definition: unknown): string | undefined {
  const result = functionDefinitionSchema.safeParse(definition);
  if (result.success) return undefined;
  const known = Object.keys(functionDefinitionSchema.shape).join(", ");
  return result.error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.map((k) => `'${k}'`).join(", ");
      return `Unknown option${issue.keys.length > 1 ? "s" : ""} ${keys}; known options: ${known}`;
    }
    const path = issue.path.map(String).join(".");
    return path ? `'${path}' ${issue.message.replace(/^Invalid input: /, "")}` : issue.message;
  }).join("; ");
}

/**
 * Declares a function module. Validates the definition at import time (see
 * `functionDefinitionSchema`) so that a mistake is reported with the module's
 * name, before any request arrives; throws `TypeError` with the problems.
 */
export function defineFunction<
  I extends z.ZodType,
  O extends z.ZodType,
  M extends string = never,
  S = undefined,
>(definition: FunctionDefinition<I, O, M, S>): FunctionDefinition<I, O, M, S> {
  const problems = definitionProblems(definition);
  if (problems) throw new TypeError(`Invalid function definition: ${problems}`);
  return definition;
}
