/**
 * The typed messages between the host and an isolate. Both sides import this
 * file and nothing of each other. Request and response bodies cross as
 * `ArrayBuffer`s of JSON (transferred, or copied when small), never as object trees, and a run
 * message carries a list of jobs so that batching needs no new shape.
 * @module
 */
import type { ErrorBody } from "./errors.ts";
import type { FunctionOptions } from "./sdk.ts";
import type { Packed } from "./packed.ts";

/** The execution provider of a CUDA lane's sessions. */
export type GpuProvider = "cuda" | "tensorrt";

/** Where an isolate runs. */
export type LanePlan = { kind: "cpu" } | {
  kind: "cuda";
  device: number;
  provider: GpuProvider;
  /** How a thread waiting for the GPU treats its CPU (`ISOLANE_CUDA_SYNC`; absent: the driver's default). */
  schedule?: CudaSchedule;
};
/** `CU_CTX_SCHED_*` of the device's primary context, by name (native/cuda_driver.ts `CudaSchedule`). */
export type CudaSchedule = "auto" | "spin" | "yield" | "blocking";

/** A bound GPU lane as the isolate reports it. */
export interface LaneInfo {
  device: number;
  /** The device's primary context and the lane's stream (hex handles). */
  context: string;
  stream: string;
  /** `cuStreamGetFlags` of the stream (1: non-blocking). */
  streamFlags: number;
  /** The primary context's scheduling, read back from the driver once the lane is bound. */
  schedule: CudaSchedule;
  /** What the isolate's thread had current right after binding, before any other GPU work. */
  boundBeforeWork: { current: string; device: number; primary: boolean };
}

/** Bytes of pinned staging for each input and output of one model run, by name (`stagingLayout` in tensors.ts). */
export interface StagingLayout {
  inputs: Record<string, number>;
  outputs: Record<string, number>;
}

/**
 * A model's weights in one block of device memory, uploaded by one lane of a
 * device and used by every Worker-hosted lane there (they share the
 * device's primary context, so the address is valid in each).
 */
export interface SharedWeights {
  device: number;
  /** The block's device address, `0x…`. */
  address: string;
  /** The block's size in bytes. */
  bytes: number;
  /** The initializers in the block: element type (onnxruntime-common's name), shape, and where they lie. */
  tensors: { name: string; type: string; dims: number[]; offset: number; bytes: number }[];
}

/**
 * How a CUDA lane gets its models' weights: it uploads them and reports the
 * blocks (`publish`), it computes from the blocks a lane of its device
 * published (`attach`), or it loads its own copy (`off`, with the reason).
 */
export type WeightsPlan =
  | { mode: "publish" }
  | { mode: "attach"; models: Record<string, SharedWeights> }
  | { mode: "off"; reason: string };

/** Whether a model's lanes compute from one copy of its weights per device, as the API reports it. */
export interface WeightsInfo {
  shared: boolean;
  /** Initializers in the shared block, and its bytes. */
  tensors?: number;
  bytes?: number;
  /** Lanes that compute from a shared copy, and the copies (one per device) (the pool's summary). */
  lanes?: number;
  copies?: number;
  /** Why a lane loads its own copy. */
  reason?: string;
}

/** What an isolate learns before it loads anything. */
export interface InitMessage {
  type: "init";
  /** `inspect`: import the module and report its manifest only; `serve`: load everything and serve. */
  mode: "inspect" | "serve";
  name: string;
  /** `file:` URL of the function module. */
  moduleUrl: string;
  /** Absolute paths of the models, by name (serve mode). */
  modelPaths: Record<string, string>;
  /** Absolute paths of the assets, by name (serve mode). */
  assetPaths: Record<string, string>;
  /** Absolute path of the kernels' PTX (CUDA lanes). */
  kernelsPtxPath: string | null;
  lane: LanePlan;
  /** ONNX Runtime intra-op threads for each session. */
  ortThreads: number;
  /**
   * CUDA lanes of a `runModel` function: the pinned staging to map before the ffi permission is dropped, in which
   * the runtime writes the model's inputs and reads its outputs in place. Absent: none.
   */
  staging?: StagingLayout;
  /** CUDA lanes: how the models' weights are loaded (absent: each session loads its own, as on CPU lanes). */
  weights?: WeightsPlan;
}

