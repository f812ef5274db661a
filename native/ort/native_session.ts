/**
 * A session over the C API with the shape of onnxruntime-node's
 * `InferenceSession`: `run(feeds)` takes and returns onnxruntime-common
 * `Tensor`s, and `inputNames`/`outputNames`/`inputMetadata`/`outputMetadata`
 * describe the model. On GPU providers it runs through IO binding, on the
 * caller's stream (`user_compute_stream`), with inputs staged in pinned host
 * memory when the caller provides it, and it refuses models whose compute
 * nodes ORT would place on the CPU.
 * @module
 */
import { Tensor } from "onnxruntime-common";
import type { InferenceSession } from "onnxruntime-common";
import { join } from "node:path";
import { OrtError } from "./error.ts";
import { ortLibraryInNodeModules } from "./ffi.ts";
import {
  type CudaProviderInit,
  type ElementType,
  elementTypes,
  type IoBinding,
  type MemoryInfo,
  type OrtEnv,
  type RunOptions,
  type Session,
  type SessionOptions,
  type SessionOptionsInit,
  type TensorRtProviderInit,
  type Value,
  type ValueMetadata,
} from "./ort.ts";
import { cpuComputeNodes, type Placement, probePlacement } from "./placement.ts";
import type { PinnedArena } from "./pinned_arena.ts";
import { DeviceTensor, DeviceTensorError, deviceTensorMemory, refuseDeviceTensors } from "./device_tensor.ts";

/** The path of onnxruntime-node's `libonnxruntime.so.1` under a `node_modules` folder. */
export function ortLibraryPath(nodeModules: string): string {
  return join(nodeModules, ortLibraryInNodeModules);
}

/** Page-locked host memory the caller owns (a lane's `cuMemHostAlloc`). */
export interface PinnedHostMemory {
  /** Allocates `bytes` of pinned host memory and returns its address. */
  alloc(bytes: number): bigint;
  /** Frees memory from {@link alloc}. */
  free(address: bigint): void;
}

/**
 * Device memory the caller owns, with copies on the caller's stream (a
 * lane's): CUDA graphs replay into fixed device addresses, so their inputs
 * and outputs live there.
 */
export interface DeviceMemory {
  /** Allocates `bytes` of device memory and returns its address. */
  alloc(bytes: number): bigint;
  /** Frees memory from {@link alloc}. */
  free(address: bigint): void;
  /** Copies host bytes to `dst`, ordered before the work that follows on the stream. */
  upload(dst: bigint, src: ArrayBufferView): void;
  /** Copies `src` to host bytes once the stream's work before it is done, and waits for it. */
  download(dst: ArrayBufferView, src: bigint): void;
  /** Queues a copy of `bytes` from pinned host memory at `src` to `dst` on the stream (`staging: "lane"`). */
  uploadFrom?(dst: bigint, src: bigint, bytes: number): void;
  /** Queues a copy of `bytes` from `src` to pinned host memory at `dst` on the stream (`staging: "lane"`). */
  downloadTo?(dst: bigint, src: bigint, bytes: number): void;
  /** Waits until the stream's work is done (`staging: "lane"`). */
  synchronize?(): void;
  /** Queues a copy of `bytes` from device memory at `src` to `dst` on the stream (device tensors as feeds). */
  copyOnDevice?(dst: bigint, src: bigint, bytes: number): void;
}

/** An input of {@link NativeSession.runStaged}: its name, element type and shape; its bytes come from `fill`. */
export interface StagedInput {
  name: string;
  /** onnxruntime-common's name of the element type (`float32`, `int64`, `float16`, ...). */
  type: string;
  dims: readonly number[];
}

/** An output as {@link NativeSession.runStaged} hands it to `consume`. */
export interface StagedOutput {
  type: ElementType;
  dims: readonly number[];
  /**
   * The output's bytes (little-endian elements). With an arena, a view of the session's pinned staging: valid only
   * during `consume`, overwritten by the session's next run.
   */
  bytes: Uint8Array;
}

/** What {@link NativeSession.runStaged} runs: inputs written by `fill`, outputs read by `consume`. */
export interface StagedRun<T> {
  inputs: readonly StagedInput[];
  /** Writes input `name`'s bytes into `into`, which has exactly the bytes its type and dims need. */
  fill(name: string, into: Uint8Array): void;
  /** Reads every output of the model; what it returns is what the run resolves to. */
  consume(outputs: Record<string, StagedOutput>): T;
}

/** {@link DeviceMemory} with the members that `staging: "lane"` needs. */
type LaneDeviceMemory = Required<DeviceMemory>;

function laneCapable(device: DeviceMemory | undefined): device is LaneDeviceMemory {
  return device?.uploadFrom !== undefined && device.downloadTo !== undefined && device.synchronize !== undefined;
}

/** Options of {@link NativeSession.create}. */
export interface NativeSessionOptions {
  /** Execution provider: `cpu`, or a GPU provider (CPU stays the fallback for shape ops). */
  provider: "cpu" | "cuda" | "tensorrt";
  /** CUDA device index (GPU providers). */
  deviceId?: number;
  /** The stream ORT's kernels run on (`user_compute_stream`): the lane's stream. */
  stream?: bigint;
  intraOpThreads?: number;
  interOpThreads?: number;
  graphOptimization?: SessionOptionsInit["graphOptimization"];
  /** CUDA EP settings beyond device and stream (`gpu_mem_limit`, `use_tf32`, `enable_cuda_graph`, ...). */
  cuda?: Omit<CudaProviderInit, "deviceId" | "userComputeStream">;
  /** TensorRT EP settings beyond device and stream. */
  tensorRt?: Omit<TensorRtProviderInit, "deviceId" | "userComputeStream">;
  /** Run through IO binding; default: on for GPU providers and for `staging: "lane"`. */
  ioBinding?: boolean;
  /** Stage inputs and outputs in pinned host memory (GPU providers with IO binding). */
  pinned?: PinnedHostMemory;
  /** Device memory for CUDA graphs' fixed inputs and outputs (required with `cuda.enableCudaGraph`). */
  device?: DeviceMemory;
  /** Probe where ORT places the nodes and refuse compute nodes on the CPU; default: on for GPU providers. */
  checkPlacement?: boolean;
  /** `gpu_graph_id` run option (one CUDA graph per id, when `cuda.enableCudaGraph`). */
  gpuGraphId?: number;
  /**
   * `cuda.enableCudaGraph` with `staging: "lane"` for a model whose declared output shapes are not fixed: the most
   * CUDA graphs captured, one per set of input shapes (each its own `gpu_graph_id`, device inputs and outputs of
   * the shapes its first run gave); runs of further shapes go without a graph (`gpu_graph_id` -1). Default 16.
   */
  maxGraphs?: number;
  /** Initializers shared with other sessions (`AddInitializer`). */
  initializers?: Record<string, Value>;
  /** Profile runs into a Chrome trace with this prefix. */
  profilingPrefix?: string;
  /** Session config entries. */
  config?: Record<string, string>;
  /** Values of the model's symbolic dimensions, by name (see {@link SessionOptionsInit.freeDimensions}). */
  freeDimensions?: Record<string, number>;
  /**
   * Run on Deno's blocking-thread pool (`nonblocking` FFI) so the isolate's
   * event loop stays free during a run. On CUDA that thread has no lane
   * context of its own: whether ORT keeps the lane's guarantees there is to
   * be measured on the GPU host (issue 15); off by default. Without IO
   * binding, each such run has run options of its own (so `signal` can stop
   * it) and copies its inputs into memory ORT allocates (so nothing the run
   * reads is freed if the isolate ends while ORT works).
   */
  nonblocking?: boolean;
  /**
   * Nonblocking sessions without IO binding: a run whose inputs are no larger, dimension by dimension, than those of
   * one of the session's last {@link inlineWindow} runs that itself took under this many milliseconds runs on the
   * calling thread instead, over the caller's memory: the hop to Deno's blocking-thread pool and back costs more than
   * such a run computes (`bench/cpu_run_hop.ts`). One slow run in the window (a thread the kernel preempted, or a run
   * that waited for the pool's thread on a loaded machine) sends to the pool only the runs that no short run bounds.
   * Such a run cannot be stopped by its signal once started, so set this only for a model whose run time follows its
   * input shapes (no control flow, no operator whose work its input values decide). 0 or absent: every run goes to the
   * pool.
   */
  inlineRunsUnderMs?: number;
  /**
   * How a bound run moves its inputs and outputs.
   *
   * - `"ort"` (default): each run wraps the input in pinned staging as a new
   *   value and binds it, ORT copies it to the device and the outputs to
   *   pinned memory it allocates per run, and synchronises the stream at the
   *   end of `Run`; a CUDA graph's inputs and outputs are copied from and to
   *   JS memory (pageable) by `device`.
   * - `"lane"`: inputs and outputs are bound once per input shape to device
   *   buffers; each run copies the input into pinned staging, queues the
   *   copy to the device, the run and the copies back into pinned staging on
   *   the stream, and waits once (`disable_synchronize_execution_providers`:
   *   ORT does not wait at the end of `Run`). Needs `pinned` and a `device`
   *   with `uploadFrom`, `downloadTo` and `synchronize`. A model whose output
   *   shapes change with the same input shapes is rebound every run.
   */
  staging?: "ort" | "lane";
  /**
   * Pinned staging mapped as JS memory (`staging: "lane"`): {@link NativeSession.runStaged} has its callbacks write
   * the inputs and read the outputs there, in place, while they fit; `run` does not use it. The arena must outlive
   * the session.
   */
  arena?: PinnedArena;
}