/**
 * A tensor as it crosses to or from an isolate: its elements little-endian in
 * their own transferable buffer (BOOL one byte each, FP16 the half bits,
 * BYTES each element's bytes after a 4-byte little-endian length, as Triton).
 */
export interface WireTensor {
  name: string;
  /** A KServe v2 datatype (`FP32`, `INT64`, `BYTES`, ...). */
  datatype: string;
  /** Dimensions; zero-size dimensions are valid. */
  shape: number[];
  data: ArrayBuffer;
}

/** One request for the isolate. */
export interface Job {
  id: number;
  /** The HTTP request's id, so that the function's console output can name it. */
  requestId?: string;
  /** The request body: UTF-8 JSON (empty when `tensors` is set). */
  body: ArrayBuffer;
  /** Input tensors already decoded by the host (KServe v2); the result then carries output tensors. */
  tensors?: WireTensor[];
  /** Set when `body` is a raw body (not JSON): its media type, with parameters (a multipart boundary). */
  contentType?: string;
  /**
   * Input tensors left by an HTTP thread in its arena (the `arena` of the {@link LinkMessage} named by `reply`):
   * the isolate copies them out when the run message arrives. Set with `reply`, instead of `tensors`.
   */
  shared?: SharedTensor[];
  /** Answer this job's output tensors on the port of link `link`, as the thread's request `id` (Worker hosts). */
  reply?: { link: number; id: number };
}

/** A tensor whose elements lie in an HTTP thread's arena (a `SharedArrayBuffer`), not in their own buffer. */
export interface SharedTensor {
  name: string;
  datatype: string;
  shape: number[];
  /** Where its elements start in the arena, and their length, in bytes. */
  offset: number;
  bytes: number;
}

/**
 * Host to isolate (Worker hosts only): a direct link to one HTTP thread. Jobs that name it in `reply` carry their
 * inputs in `arena` and are answered on `port` with a {@link LinkReply}; the host gets a small result marked
 * `replied` instead of the tensors.
 */
export interface LinkMessage {
  type: "link";
  link: number;
  port: MessagePort;
  arena: SharedArrayBuffer;
  /**
   * With the host's first link, two rings (`op_ring.ts`) that replace messages for jobs answered on links: `jobs`, on
   * which the host writes runs of them (ringing `isolateBell`), and `done`, on which the isolate writes the ids of a
   * batch answered wholly on links (ringing `mainBell`, the main thread's doorbell).
   */
  rings?: {
    jobs: SharedArrayBuffer;
    done: SharedArrayBuffer;
    isolateBell: SharedArrayBuffer;
    mainBell: SharedArrayBuffer;
  };
}

/** Host to isolate: the link's HTTP thread ended; drop the link and its arena. */
export interface UnlinkMessage {
  type: "unlink";
  link: number;
}

/** Isolate to HTTP thread, on a link's port: answers of jobs of one run, by the thread's request ids. */
export type LinkReply = { id: number; tensors: WireTensor[] }[];

/**
 * Buffers smaller than this (bytes) are copied with their message rather than transferred: a Worker's
 * `postMessage` spends about 4 µs more on a transfer list than on copying a small buffer.
 */
export const transferAtBytes = 16 * 1024;

/** The buffers of a job or result to transfer with its message: those of {@link transferAtBytes} or more. */
export function transferablesOf(item: { body: ArrayBuffer; tensors?: WireTensor[] }): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  if (item.body.byteLength >= transferAtBytes) out.push(item.body);
  for (const t of item.tensors ?? []) if (t.data.byteLength >= transferAtBytes) out.push(t.data);
  return out;
}