/** Options of one {@link NativeSession.run}. */
export interface NativeRunOptions {
  /**
   * Stops the run: a signal that is aborted already fails the run before it
   * starts; one that aborts while a nonblocking run without IO binding is in
   * flight sets ORT's terminate flag on that run's own `OrtRunOptions`
   * (`RunOptionsSetTerminate`), and the run fails with ORT's error as soon as
   * ORT reads the flag (before its next node). Other runs block the thread,
   * so the signal cannot fire during them.
   */
  signal?: AbortSignal;
  /** Outputs to compute, in this order; all by default. */
  outputs?: readonly string[];
}

/** The elements of every input of a run, together. */
/** A run's input shapes, by input name, as {@link NativeSession}'s window keeps them. */
type FeedShapes = [name: string, dims: readonly number[]][];

function feedShapes(feeds: Record<string, Tensor>): FeedShapes {
  const shapes: FeedShapes = [];
  for (const name in feeds) shapes.push([name, feeds[name].dims.slice()]);
  return shapes;
}

/**
 * Whether every input of `shapes` has a dimension no larger than `seen`'s, dimension by dimension (the same inputs,
 * the same ranks). The same count of elements is not enough: `[k, 1]·[1, k]` holds as many as `[1, k]·[k, 1]`.
 */
function shapesWithin(shapes: FeedShapes, seen: FeedShapes): boolean {
  if (shapes.length !== seen.length) return false;
  for (const [name, dims] of shapes) {
    const bound = seen.find((s) => s[0] === name)?.[1];
    if (!bound || bound.length !== dims.length) return false;
    for (let d = 0; d < dims.length; d++) if (dims[d] > bound[d]) return false;
  }
  return true;
}

/** The error a run rejects with when its signal was aborted before it started. */
export class RunAbortedError extends Error {
  override name = "RunAbortedError";
  /** Creates the error; `reason` is the signal's. */
  constructor(readonly reason: unknown) {
    super("The run was not started: its signal is aborted");
  }
}

/**
 * Whether `error` is ORT's answer to a run whose terminate flag was set
 * (`ORT_FAIL`, "Exiting due to terminate flag being set to true.").
 */
export function isTerminatedRun(error: unknown): error is OrtError {
  return error instanceof OrtError && error.codeName === "ORT_FAIL" && /terminate flag/.test(error.ortMessage);
}

const providerNames = {
  cpu: "CPUExecutionProvider",
  cuda: "CUDAExecutionProvider",
  tensorrt: "TensorrtExecutionProvider",
} as const;

interface PinnedBuffer {
  address: bigint;
  bytes: number;
}

/** An output bound once to device memory at a fixed address (CUDA graphs replay into it). */
interface FixedOutput extends PinnedBuffer {
  name: string;
  type: ElementType;
  dims: number[];
  value: Value;
}

function metadata(m: ValueMetadata): InferenceSession.ValueMetadata {
  if (!m.isTensor || m.type === "non-tensor" || m.type.startsWith("onnx:")) return { name: m.name, isTensor: false };
  return { name: m.name, isTensor: true, type: m.type as ElementType, shape: m.shape };
}

/** An input of `staging: "lane"`: its device buffer and the value over it that is bound. */
interface LaneInput extends FixedOutput {
  /** Bytes of the device buffer (at least `bytes`). */
  capacity: number;
}

/** The parts of a created session, handed to the constructor. */
interface Parts {
  env: OrtEnv;
  session: Session;
  runOptions: RunOptions;
  binding: IoBinding | null;
  memory: { input: MemoryInfo | null; output: MemoryInfo | null; lane: MemoryInfo | null };
  pinned: PinnedHostMemory | undefined;
  placement: Placement | null;
  fixed: FixedOutput[];
  /** CUDA graphs learned per set of input shapes: the most kept (0: none). */
  maxGraphs: number;
  nonblocking: boolean;
  inlineRunsUnderMs: number;
  device: DeviceMemory | undefined;
  arena: PinnedArena | undefined;
  /** The stream ORT's kernels run on (a lane's), which device tensors fed to a run must have been made on. */
  stream: bigint | undefined;
}

/**
 * A CUDA graph of one set of input shapes (`staging: "lane"`, outputs not fixed by the model): its `gpu_graph_id`,
 * and the device buffers it reads and writes, which must not move once ORT has captured it.
 */
interface ShapeGraph {
  /** Its `gpu_graph_id`; -1 once it can have none (see `#grown`). */
  id: number;
  inputs: FixedOutput[];
  /** Learned from the first run, a regular one (`gpu_graph_id` -1): ORT captures the graph on the next. */
  outputs: FixedOutput[] | null;
}

/** An input of a lane-staged run: what it is, and how its bytes reach pinned memory. */
interface LaneFeed {
  name: string;
  type: ElementType;
  dims: readonly number[];
  bytes: number;
  /** Puts the input's bytes in pinned memory; their address. */
  stage(): bigint;
  /** A device tensor's address: the input is copied from there on the device instead ({@link DeviceTensor}). */
  device?: bigint;
}