/**
 * The bytes an answer carries, as `maxAnswerBytes` counts them: its body and its tensors' data. Counted where the
 * pool refuses a result (`src/pool/function_pool.ts`) and where a Worker isolate decides whether it may answer an
 * HTTP thread straight (`src/isolate/main.ts`), so both sides hold one limit.
 */
export function answerBytes(item: { body: ArrayBuffer; tensors?: readonly WireTensor[] }): number {
  let bytes = item.body.byteLength;
  if (item.tensors) { for (const t of item.tensors) bytes += t.data.byteLength; }
  return bytes;
}

/**
 * The body of every job whose inputs are tensors (in `tensors`, or in an HTTP thread's arena): one empty buffer for
 * all, which a run message of many jobs serializes once. Never transferred ({@link transferablesOf} leaves buffers
 * under {@link transferAtBytes}), so never detached.
 */
export const noBody = new ArrayBuffer(0);

/** Host to isolate: run these jobs (one, or a batch). */
export interface RunMessage {
  type: "run";
  jobs: Job[];
  /** More jobs, packed (`packed.ts`): those whose inputs lie in an HTTP thread's arena. */
  packed?: Packed;
}

/** Host to isolate: the caller of a job gave up (timeout, client gone); abort its signal. */
export interface AbortMessage {
  type: "abort";
  id: number;
}

/** Host to isolate: release the sessions and the lane, then end (planned unload). */
export interface ShutdownMessage {
  type: "shutdown";
}

/**
 * Host to a spare isolate (one started before its function is known, `src/pool/spare.ts`): load ONNX Runtime's
 * addon and open its C API environment now, so that the init that follows finds them ready. Sent only for CPU
 * lanes: a CUDA lane binds its lane before ORT touches the GPU.
 */
export interface WarmMessage {
  type: "warm";
  /** Whether to open the C API environment too (some 17 MB): the function has models, or may have. */
  models: boolean;
}

/** Every message the host sends. */
export type HostMessage =
  | InitMessage
  | RunMessage
  | AbortMessage
  | ShutdownMessage
  | LinkMessage
  | UnlinkMessage
  | WarmMessage;

/** What a module declares, as JSON. */
export interface Manifest {
  options: FunctionOptions;
  /** The model a `runModel` handler runs (tensor functions whose handler is `runModel(...)`). */
  modelHandler?: string;
  /** JSON Schema of the input and output. */
  inputSchema: unknown;
  outputSchema: unknown;
}

/** A model input or output as ONNX Runtime reports it. */
export interface TensorInfo {
  name: string;
  type: string;
  shape: (number | string)[];
}

/** A loaded model. */
export interface ModelInfo {
  name: string;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /** Execution providers the session uses: where ORT placed its nodes (CUDA lanes), most nodes first. */
  providers: string[];
  /**
   * Nodes per provider, from ORT's own placement log (CUDA lanes), of the session that serves: with `shapeSessions`,
   * the most recently used session per input shapes once one exists (they are planned for their shapes, so they may
   * place fewer nodes on the CPU than the model as declared).
   */
  placement?: Record<string, number>;
  /** With `shapeSessions` (CUDA lanes): nodes per provider of each session per input shapes, by shape key. */
  shapes?: Record<string, Record<string, number>>;
  /**
   * Which ONNX Runtime API runs it: `c`, isolane's binding of the C API (on CPU lanes a run stops when its request
   * aborts), or `onnxruntime-node` (CPU models with string, sequence or map inputs or outputs, which the binding
   * does not carry).
   */
  api: "c" | "onnxruntime-node";
  /** CUDA lanes: whether the session computes from the device's one shared copy of the weights. */
  weights?: WeightsInfo;
}

/** Isolate to host, inspect mode: the manifest. */
export interface ManifestMessage {
  type: "manifest";
  manifest: Manifest;
}

/** Isolate to host, serve mode: loaded and serving. */
export interface ReadyMessage {
  type: "ready";
  models: ModelInfo[];
  /** The GPU lane, or `null` on the CPU. */
  lane: LaneInfo | null;
  /** A `publish` lane: the blocks of the models whose weights it uploaded and shares, by model name. */
  weights?: Record<string, SharedWeights>;
}