/** How ORT refuses a pre-allocated output of the wrong shape (1.29: "... pre-allocated output OrtValues ..."; older: "re-use buffer"). */
const shapeMismatch = /pre-allocated output|re-use buffer|shape mismatch/i;

/** How many recent runs decide whether the next one runs inline ({@link NativeSessionOptions.inlineRunsUnderMs}). */
export const inlineWindow = 8;

/** An ORT session through the C API, shaped like onnxruntime-node's `InferenceSession`. */
export class NativeSession {
  /** Where ORT placed the nodes, per provider; `null` when not probed. */
  readonly placement: Placement | null;
  readonly inputMetadata: readonly InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly InferenceSession.ValueMetadata[];
  readonly #env: OrtEnv;
  readonly #session: Session;
  readonly #runOptions: RunOptions;
  readonly #binding: IoBinding | null;
  readonly #inputMemory: MemoryInfo | null;
  readonly #outputMemory: MemoryInfo | null;
  readonly #pinned: PinnedHostMemory | undefined;
  readonly #staging = new Map<string, PinnedBuffer>();
  readonly #fixed: FixedOutput[];
  readonly #maxGraphs: number;
  /** CUDA graphs by their input shapes (see {@link ShapeGraph}). */
  readonly #graphs = new Map<string, ShapeGraph>();
  /** The input shapes the binding is set up for. */
  #graphKey = "";
  /** Run options by `gpu_graph_id` (-1: a regular run), each set once: ORT warns when a config entry changes. */
  readonly #graphOptions = new Map<number, RunOptions>();
  /** Graph ids handed out (ORT keeps every captured graph until the session is released). */
  #graphIds = 0;
  /** The largest size of each input's every dimension that a regular run has seen. */
  readonly #regularDims = new Map<string, number[]>();
  readonly #device: DeviceMemory | undefined;
  /** CUDA graphs: each input at a fixed device address, bound once. */
  readonly #graphInputs = new Map<string, FixedOutput>();
  readonly #nonblocking: boolean;
  /** See {@link NativeSessionOptions.inlineRunsUnderMs} (0: never). */
  readonly #inlineUnderMs: number;
  /** The last {@link inlineWindow} runs' durations in ms and input shapes, oldest overwritten first. */
  readonly #recentMs: number[] = [];
  readonly #recentShapes: FeedShapes[] = [];
  #recentAt = 0;
  #inlineRuns = 0;
  /** `staging: "lane"`: the memory of the device buffers (`null`: staging by ORT). */
  readonly #laneMemory: MemoryInfo | null;
  readonly #laneInputs = new Map<string, LaneInput>();
  /** `staging: "lane"`: outputs bound to device buffers of the shapes the last input shapes gave (`null`: to learn). */
  #laneOutputs: FixedOutput[] | null = null;
  /** `staging: "lane"`: the input names, types and shapes the bindings are for. */
  #laneKey = "";
  /** `staging: "lane"`: output shapes changed under the same input shapes once, so outputs are rebound every run. */
  #dynamicOutputs = false;
  /** `staging: "lane"`: pinned staging of each output, by name. */
  readonly #outputStaging = new Map<string, PinnedBuffer>();
  /** Nonblocking runs in flight (their own run options), terminated and awaited by {@link release}. */
  readonly #inflight = new Map<Promise<unknown>, RunOptions>();
  /** `runStaged`: the arena, with a slot per input and output name. */
  readonly #arena: PinnedArena | undefined;
  readonly #stream: bigint | undefined;
  #released = false;

  private constructor(parts: Parts) {
    this.#fixed = parts.fixed;
    this.#maxGraphs = parts.maxGraphs;
    this.#device = parts.device;
    this.#nonblocking = parts.nonblocking;
    this.#inlineUnderMs = parts.inlineRunsUnderMs;
    this.#env = parts.env;
    this.#session = parts.session;
    this.#runOptions = parts.runOptions;
    this.#binding = parts.binding;
    this.#inputMemory = parts.memory.input;
    this.#outputMemory = parts.memory.output;
    this.#laneMemory = parts.memory.lane;
    this.#pinned = parts.pinned;
    this.#arena = parts.arena;
    this.#stream = parts.stream;
    this.placement = parts.placement;
    this.inputMetadata = parts.session.inputs.map(metadata);
    this.outputMetadata = parts.session.outputs.map(metadata);
  }

  /**
   * Loads the model at `path` (ORT reads it and its external data from its folder).
   * @throws {OrtError} when ORT refuses the model or a provider cannot load,
   * and `ORT_EP_FAIL` when a GPU provider was asked for and a compute node
   * (MatMul, Gemm, Conv, attention, ...) would run on the CPU;
   * `ORT_INVALID_ARGUMENT` for `staging: "lane"` without what it needs.
   */
  static create(env: OrtEnv, path: string, options: NativeSessionOptions): NativeSession {
    const gpu = options.provider !== "cpu";
    const device = options.deviceId ?? 0;
    const lane = options.staging === "lane";
    const bound = options.ioBinding ?? (gpu || lane);
    if (lane && (!bound || !options.pinned || !laneCapable(options.device))) {
      throw new OrtError(
        "NativeSession.create",
        2,
        `${path}: staging "lane" needs IO binding, pinned memory and device memory with uploadFrom, downloadTo and synchronize`,
      );
    }
    const makeOptions = (): SessionOptions => {
      const so = env.sessionOptions({
        intraOpThreads: options.intraOpThreads,
        interOpThreads: options.interOpThreads,
        graphOptimization: options.graphOptimization,
        profilingPrefix: options.profilingPrefix,
        config: options.config,
        freeDimensions: options.freeDimensions,
      });
      try {
        if (options.provider === "tensorrt") {
          using trt = env.tensorRtProviderOptions({
            ...options.tensorRt,
            deviceId: device,
            userComputeStream: options.stream,
          });
          so.appendTensorRt(trt);
        }
        if (gpu) {
          using cuda = env.cudaProviderOptions({
            ...options.cuda,
            deviceId: device,
            userComputeStream: options.stream,
          });
          so.appendCuda(cuda);
        }
        for (const [name, value] of Object.entries(options.initializers ?? {})) so.addInitializer(name, value);
        return so;
      } catch (error) {
        so.close();
        throw error;
      }
    };

    let placement: Placement | null = null;
    if (options.checkPlacement ?? gpu) {
      placement = probePlacement(env, path, makeOptions);
      if (gpu) refuseCpuFallback(placement, providerNames[options.provider], path);
    }

    const created: Disposable[] = [];
    try {
      const so = makeOptions();
      created.push(so);
      const session = env.session(path, so);
      so.close();
      created.pop();
      created.push(session);
      const runOptions = env.runOptions();
      created.push(runOptions);
      if (options.gpuGraphId !== undefined) runOptions.config("gpu_graph_id", String(options.gpuGraphId));
      // One wait per run, the lane's, after the copies back: ORT's own wait at the end of Run would be a second.
      if (lane) runOptions.config("disable_synchronize_execution_providers", "1");
      let binding: IoBinding | null = null;
      let fixed: FixedOutput[] = [];
      let maxGraphs = 0;
      const memory = {
        input: null as MemoryInfo | null,
        output: null as MemoryInfo | null,
        lane: null as MemoryInfo | null,
      };
      if (bound) {
        binding = session.ioBinding();
        created.push(binding);
        const staged = gpu && options.pinned !== undefined;
        const graph = options.cuda?.enableCudaGraph ?? false;
        memory.input = staged ? env.memoryInfo("CudaPinned", device) : null;
        // CUDA graphs replay into fixed device addresses: their outputs are device buffers of ours.
        memory.output = env.memoryInfo(graph ? "Cuda" : staged ? "CudaPinned" : "Cpu", device);
        memory.lane = lane ? env.memoryInfo(gpu ? "Cuda" : "Cpu", device) : null;
        for (const m of [memory.input, memory.output, memory.lane]) if (m) created.push(m);
        if (graph && lane && !fixedOutputShapes(session)) {
          // Outputs whose shapes follow the inputs': a graph per set of input shapes, learned on its first run.
          maxGraphs = options.maxGraphs ?? 16;
        } else if (graph) {
          fixed = bindFixedOutputs(env, session, binding, memory.output, options.device, path);
        } else if (!lane) {
          for (const name of session.outputNames) binding.bindOutputToDevice(name, memory.output);
        }
      }
      return new NativeSession({
        env,
        session,
        runOptions,
        binding,
        memory,
        pinned: options.pinned,
        placement,
        fixed,
        maxGraphs,
        nonblocking: options.nonblocking ?? false,
        inlineRunsUnderMs: options.inlineRunsUnderMs ?? 0,
        device: options.device,
        arena: lane ? options.arena : undefined,
        stream: options.stream,
      });
    } catch (error) {
      for (const handle of created.reverse()) handle[Symbol.dispose]();
      throw error;
    }
  }