/** Isolate to host: could not start. */
export interface FailedMessage {
  type: "failed";
  error: ErrorBody;
}

/** The outcome of one job. */
export type JobResult =
  /** `replied`: the output tensors went to the job's HTTP thread on its link (`Job.reply`), not here. */
  | { id: number; ok: true; body: ArrayBuffer; tensors?: WireTensor[]; streamed?: true; replied?: true }
  | { id: number; ok: false; error: ErrorBody };

/** Isolate to host: one item of a job whose handler streams (JSON, validated); its result follows the last item. */
export interface ItemMessage {
  type: "item";
  id: number;
  body: ArrayBuffer;
}

/** Isolate to host: outcomes of jobs, in any order. */
export interface ResultsMessage {
  type: "results";
  results: JobResult[];
  /**
   * Ids of jobs whose output tensors went to their HTTP thread on its link (`Job.reply`): each is answered as a
   * `replied` result. A list of numbers, not a result object each, so that the main thread reads a batch's answers
   * as one small array.
   */
  replied?: number[];
}

/** Isolate to host: the isolate is about to end (user code called `Deno.exit` or `self.close`). */
export interface ExitingMessage {
  type: "exiting";
  reason: string;
}

/** Isolate to host: a planned shutdown released every session and the lane; the isolate ends next. */
export interface ReleasedMessage {
  type: "released";
  /** Sessions released. */
  sessions: number;
}

/** Isolate to host: ORT stopped a model run because its request aborted; the isolate answered the job and serves on. */
export interface RunTerminatedMessage {
  type: "run-terminated";
  model: string;
  /** The jobs the run served (one, or a batch's). */
  jobs: number[];
  requests: string[];
  /** How long the run ran before ORT stopped, in milliseconds. */
  ms: number;
}

/**
 * Isolate to host, serve mode: the step of its start it begins (after the module's import): loading its models, or
 * running its `setup`. A start that runs out of time names the step it was in.
 */
export interface PhaseMessage {
  type: "phase";
  phase: "models" | "setup";
}

/** Isolate to host: a model's placement changed (a session for new input shapes was created). */
export interface PlacementMessage {
  type: "placement";
  model: string;
  placement?: Record<string, number>;
  shapes?: Record<string, Record<string, number>>;
}

/** Isolate to host: a line the function wrote with `console`. */
export interface LogMessage {
  type: "log";
  level: "debug" | "info" | "warn" | "error";
  /** At most {@link maxLogText} characters and the note {@link clipLogText} adds. */
  text: string;
  requestId?: string;
}

/**
 * The most characters of one function log line that cross to the host and are logged. A 50 MB `console.log` held the
 * runtime's main thread 1–1.6 s (decoding and writing it; 28 s behind a slow reader of the runtime's stdout), and every
 * other function's requests with it.
 */
export const maxLogText = 16 * 1024;

/**
 * `text` cut to {@link maxLogText} characters (UTF-16 units; one fewer where the cut would split a surrogate pair,
 * which would log a lone surrogate), saying how many were left out; a text this has cut already (or one at most 64
 * characters longer) is returned as it is.
 */
export function clipLogText(text: string): string {
  if (text.length <= maxLogText + 64) return text;
  const last = text.charCodeAt(maxLogText - 1);
  const cut = last >= 0xd800 && last <= 0xdbff ? maxLogText - 1 : maxLogText;
  return `${text.slice(0, cut)}… (${text.length - cut} more characters left out)`;
}

/** Every message an isolate sends. */
export type IsolateMessage =
  | ManifestMessage
  | ReadyMessage
  | FailedMessage
  | ResultsMessage
  | ExitingMessage
  | ReleasedMessage
  | ItemMessage
  | RunTerminatedMessage
  | PlacementMessage
  | PhaseMessage
  | LogMessage;