  /** Input names in model order. */
  get inputNames(): readonly string[] {
    return this.#session.inputNames;
  }

  /** Output names in model order. */
  get outputNames(): readonly string[] {
    return this.#session.outputNames;
  }

  /** The underlying C-API session (for profiling and tests). */
  get session(): Session {
    return this.#session;
  }

  /**
   * How runs use CUDA graphs: `"fixed"` (one graph, the model's outputs have fixed shapes), `"shapes"` (a graph per
   * set of input shapes, up to {@link NativeSessionOptions.maxGraphs}), or `null` (none).
   */
  get cudaGraphs(): "fixed" | "shapes" | null {
    return this.#fixed.length > 0 ? "fixed" : this.#maxGraphs > 0 ? "shapes" : null;
  }

  /** The CUDA graphs captured or being learned, one per set of input shapes (`cudaGraphs` `"shapes"`). */
  get graphCount(): number {
    return this.#graphs.size;
  }

  /** How bound runs move their data: `"lane"` or `"ort"` (see {@link NativeSessionOptions.staging}). */
  get staging(): "ort" | "lane" {
    return this.#laneMemory ? "lane" : "ort";
  }

  /**
   * Runs the model on `feeds` and returns the outputs (all, or `options.outputs`) as `Tensor`s whose data is a copy
   * in JS memory.
   * @throws {OrtError} for unknown input or output names, wrong shapes or types, or a run stopped through
   * `options.signal` ({@link isTerminatedRun}); {@link RunAbortedError} when the signal was aborted before the run;
   * {@link DeviceTensorError} naming the input for a {@link DeviceTensor} this session cannot read (disposed, another
   * lane's, or any on a session that reads host memory).
   */
  run(
    feeds: Readonly<Record<string, Tensor | DeviceTensor>>,
    options: NativeRunOptions = {},
  ): Promise<Record<string, Tensor>> {
    if (options.signal?.aborted) return Promise.reject(new RunAbortedError(options.signal.reason));
    if (!this.#laneMemory || !this.#device?.copyOnDevice) {
      try {
        refuseDeviceTensors(feeds);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // Past the check, a device tensor is the lane path's to read (#laneFeeds), among the `Tensor`s.
    const tensors = feeds as Record<string, Tensor>;
    if (!this.#binding || !this.#nonblocking) return this.#run(tensors, options);
    // One binding and one set of staging buffers: bound runs take turns.
    const turn = this.#turn.then(() => this.#run(tensors, options));
    this.#turn = turn.catch(() => {});
    return turn;
  }

  #turn: Promise<unknown> = Promise.resolve();

  /**
   * Runs the model with inputs that `request.fill` writes and outputs that
   * `request.consume` reads, and resolves to what `consume` returns. With
   * `staging: "lane"` and an `arena`, both happen in the session's pinned
   * staging itself while the tensors fit (no copy between JS memory and
   * pinned memory); otherwise in JS arrays, as `run` would. Nothing happens
   * on the session between `fill` and `consume`, so the views they get are
   * the run's alone; they must not be kept past the callback.
   * @throws {OrtError} as {@link run}, and for an element type the binding does not read.
   */
  runStaged<T>(request: StagedRun<T>): Promise<T> {
    if (!this.#binding || !this.#nonblocking) return this.#runStaged(request);
    const turn = this.#turn.then(() => this.#runStaged(request));
    this.#turn = turn.catch(() => {});
    return turn;
  }

  async #runStaged<T>(request: StagedRun<T>): Promise<T> {
    if (this.#released) throw new Error("NativeSession is released");
    if (!this.#laneMemory) {
      const feeds: Record<string, Tensor> = {};
      for (const input of request.inputs) {
        const type = checkedType(input.name, input.type);
        const data = new elementTypes[type].array(elementCount(input.dims));
        request.fill(input.name, new Uint8Array(data.buffer));
        feeds[input.name] = new Tensor(type, data as Float32Array, [...input.dims]);
      }
      return request.consume(stagedOf(await this.#run(feeds, {})));
    }
    const feeds = request.inputs.map((input) => this.#stagedFeed(input, request));
    return this.#fixed.length > 0
      ? await this.#runLaneGraph(feeds, true, request.consume)
      : await this.#runLaneAny(feeds, true, request.consume);
  }

  /** An input of `runStaged`: filled in its arena region when it fits, else in a JS array copied to staging. */
  #stagedFeed(input: StagedInput, request: StagedRun<unknown>): LaneFeed {
    const type = checkedType(input.name, input.type);
    const bytes = elementCount(input.dims) * elementTypes[type].bytes;
    return {
      name: input.name,
      type,
      dims: input.dims,
      bytes,
      stage: () => {
        const offset = this.#arenaSlot("input", input.name, bytes);
        if (offset !== null) {
          request.fill(input.name, this.#arena!.bytes(offset, bytes));
          return this.#arena!.address + BigInt(offset);
        }
        const data = new Uint8Array(bytes);
        request.fill(input.name, data);
        return this.#stageHost(input.name, data);
      },
    };
  }

  /** Inputs of `run` for lane staging: their data copied into pinned staging. */
  #laneFeeds(feeds: Record<string, Tensor>): LaneFeed[] {
    return Object.entries(feeds).map(([name, tensor]) => {
      const type = checkedType(name, tensor.type);
      if ((tensor as unknown) instanceof DeviceTensor) {
        const { address, bytes } = deviceTensorMemory(tensor as unknown as DeviceTensor, this.#stream, name);
        const stage = (): bigint => {
          throw new DeviceTensorError(`Input '${name}': a device tensor is copied on the device, never staged`);
        };
        return { name, type, dims: tensor.dims, bytes, device: address, stage };
      }
      const data = tensor.data as ArrayBufferView;
      return { name, type, dims: tensor.dims, bytes: data.byteLength, stage: () => this.#stageHost(name, data) };
    });
  }

  /** The offset of the arena's slot for input or output `name`; `null` without an arena, a slot, or room. */
  #arenaSlot(kind: "input" | "output", name: string, bytes: number): number | null {
    const slot = this.#arena?.slot(kind, name);
    return slot && slot.bytes >= bytes ? slot.offset : null;
  }

  async #run(feeds: Record<string, Tensor>, options: NativeRunOptions): Promise<Record<string, Tensor>> {
    if (this.#released) throw new Error("NativeSession is released");
    if (this.#laneMemory) {
      const lane = this.#laneFeeds(feeds);
      return this.#fixed.length > 0
        ? await this.#runLaneGraph(lane, false, tensorsOf)
        : await this.#runLaneAny(lane, false, tensorsOf);
    }
    if (this.#fixed.length > 0) {
      for (const [name, tensor] of Object.entries(feeds)) this.#graphInput(name, tensor);
      return await this.#runGraph(Object.keys(feeds));
    }
    if (this.#nonblocking && !this.#binding) {
      const shapes = feedShapes(feeds);
      const inline = this.#inlineFits(shapes);
      const started = performance.now();
      const outputs = inline ? await this.#runHere(feeds, options) : await this.#runDetached(feeds, options);
      this.#recentMs[this.#recentAt] = performance.now() - started;
      this.#recentShapes[this.#recentAt] = shapes;
      this.#recentAt = (this.#recentAt + 1) % inlineWindow;
      if (inline) this.#inlineRuns++;
      return outputs;
    }
    return await this.#runHere(feeds, options);
  }

  /** Runs of a nonblocking session that ran on the calling thread ({@link NativeSessionOptions.inlineRunsUnderMs}). */
  get inlineRuns(): number {
    return this.#inlineRuns;
  }

  /**
   * Whether a run of inputs shaped `shapes` runs inline: the window is full, and one of the last {@link inlineWindow}
   * runs had inputs at least as large in every dimension and took under the bound (see
   * {@link NativeSessionOptions.inlineRunsUnderMs}). Not all of them: on a loaded machine one run in 8 was slowed
   * (preempted, or waiting for the pool's thread) often enough that a third of `mlp`'s batch runs went to the pool,
   * where each cost the isolate's thread several times an inline run (docs/cpu-mlp.md).
   */
  #inlineFits(shapes: FeedShapes): boolean {
    if (this.#inlineUnderMs <= 0 || this.#recentMs.length < inlineWindow) return false;
    for (let i = 0; i < inlineWindow; i++) {
      if (this.#recentMs[i] < this.#inlineUnderMs && shapesWithin(shapes, this.#recentShapes[i])) return true;
    }
    return false;
  }

  /** A run on the calling thread: the inputs wrapped in place, the session's run options (blocking, or inline). */
  async #runHere(feeds: Record<string, Tensor>, options: NativeRunOptions): Promise<Record<string, Tensor>> {
    const inputs: Value[] = [];
    try {
      for (const [name, tensor] of Object.entries(feeds)) inputs.push(this.#value(name, tensor));
      if (this.#binding) return await this.#runBound(Object.keys(feeds), inputs);
      const byName = Object.fromEntries(Object.keys(feeds).map((name, i) => [name, inputs[i]]));
      const outputs = this.#session.run(byName, {
        runOptions: this.#runOptions,
        ...(options.outputs ? { outputs: [...options.outputs] } : {}),
      });
      return valuesToTensors(outputs);
    } finally {
      for (const value of inputs) value.close();
    }
  }

  /**
   * A nonblocking run with run options of its own, over copies of the inputs in ORT's memory: the signal sets
   * this run's terminate flag, and nothing the run reads or writes lives on the V8 heap.
   */
  async #runDetached(feeds: Record<string, Tensor>, options: NativeRunOptions): Promise<Record<string, Tensor>> {
    const inputs: Value[] = [];
    const runOptions = this.#env.runOptions();
    const terminate = () => runOptions.terminate();
    let running: Promise<Record<string, Value>> | undefined;
    try {
      // A terminated run is the caller's decision, not an error for ORT's log (its line would go to stderr).
      runOptions.logSeverity("fatal");
      for (const [name, tensor] of Object.entries(feeds)) {
        inputs.push(this.#env.tensorCopy(this.#checkType(name, tensor), tensor.data as ArrayBufferView, tensor.dims));
      }
      const byName = Object.fromEntries(Object.keys(feeds).map((name, i) => [name, inputs[i]]));
      running = this.#session.runAsync(byName, {
        runOptions,
        ...(options.outputs ? { outputs: [...options.outputs] } : {}),
      });
      this.#inflight.set(running, runOptions);
      options.signal?.addEventListener("abort", terminate, { once: true });
      return valuesToTensors(await running);
    } finally {
      options.signal?.removeEventListener("abort", terminate);
      if (running) this.#inflight.delete(running);
      runOptions.close();
      for (const value of inputs) value.close();
    }
  }

  async #runBound(names: string[], inputs: Value[]): Promise<Record<string, Tensor>> {
    const binding = this.#binding!;
    try {
      names.forEach((name, i) => binding.bindInput(name, inputs[i]));
      if (this.#fixed.length === 0) {
        // The binding keeps the last run's outputs; binding the device again lets ORT allocate this run's shapes.
        for (const name of this.outputNames) binding.bindOutputToDevice(name, this.#outputMemory!);
      }
      const pending = this.#runBinding();
      if (pending) await pending;
    } finally {
      // The inputs are caller memory: nothing may stay bound to it after the run.
      binding.clearInputs();
    }
    const values = binding.outputs();
    try {
      return Object.fromEntries(this.outputNames.map((name, i) => [name, toTensor(values[i])]));
    } finally {
      for (const value of values) value.close();
    }
  }

  /**
   * Runs the binding: a promise on the blocking pool (`nonblocking`), else done on return. Callers await only a
   * promise, so a blocking run's binding, staging and outputs are not touched by another run of the session
   * between its inputs and its outputs (no microtask turn in between).
   */
  #runBinding(options: RunOptions = this.#runOptions): Promise<void> | void {
    const binding = this.#binding!;
    return this.#nonblocking ? binding.runAsync(options) : binding.run(options);
  }

  /**
   * A CUDA graph run: inputs copied to their fixed device buffers on the
   * stream, the graph replayed by ORT on the same stream, outputs copied back
   * from their fixed device buffers.
   */
  async #runGraph(names: string[]): Promise<Record<string, Tensor>> {
    const binding = this.#binding!;
    const device = this.#device!;
    names.forEach((name) => {
      const fixed = this.#graphInputs.get(name);
      if (fixed) binding.bindInput(name, fixed.value);
    });
    const pending = this.#runBinding();
    if (pending) await pending;
    return Object.fromEntries(this.#fixed.map((out) => {
      const data = new elementTypes[out.type].array(out.bytes / elementTypes[out.type].bytes);
      device.download(data, out.address);
      return [out.name, new Tensor(out.type, data as Float32Array, out.dims)];
    }));
  }

  /** CUDA graphs: the input's fixed device buffer, filled with `tensor`'s data (same size every run). */
  #graphInput(name: string, tensor: Tensor): Value {
    const data = tensor.data as ArrayBufferView;
    const fixed = this.#fixedGraphInput({
      name,
      type: tensor.type as ElementType,
      dims: tensor.dims,
      bytes: data.byteLength,
    });
    this.#device!.upload(fixed.address, data);
    return fixed.value;
  }

  /** CUDA graphs: the input's fixed device buffer, made (and, with lane staging, bound) on first use. */
  #fixedGraphInput(input: Omit<LaneFeed, "stage">): FixedOutput {
    const { name, type, dims, bytes } = input;
    let fixed = this.#graphInputs.get(name);
    if (!fixed) {
      const address = this.#device!.alloc(Math.max(bytes, 256));
      const value = this.#env.tensorAt(type, address, bytes, dims, this.#outputMemory!);
      fixed = { name, type, dims: [...dims], address, bytes, value };
      this.#graphInputs.set(name, fixed);
      if (this.#laneMemory) this.#binding!.bindInput(name, value);
    } else if (fixed.bytes !== bytes || fixed.type !== type) {
      throw new OrtError(
        "NativeSession.run",
        2,
        `input '${name}': a CUDA graph replays fixed shapes; got ${type} [${dims}], captured ${fixed.type} [${fixed.dims}]`,
      );
    }
    return fixed;
  }

  /** Pinned staging of `bytes` under `name` in `pool`, grown when too small. */
  #pinnedBuffer(pool: Map<string, PinnedBuffer>, name: string, bytes: number): PinnedBuffer {
    let buffer = pool.get(name);
    if (!buffer || buffer.bytes < bytes) {
      if (buffer) this.#pinned!.free(buffer.address);
      pool.delete(name);
      const size = Math.max(bytes, 256);
      buffer = { address: this.#pinned!.alloc(size), bytes: size };
      pool.set(name, buffer);
    }
    return buffer;
  }

  /** Lane staging: `data` copied into the input's pinned staging buffer; its address. */
  #stageHost(name: string, data: ArrayBufferView): bigint {
    const staging = this.#pinnedBuffer(this.#staging, name, data.byteLength);
    if (data.byteLength > 0) this.#env.writeHost(staging.address, data);
    return staging.address;
  }

  /** Lane staging: the input's bytes into pinned memory, and their copy to `address` queued on the stream. */
  #stageIn(feed: LaneFeed, address: bigint): void {
    if (feed.device !== undefined) {
      if (feed.bytes > 0) this.#device!.copyOnDevice!(address, feed.device, feed.bytes);
      return;
    }
    const source = feed.stage();
    if (feed.bytes > 0) (this.#device as LaneDeviceMemory).uploadFrom(address, source, feed.bytes);
  }

  /**
   * Lane staging: copies of every output into pinned memory queued, one wait, then each output's bytes: a view of
   * its arena region (`views`, where it fits), else a copy in JS memory.
   */
  #stageOut(outputs: FixedOutput[], views: boolean): Record<string, StagedOutput> {
    const device = this.#device as LaneDeviceMemory;
    const arena = this.#arena;
    const staged = outputs.map((out) => {
      const offset = views ? this.#arenaSlot("output", out.name, out.bytes) : null;
      const address = offset !== null
        ? arena!.address + BigInt(offset)
        : this.#pinnedBuffer(this.#outputStaging, out.name, out.bytes).address;
      if (out.bytes > 0) device.downloadTo(address, out.address, out.bytes);
      return { address, offset };
    });
    device.synchronize();
    return Object.fromEntries(outputs.map((out, i) => {
      const { address, offset } = staged[i];
      let bytes: Uint8Array;
      if (offset !== null) bytes = arena!.bytes(offset, out.bytes);
      else {
        bytes = new Uint8Array(out.bytes);
        if (out.bytes > 0) this.#env.readHost(address, bytes);
      }
      return [out.name, { type: out.type, dims: [...out.dims], bytes }];
    }));
  }

  /** A CUDA graph run with lane staging: inputs bound once, one wait per run; `finish` gets the outputs. */
  async #runLaneGraph<T>(
    feeds: LaneFeed[],
    views: boolean,
    finish: (outputs: Record<string, StagedOutput>) => T,
  ): Promise<T> {
    for (const feed of feeds) this.#stageIn(feed, this.#fixedGraphInput(feed).address);
    const pending = this.#runBinding();
    if (pending) await pending;
    return finish(this.#stageOut(this.#fixed, views));
  }

  /** A lane-staged run: through the graph of its input shapes where graphs are learned and one is free, else plain. */
  #runLaneAny<T>(
    feeds: LaneFeed[],
    views: boolean,
    finish: (outputs: Record<string, StagedOutput>) => T,
  ): Promise<T> {
    if (this.#maxGraphs > 0) {
      let key = "";
      for (const feed of feeds) key += `${feed.name}:${feed.type}[${feed.dims}];`;
      const graph = this.#graphs.get(key) ?? (this.#graphs.size < this.#maxGraphs ? this.#newGraph(key, feeds) : null);
      if (graph) return this.#runShapeGraph(key, graph, feeds, views, finish);
      if (this.#graphKey !== "") {
        // The binding holds a graph's buffers: the plain path binds its own from scratch.
        this.#graphKey = "";
        this.#laneKey = "";
      }
      this.#grown(feeds);
      // Never the session's own options: without a gpu_graph_id ORT would capture these shapes as graph 0.
      return this.#runLane(feeds, views, finish, this.#optionsFor(-1));
    }
    return this.#runLane(feeds, views, finish);
  }

  /**
   * Records a regular run's input shapes. Some CUDA kernels keep buffers sized by the largest shape they ran (the
   * Gemm's ones for its bias grow with its rows, `GetConstOnes`), and reallocate them when a larger one comes:
   * a graph captured before would replay from the freed buffer. So when a regular run is larger in any dimension
   * than every one before, the graphs captured so far are dropped: each is captured again, under a new id, on its
   * next run (up to 4 × maxGraphs ids; after that those shapes run without a graph).
   */
  #grown(feeds: LaneFeed[]): void {
    let grew = false;
    for (const feed of feeds) {
      const seen = this.#regularDims.get(feed.name);
      if (!seen || seen.length !== feed.dims.length) {
        grew ||= seen !== undefined;
        this.#regularDims.set(feed.name, [...feed.dims]);
        continue;
      }
      feed.dims.forEach((d, i) => {
        if (d > seen[i]) {
          seen[i] = d;
          grew = true;
        }
      });
    }
    if (!grew) return;
    for (const graph of this.#graphs.values()) {
      if (graph.outputs === null || graph.id === -1) continue;
      graph.id = this.#graphIds < 4 * this.#maxGraphs ? ++this.#graphIds : -1;
    }
  }

  /** The run options of `gpu_graph_id` `id`, made on first use. */
  #optionsFor(id: number): RunOptions {
    let options = this.#graphOptions.get(id);
    if (!options) {
      options = this.#env.runOptions();
      options.config("disable_synchronize_execution_providers", "1");
      options.config("gpu_graph_id", String(id));
      this.#graphOptions.set(id, options);
    }
    return options;
  }

  /** A graph for input shapes not seen before: device inputs of those shapes (its outputs come from its first run). */
  #newGraph(key: string, feeds: LaneFeed[]): ShapeGraph {
    const inputs: FixedOutput[] = [];
    try {
      for (const feed of feeds) inputs.push(this.#deviceBuffer(feed));
    } catch (error) {
      freeBuffers(inputs, this.#device!);
      throw error;
    }
    // Ids from 1: ORT's default graph (no gpu_graph_id) is 0, and -1 runs without one.
    const graph: ShapeGraph = { id: ++this.#graphIds, inputs, outputs: null };
    this.#graphs.set(key, graph);
    return graph;
  }

  /**
   * A run of a learned graph's input shapes: its buffers bound (when the last run had other shapes). The first run
   * is a regular one (`gpu_graph_id` -1) whose outputs ORT allocates: their shapes become the graph's own output
   * buffers. Later runs carry the graph's id: ORT captures the graph on the first of them, into those buffers, and
   * replays it after.
   */
  async #runShapeGraph<T>(
    key: string,
    graph: ShapeGraph,
    feeds: LaneFeed[],
    views: boolean,
    finish: (outputs: Record<string, StagedOutput>) => T,
  ): Promise<T> {
    const binding = this.#binding!;
    if (this.#graphKey !== key) {
      binding.clearInputs();
      for (const input of graph.inputs) binding.bindInput(input.name, input.value);
      if (graph.outputs) { for (const out of graph.outputs) binding.bindOutput(out.name, out.value); }
      else for (const name of this.outputNames) binding.bindOutputToDevice(name, this.#laneMemory!);
      // The plain path's buffers are no longer bound.
      this.#laneKey = "";
      this.#freeLaneOutputs();
      this.#graphKey = key;
    }
    if (!graph.outputs) this.#grown(feeds);
    feeds.forEach((feed, i) => this.#stageIn(feed, graph.inputs[i].address));
    try {
      const pending = this.#runBinding(this.#optionsFor(graph.outputs ? graph.id : -1));
      if (pending) await pending;
    } catch (error) {
      if (!graph.outputs || graph.id === -1) throw error;
      // A graph ORT could not capture (a kernel that allocates or synchronises while capturing): none for these
      // shapes from now on, and this run again as a regular one, so that its request does not pay for it.
      graph.id = -1;
      const again = this.#runBinding(this.#optionsFor(-1));
      if (again) await again;
    }
    if (graph.outputs) return finish(this.#stageOut(graph.outputs, views));
    const values = binding.outputs();
    try {
      const learned = this.outputNames.map((name, i) => describeOutput(name, values[i]));
      const result = finish(this.#stageOut(learned, views));
      graph.outputs = this.#allocateLaneOutputs(learned);
      return result;
    } finally {
      for (const value of values) value.close();
    }
  }

  /**
   * A run with lane staging: inputs into device buffers bound once per input
   * shape, outputs into device buffers of the shapes those inputs gave;
   * `finish` gets the outputs before anything else can run on the session.
   */
  async #runLane<T>(
    feeds: LaneFeed[],
    views: boolean,
    finish: (outputs: Record<string, StagedOutput>) => T,
    options: RunOptions = this.#runOptions,
  ): Promise<T> {
    const binding = this.#binding!;
    let key = "";
    const slots: LaneInput[] = [];
    for (const feed of feeds) {
      const slot = this.#laneInput(feed);
      slots.push(slot);
      key += `${feed.name}:${slot.type}[${slot.dims}];`;
    }
    if (key !== this.#laneKey) {
      binding.clearInputs();
      for (const slot of slots) binding.bindInput(slot.name, slot.value);
      this.#bindOutputsToDevice();
      this.#laneKey = key;
    } else if (this.#dynamicOutputs) {
      this.#bindOutputsToDevice();
    }
    feeds.forEach((feed, i) => this.#stageIn(feed, slots[i].address));
    try {
      const pending = this.#runBinding(options);
      if (pending) await pending;
    } catch (error) {
      // Outputs bound to the last shapes, and this run's differ for the same input shapes: rebind from now on.
      if (this.#laneOutputs === null || !shapeMismatch.test((error as Error).message)) throw error;
      this.#dynamicOutputs = true;
      this.#bindOutputsToDevice();
      const again = this.#runBinding(options);
      if (again) await again;
    }
    if (this.#laneOutputs !== null) return finish(this.#stageOut(this.#laneOutputs, views));
    // First run of these shapes: ORT allocated the outputs; copy them out, then bind buffers of ours for the next runs.
    const values = binding.outputs();
    try {
      const learned = this.outputNames.map((name, i) => describeOutput(name, values[i]));
      const result = finish(this.#stageOut(learned, views));
      if (!this.#dynamicOutputs) this.#laneOutputs = this.#allocateLaneOutputs(learned);
      return result;
    } finally {
      for (const value of values) value.close();
    }
  }

  /** Binds every output to device memory that ORT allocates at the next run, and drops ours. */
  #bindOutputsToDevice(): void {
    for (const name of this.outputNames) this.#binding!.bindOutputToDevice(name, this.#laneMemory!);
    this.#freeLaneOutputs();
  }

  /** Device buffers of the learned output shapes, bound as the outputs of the next runs. */
  #allocateLaneOutputs(learned: FixedOutput[]): FixedOutput[] {
    const outputs: FixedOutput[] = [];
    try {
      for (const out of learned) {
        const buffer = this.#deviceBuffer(out);
        outputs.push(buffer);
        this.#binding!.bindOutput(out.name, buffer.value);
      }
      return outputs;
    } catch (error) {
      for (const name of this.outputNames) this.#binding!.bindOutputToDevice(name, this.#laneMemory!);
      freeBuffers(outputs, this.#device!);
      throw error;
    }
  }

  /** A device buffer of `tensor`'s bytes (at least 256) and the lane-memory value over it; nothing is kept on failure. */
  #deviceBuffer(tensor: { name: string; type: ElementType; dims: readonly number[]; bytes: number }): FixedOutput {
    const { name, type, dims, bytes } = tensor;
    const device = this.#device!;
    const address = device.alloc(Math.max(bytes, 256));
    try {
      const value = this.#env.tensorAt(type, address, bytes, dims, this.#laneMemory!);
      return { name, type, dims: [...dims], address, bytes, value };
    } catch (error) {
      device.free(address);
      throw error;
    }
  }

  #freeLaneOutputs(): void {
    freeBuffers(this.#laneOutputs ?? [], this.#device!);
    this.#laneOutputs = null;
  }

  /** Lane staging: the input's device buffer and the value over it, remade when its type or shape changes. */
  #laneInput(feed: LaneFeed): LaneInput {
    const { name, type, bytes, dims } = feed;
    const slot = this.#laneInputs.get(name);
    if (slot && slot.type === type && sameDims(slot.dims, dims)) return slot;
    const device = this.#device!;
    let address = slot?.address ?? 0n;
    let capacity = slot?.capacity ?? 0;
    slot?.value.close();
    this.#laneInputs.delete(name);
    if (capacity < bytes) {
      if (slot) device.free(address);
      capacity = Math.max(bytes, 256);
      address = device.alloc(capacity);
    }
    let value: Value;
    try {
      value = this.#env.tensorAt(type, address, bytes, dims, this.#laneMemory!);
    } catch (error) {
      device.free(address);
      throw error;
    }
    const made: LaneInput = {
      name,
      type,
      dims: [...dims],
      address,
      bytes,
      value,
      capacity,
    };
    this.#laneInputs.set(name, made);
    return made;
  }

  #checkType(name: string, tensor: Tensor): ElementType {
    const type = tensor.type as ElementType;
    if (!(type in elementTypes)) {
      throw new OrtError("NativeSession.run", 2, `input '${name}': tensor type ${tensor.type} is not supported`);
    }
    return type;
  }

  #value(name: string, tensor: Tensor): Value {
    const type = this.#checkType(name, tensor);
    const data = tensor.data as ArrayBufferView;
    if (!this.#inputMemory || !this.#pinned) return this.#env.tensor(type, data, tensor.dims);
    let buffer = this.#staging.get(name);
    if (!buffer || buffer.bytes < data.byteLength) {
      if (buffer) this.#pinned.free(buffer.address);
      const bytes = Math.max(data.byteLength, 256);
      buffer = { address: this.#pinned.alloc(bytes), bytes };
      this.#staging.set(name, buffer);
    }
    this.#env.writeHost(buffer.address, data);
    return this.#env.tensorAt(type, buffer.address, data.byteLength, tensor.dims, this.#inputMemory);
  }

  /** Sets ORT's terminate flag: the run in progress (or the next one) fails with ORT's cancel error. */
  terminate(): void {
    this.#runOptions.terminate();
  }

  /** Clears the terminate flag. */
  resume(): void {
    this.#runOptions.resume();
  }

  /**
   * Releases everything in reverse order of creation: binding, fixed outputs, memory infos, run options, session,
   * staging. Nonblocking runs still in flight are terminated first and awaited: ORT must not lose a session it
   * runs.
   */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    for (const runOptions of this.#inflight.values()) runOptions.terminate();
    await Promise.allSettled([...this.#inflight.keys(), this.#turn]);
    this.#binding?.close();
    for (const out of [...this.#fixed, ...this.#graphInputs.values(), ...this.#laneInputs.values()]) {
      out.value.close();
      this.#device?.free(out.address);
    }
    for (const graph of this.#graphs.values()) {
      freeBuffers(graph.inputs, this.#device!);
      freeBuffers(graph.outputs ?? [], this.#device!);
    }
    this.#graphs.clear();
    for (const options of this.#graphOptions.values()) options.close();
    this.#graphOptions.clear();
    this.#graphInputs.clear();
    this.#laneInputs.clear();
    this.#freeLaneOutputs();
    this.#laneMemory?.close();
    this.#outputMemory?.close();
    this.#inputMemory?.close();
    this.#runOptions.close();
    this.#session.close();
    for (const buffer of [...this.#staging.values(), ...this.#outputStaging.values()]) {
      this.#pinned?.free(buffer.address);
    }
    this.#staging.clear();
    this.#outputStaging.clear();
  }
}

/** `type` as an element type the binding reads and writes. */
function checkedType(name: string, type: string): ElementType {
  if (!(type in elementTypes)) {
    throw new OrtError("NativeSession.run", 2, `input '${name}': tensor type ${type} is not supported`);
  }
  return type as ElementType;
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Outputs as `run` returns them: each a `Tensor` over its own copy. */
function tensorsOf(outputs: Record<string, StagedOutput>): Record<string, Tensor> {
  return Object.fromEntries(
    Object.entries(outputs).map(([name, out]) => {
      const t = elementTypes[out.type];
      const data = new t.array(out.bytes.buffer as ArrayBuffer, out.bytes.byteOffset, out.bytes.byteLength / t.bytes);
      return [name, new Tensor(out.type, data as Float32Array, [...out.dims])];
    }),
  );
}

/** `run`'s tensors as staged outputs (views of their data). */
function stagedOf(outputs: Record<string, Tensor>): Record<string, StagedOutput> {
  return Object.fromEntries(
    Object.entries(outputs).map(([name, tensor]) => {
      const data = tensor.data as ArrayBufferView;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return [name, { type: tensor.type as ElementType, dims: tensor.dims, bytes }];
    }),
  );
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** An output ORT allocated: its name, type, shape, data address and bytes (the value stays the caller's). */
function describeOutput(name: string, value: Value): FixedOutput {
  const { type, dims } = value.shape();
  if (!(type in elementTypes)) {
    throw new OrtError("NativeSession.run", 9, `output '${name}': element type ${type} is not supported`);
  }
  return { name, type: type as ElementType, dims, address: value.dataAddress(), bytes: value.byteLength(), value };
}

/** Every value as a `Tensor` (copied), each value closed; all are closed if one cannot be read. */
function valuesToTensors(values: Record<string, Value>): Record<string, Tensor> {
  try {
    return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, toTensor(value)]));
  } finally {
    for (const value of Object.values(values)) value.close();
  }
}

function toTensor(value: Value): Tensor {
  try {
    const shape = value.shape();
    const data = value.read(shape);
    return new Tensor(shape.type as ElementType, data as Float32Array, shape.dims);
  } finally {
    value.close();
  }
}

function refuseCpuFallback(placement: Placement, requested: string, path: string): void {
  const onCpu = cpuComputeNodes(placement);
  const gpuNodes = placement[requested]?.count ?? 0;
  if (onCpu.length > 0) {
    throw new OrtError(
      "NativeSession.create",
      11,
      `${path}: compute nodes placed on CPUExecutionProvider while ${requested} was asked for: ${onCpu.join(", ")}`,
    );
  }
  if (gpuNodes === 0) {
    const cpu = placement.CPUExecutionProvider?.count ?? 0;
    throw new OrtError(
      "NativeSession.create",
      11,
      `${path}: no node placed on ${requested}; all ${cpu} nodes run on CPUExecutionProvider`,
    );
  }
}

/** Closes each buffer's value and frees its device memory. */
function freeBuffers(buffers: readonly FixedOutput[], device: DeviceMemory): void {
  for (const buffer of buffers) {
    buffer.value.close();
    device.free(buffer.address);
  }
}

/** Whether every output of the model is a tensor of a fixed shape and a type the binding reads. */
function fixedOutputShapes(session: Session): boolean {
  return session.outputs.every((out) =>
    out.isTensor && out.type in elementTypes && out.shape.every((d) => typeof d === "number")
  );
}

function bindFixedOutputs(
  env: OrtEnv,
  session: Session,
  binding: IoBinding,
  memory: MemoryInfo,
  device: DeviceMemory | undefined,
  path: string,
): FixedOutput[] {
  if (!device) {
    throw new OrtError(
      "NativeSession.create",
      2,
      `${path}: CUDA graphs need device memory for fixed input and output addresses`,
    );
  }
  const fixed: FixedOutput[] = [];
  try {
    for (const out of session.outputs) {
      const dims = out.shape.filter((d): d is number => typeof d === "number");
      if (!out.isTensor || !(out.type in elementTypes) || dims.length !== out.shape.length) {
        throw new OrtError(
          "NativeSession.create",
          2,
          `${path}: CUDA graphs need fixed output shapes; output '${out.name}' is ${out.type} [${
            out.shape.join(", ")
          }]`,
        );
      }
      const type = out.type as ElementType;
      const bytes = dims.reduce((a, b) => a * b, 1) * elementTypes[type].bytes;
      const address = device.alloc(Math.max(bytes, 256));
      let value: Value;
      try {
        value = env.tensorAt(type, address, bytes, dims, memory);
      } catch (error) {
        device.free(address);
        throw error;
      }
      fixed.push({ name: out.name, type, dims, address, bytes, value });
      binding.bindOutput(out.name, value);
    }
    return fixed;
  } catch (error) {
    for (const out of fixed) {
      out.value.close();
      device.free(out.address);
    }
    throw error;
  }
}
