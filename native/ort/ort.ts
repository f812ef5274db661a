/**
 * Typed handles over the ONNX Runtime C API: the environment, session
 * options, execution-provider options (CUDA, TensorRT), sessions, tensors
 * (`OrtValue`), run options and IO binding. Every handle has `close()` and
 * `[Symbol.dispose]`; every failed call throws {@link OrtError}.
 *
 * Only {@link OrtEnv.open} needs the ffi permission (it opens the library
 * and binds the table); everything after it passes handles as `u64` and
 * buffers as typed arrays, so it works in an isolate that has dropped ffi.
 *
 * @example
 * ```ts
 * using env = OrtEnv.open({ libraryPath });
 * using options = env.sessionOptions({ intraOpThreads: 1 });
 * using session = env.session("functions/mlp/mlp.onnx", options);
 * using x = env.tensor("float32", new Float32Array(8), [2, 4]);
 * const { y } = session.run({ x });
 * console.log(y.read()); // Float32Array(6)
 * y.close();
 * ```
 * @module
 */
import { type ApiFunctions, type CMemory, loggingLevel, openOrtLibrary, type OrtLibrary } from "./ffi.ts";
import { OrtError } from "./error.ts";

/** Tensor element types this binding reads and writes, by onnxruntime-common's names. */
export const elementTypes = {
  float32: { onnx: 1, bytes: 4, array: Float32Array },
  uint8: { onnx: 2, bytes: 1, array: Uint8Array },
  int8: { onnx: 3, bytes: 1, array: Int8Array },
  uint16: { onnx: 4, bytes: 2, array: Uint16Array },
  int16: { onnx: 5, bytes: 2, array: Int16Array },
  int32: { onnx: 6, bytes: 4, array: Int32Array },
  int64: { onnx: 7, bytes: 8, array: BigInt64Array },
  bool: { onnx: 9, bytes: 1, array: Uint8Array },
  float16: { onnx: 10, bytes: 2, array: Uint16Array },
  float64: { onnx: 11, bytes: 8, array: Float64Array },
  uint32: { onnx: 12, bytes: 4, array: Uint32Array },
  uint64: { onnx: 13, bytes: 8, array: BigUint64Array },
} as const;

/** A tensor element type name (`float32`, `int64`, ...). */
export type ElementType = keyof typeof elementTypes;

/** The typed array that holds elements of `T`. */
export type ElementArray<T extends ElementType> = InstanceType<(typeof elementTypes)[T]["array"]>;

const elementByOnnx = new Map<number, ElementType>(
  Object.entries(elementTypes).map(([name, t]) => [t.onnx, name as ElementType]),
);

/** The name of an ONNX element type number; `onnx:<n>` for types this binding does not read. */
export function elementTypeName(onnx: number): ElementType | `onnx:${number}` {
  return elementByOnnx.get(onnx) ?? `onnx:${onnx}`;
}

/** `GraphOptimizationLevel`. */
export const graphOptimization = { disabled: 0, basic: 1, extended: 2, layout: 3, all: 99 } as const;

/** `OrtMemType` values. */
export const memType = { cpuInput: -2, cpuOutput: -1, default: 0 } as const;

const encoder = new TextEncoder();

/** A `BigUint64Array` over an `ArrayBuffer` of its own: off the V8 heap from the start, so passing it costs no move. */
function words(count: number): BigUint64Array {
  return new BigUint64Array(new ArrayBuffer(Math.max(count, 1) * 8), 0, count);
}

/** The dimensions as an off-heap `int64_t[]`. */
function shapeOf(dims: readonly number[]): BigInt64Array {
  const shape = new BigInt64Array(new ArrayBuffer(Math.max(dims.length, 1) * 8), 0, dims.length);
  for (let i = 0; i < dims.length; i++) shape[i] = BigInt(dims[i]);
  return shape;
}

/**
 * A NUL-terminated copy of `text` in an `ArrayBuffer` of its own: off the V8
 * heap, so its address stays valid while the array is alive.
 */
function cString(text: string): Uint8Array {
  const bytes = encoder.encode(text);
  const out = new Uint8Array(new ArrayBuffer(bytes.length + 1));
  out.set(bytes);
  return out;
}

/** The calls shared by every handle: status checks and out-parameters. */
class Calls {
  // Off-heap scratch words for out-parameters: no allocation (and no materialisation) per call.
  readonly #word = new BigUint64Array(new ArrayBuffer(8));
  /** A scratch `int32` out-parameter. */
  readonly int = new Int32Array(new ArrayBuffer(8));

  constructor(readonly fns: ApiFunctions, readonly memory: CMemory) {}

  /** Throws {@link OrtError} for a non-null `OrtStatus*`, releasing the status. */
  check(call: string, status: number | bigint): void {
    const s = BigInt(status);
    if (s === 0n) return;
    const code = this.fns.GetErrorCode.call(s);
    const message = this.memory.string(BigInt(this.fns.GetErrorMessage.call(s)));
    this.fns.ReleaseStatus.call(s);
    throw new OrtError(call, code, message);
  }

  /** Calls `invoke` with a one-word out-parameter and returns the word. */
  out(call: string, invoke: (out: BigUint64Array) => number | bigint): bigint {
    const out = this.#word;
    this.check(call, invoke(out));
    return out[0];
  }

  #allocator = 0n;
  /** ORT's default CPU allocator (`GetAllocatorWithDefaultOptions`: one per process, never freed). */
  get allocator(): bigint {
    if (this.#allocator === 0n) {
      this.#allocator = this.out(
        "GetAllocatorWithDefaultOptions",
        (o) => this.fns.GetAllocatorWithDefaultOptions.call(o),
      );
    }
    return this.#allocator;
  }

  /** An array of the addresses of `strings` (kept alive by the caller through `keep`). */
  stringArray(strings: string[], keep: unknown[]): BigUint64Array {
    const out = new BigUint64Array(strings.length);
    strings.forEach((s, i) => {
      const c = cString(s);
      keep.push(c);
      out[i] = this.memory.address(c);
    });
    return out;
  }
}

/** A released-once native handle. */
abstract class Handle implements Disposable {
  #handle: bigint;
  protected constructor(protected readonly calls: Calls, handle: bigint) {
    this.#handle = handle;
  }

  /** The native address (`OrtSession*`, `OrtValue*`, ...); throws once closed. */
  get handle(): bigint {
    if (this.#handle === 0n) throw new Error(`${this.constructor.name} is closed`);
    return this.#handle;
  }

  /** Whether {@link close} has run. */
  get closed(): boolean {
    return this.#handle === 0n;
  }

  protected abstract release(handle: bigint): void;

  /** Releases the native handle; later calls do nothing. */
  close(): void {
    if (this.#handle === 0n) return;
    const handle = this.#handle;
    this.#handle = 0n;
    this.release(handle);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of {@link OrtEnv.open}. */
export interface OrtEnvOptions {
  /** Path of `libonnxruntime.so.1` (onnxruntime-node's, so there is one ORT in the process). */
  libraryPath: string;
  /** Default log severity of the environment (`ORT_LOGGING_LEVEL_*`); warning by default. */
  logLevel?: keyof typeof loggingLevel;
}

/**
 * The ORT environment. ORT keeps one `OrtEnv` per process and counts
 * references: `CreateEnv` returns the same environment to every caller
 * (onnxruntime-node's included, measured in `ort_test.ts`), and each
 * {@link OrtEnv.close} drops one reference.
 */
export class OrtEnv extends Handle {
  /** The opened library. */
  readonly library: OrtLibrary;

  private constructor(calls: Calls, handle: bigint, library: OrtLibrary) {
    super(calls, handle);
    this.library = library;
  }

  /**
   * Opens the library (once per isolate) and takes a reference to the
   * process's environment. Call while the ffi permission is granted.
   * @throws {OrtError} when ORT cannot create the environment.
   */
  static open(options: OrtEnvOptions): OrtEnv {
    const library = openOrtLibrary(options.libraryPath);
    const calls = new Calls(library.fns, library.memory);
    const env = calls.out(
      "CreateEnv",
      (o) => library.fns.CreateEnv.call(loggingLevel[options.logLevel ?? "warning"], cString("isolane"), o),
    );
    return new OrtEnv(calls, env, library);
  }

  /** ORT's version, e.g. `1.29.0`. */
  get version(): string {
    return this.library.version;
  }

  /** `GetBuildInfoString()`. */
  buildInfo(): string {
    return this.calls.memory.string(BigInt(this.calls.fns.GetBuildInfoString.call()));
  }

  /** The execution providers compiled into this build (not necessarily loadable here). */
  availableProviders(): string[] {
    const count = new Int32Array(1);
    const list = this.calls.out("GetAvailableProviders", (o) => this.calls.fns.GetAvailableProviders.call(o, count));
    const names = [...this.calls.memory.words(list, count[0])].map((p) => this.calls.memory.string(p));
    this.calls.check("ReleaseAvailableProviders", this.calls.fns.ReleaseAvailableProviders.call(list, count[0]));
    return names;
  }

  /** Round-trips a status through `CreateStatus`/`GetErrorCode`/`GetErrorMessage` (a check of the table). */
  statusRoundTrip(code: number, message: string): OrtError {
    const status = this.calls.fns.CreateStatus.call(code, cString(message));
    try {
      this.calls.check("CreateStatus", status);
    } catch (error) {
      return error as OrtError;
    }
    throw new Error("CreateStatus returned no status");
  }

  /** New session options; see {@link SessionOptionsInit}. */
  sessionOptions(init: SessionOptionsInit = {}): SessionOptions {
    return SessionOptions.create(this.calls, this.library, init);
  }

  /**
   * Creates a session from the model file at `path`. ORT reads the file and
   * resolves external data against the model's folder.
   * @throws {OrtError} `ORT_NO_SUCHFILE` for a missing file, `ORT_INVALID_PROTOBUF`/`ORT_INVALID_GRAPH` for a bad model, `ORT_EP_FAIL` or `ORT_FAIL` when a provider cannot load.
   */
  session(path: string, options: SessionOptions, extra: SessionCreateOptions = {}): Session {
    const container = extra.prepackedWeights;
    const handle = container
      ? this.calls.out(
        "CreateSessionWithPrepackedWeightsContainer",
        (o) =>
          this.calls.fns.CreateSessionWithPrepackedWeightsContainer.call(
            this.handle,
            cString(path),
            options.handle,
            container.handle,
            o,
          ),
      )
      : this.calls.out(
        "CreateSession",
        (o) => this.calls.fns.CreateSession.call(this.handle, cString(path), options.handle, o),
      );
    return Session.wrap(this.calls, handle);
  }

  /**
   * A container that sessions created with it (see {@link session}) share
   * their pre-packed weights through: kernels that pre-pack a weight (the
   * CPU provider's MatMul, for one) keep one packed copy for all of them.
   * It must outlive those sessions.
   */
  prepackedWeights(): PrepackedWeights {
    return PrepackedWeights.create(this.calls);
  }

  /** Describes CPU memory for tensors over caller buffers. */
  cpuMemoryInfo(): MemoryInfo {
    return MemoryInfo.cpu(this.calls);
  }

  /** Describes device memory: `Cuda` (device) or `CudaPinned` (page-locked host memory). */
  memoryInfo(name: "Cuda" | "CudaPinned" | "Cpu", device: number): MemoryInfo {
    return MemoryInfo.create(this.calls, name, device);
  }

  /**
   * A tensor over `data` (not copied): the value keeps `data` alive, and ORT
   * reads and writes it in place. `data` is viewed through its `ArrayBuffer`,
   * which moves it off the V8 heap for good.
   * @throws {OrtError} when the shape does not match the data's length.
   */
  tensor<T extends ElementType>(
    type: T,
    data: ArrayBufferView,
    dims: readonly number[],
    memory?: MemoryInfo,
  ): Value {
    const info = memory ?? this.#cpu();
    // Touching .buffer materialises an on-heap typed array off the heap, where it never moves.
    const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const shape = shapeOf(dims);
    const handle = this.calls.out(
      "CreateTensorWithDataAsOrtValue",
      (o) =>
        this.calls.fns.CreateTensorWithDataAsOrtValue.call(
          info.handle,
          view,
          BigInt(view.byteLength),
          shape,
          BigInt(shape.length),
          elementTypes[type].onnx,
          o,
        ),
    );
    return Value.wrap(this.calls, handle, [data]);
  }

  /**
   * A tensor over `bytes` bytes at `address`: pinned host memory or device
   * memory that the caller owns and keeps alive longer than the value.
   */
  tensorAt(type: ElementType, address: bigint, bytes: number, dims: readonly number[], memory: MemoryInfo): Value {
    const shape = shapeOf(dims);
    const handle = this.calls.out(
      "CreateTensorWithDataAsOrtValue",
      (o) =>
        this.calls.fns.CreateTensorWithDataAtAddress.call(
          memory.handle,
          address,
          BigInt(bytes),
          shape,
          BigInt(shape.length),
          elementTypes[type].onnx,
          o,
        ),
    );
    return Value.wrap(this.calls, handle, []);
  }

  /**
   * A CPU tensor in memory ORT allocates (`CreateTensorAsOrtValue` with the
   * default allocator), holding a copy of `data`. Unlike {@link tensor} it
   * references no JS memory, so a nonblocking run over it stays valid even
   * if the isolate ends while ORT works; the value frees its memory on close.
   * @throws {OrtError} `ORT_INVALID_ARGUMENT` when `data` does not hold exactly the elements `dims` needs.
   */
  tensorCopy(type: ElementType, data: ArrayBufferView, dims: readonly number[]): Value {
    const t = elementTypes[type];
    const count = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count) || count < 0 || data.byteLength !== count * t.bytes) {
      throw new OrtError(
        "CreateTensorAsOrtValue",
        2,
        `${data.byteLength} bytes of ${type} do not fill shape [${dims.join(", ")}] (${count} elements)`,
      );
    }
    const shape = shapeOf(dims);
    const handle = this.calls.out(
      "CreateTensorAsOrtValue",
      (o) => this.calls.fns.CreateTensorAsOrtValue.call(this.calls.allocator, shape, BigInt(shape.length), t.onnx, o),
    );
    const value = Value.wrap(this.calls, handle, []);
    try {
      if (data.byteLength > 0) {
        this.calls.memory.write(value.dataAddress(), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      }
      return value;
    } catch (error) {
      value.close();
      throw error;
    }
  }

  #cpuInfo: MemoryInfo | undefined;
  #cpu(): MemoryInfo {
    this.#cpuInfo ??= MemoryInfo.cpu(this.calls);
    return this.#cpuInfo;
  }

  /** New run options. */
  runOptions(): RunOptions {
    return RunOptions.create(this.calls);
  }

  /**
   * CUDA execution provider options (`OrtCUDAProviderOptionsV2`).
   * @throws {OrtError} when ORT refuses a key or value.
   */
  cudaProviderOptions(init: CudaProviderInit): CudaProviderOptions {
    return CudaProviderOptions.create(this.calls, init);
  }

  /**
   * TensorRT execution provider options (`OrtTensorRTProviderOptionsV2`).
   * @throws {OrtError} when ORT refuses a key or value.
   */
  tensorRtProviderOptions(init: TensorRtProviderInit): TensorRtProviderOptions {
    return TensorRtProviderOptions.create(this.calls, init);
  }

  /** Reads `count` bytes of host memory at `address` into `into` (pinned buffers, ORT outputs). */
  readHost(address: bigint, into: ArrayBufferView): void {
    this.calls.memory.read(address, into);
  }

  /** Writes `from` to host memory at `address` (pinned buffers the caller owns). */
  writeHost(address: bigint, from: ArrayBufferView): void {
    this.calls.memory.write(address, from);
  }

  protected release(handle: bigint): void {
    this.#cpuInfo?.close();
    this.calls.fns.ReleaseEnv.call(handle);
  }
}

/** Options of {@link OrtEnv.session} beyond the session options. */
export interface SessionCreateOptions {
  /** Share pre-packed weights with the other sessions of this container (`CreateSessionWithPrepackedWeightsContainer`). */
  prepackedWeights?: PrepackedWeights;
}

/** `OrtPrepackedWeightsContainer`: release it only after every session created with it. */
export class PrepackedWeights extends Handle {
  /** Use {@link OrtEnv.prepackedWeights}. */
  static create(calls: Calls): PrepackedWeights {
    const h = calls.out("CreatePrepackedWeightsContainer", (o) => calls.fns.CreatePrepackedWeightsContainer.call(o));
    return new PrepackedWeights(calls, h);
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleasePrepackedWeightsContainer.call(handle);
  }
}

/** What {@link OrtEnv.sessionOptions} sets. */
export interface SessionOptionsInit {
  /** Intra-op threads; 0 or absent leaves ORT's default. */
  intraOpThreads?: number;
  /** Inter-op threads; 0 or absent leaves ORT's default. */
  interOpThreads?: number;
  /** Graph optimisation level; `all` by default. */
  graphOptimization?: keyof typeof graphOptimization;
  /** Writes a Chrome-trace profile with this file prefix (see {@link Session.endProfiling}). */
  profilingPrefix?: string;
  /** Session log severity (`ORT_LOGGING_LEVEL_*`). */
  logSeverity?: keyof typeof loggingLevel;
  /** Session config entries (`AddSessionConfigEntry`), e.g. `session.use_env_allocators`. */
  config?: Record<string, string>;
  /**
   * Values for the model's symbolic dimensions, by name (`AddFreeDimensionOverrideByName`): ORT then plans the session
   * for those sizes (shape computations fold into constants). Inputs of other sizes are refused.
   */
  freeDimensions?: Record<string, number>;
}

/** `OrtSessionOptions`. Providers are tried in the order they are appended; CPU comes last by itself. */
export class SessionOptions extends Handle {
  readonly #library: OrtLibrary;
  readonly #keep: unknown[] = [];

  private constructor(calls: Calls, handle: bigint, library: OrtLibrary) {
    super(calls, handle);
    this.#library = library;
  }

  /** Use {@link OrtEnv.sessionOptions}. */
  static create(calls: Calls, library: OrtLibrary, init: SessionOptionsInit): SessionOptions {
    const options = new SessionOptions(
      calls,
      calls.out("CreateSessionOptions", (o) => calls.fns.CreateSessionOptions.call(o)),
      library,
    );
    try {
      const h = options.handle;
      const f = calls.fns;
      if (init.intraOpThreads) calls.check("SetIntraOpNumThreads", f.SetIntraOpNumThreads.call(h, init.intraOpThreads));
      if (init.interOpThreads) calls.check("SetInterOpNumThreads", f.SetInterOpNumThreads.call(h, init.interOpThreads));
      const level = graphOptimization[init.graphOptimization ?? "all"];
      calls.check("SetSessionGraphOptimizationLevel", f.SetSessionGraphOptimizationLevel.call(h, level));
      if (init.profilingPrefix !== undefined) {
        calls.check("EnableProfiling", f.EnableProfiling.call(h, cString(init.profilingPrefix)));
      }
      if (init.logSeverity !== undefined) options.logSeverity(init.logSeverity);
      for (const [key, value] of Object.entries(init.config ?? {})) options.config(key, value);
      for (const [name, value] of Object.entries(init.freeDimensions ?? {})) {
        calls.check(
          "AddFreeDimensionOverrideByName",
          f.AddFreeDimensionOverrideByName.call(h, cString(name), BigInt(value)),
        );
      }
      return options;
    } catch (error) {
      options.close();
      throw error;
    }
  }

  /** `SetSessionLogSeverityLevel`. */
  logSeverity(level: keyof typeof loggingLevel): void {
    this.calls.check(
      "SetSessionLogSeverityLevel",
      this.calls.fns.SetSessionLogSeverityLevel.call(this.handle, loggingLevel[level]),
    );
  }

  /** `AddSessionConfigEntry(key, value)`. */
  config(key: string, value: string): void {
    this.calls.check(
      "AddSessionConfigEntry",
      this.calls.fns.AddSessionConfigEntry.call(this.handle, cString(key), cString(value)),
    );
  }

  /**
   * Sends the session's log lines to this library's logging callback
   * (`SetUserLoggingFunction`). The callback runs on the thread that logs;
   * use it only for sessions that never run (placement probes).
   */
  logToCallback(): void {
    this.calls.check(
      "SetUserLoggingFunction",
      this.calls.fns.SetUserLoggingFunction.call(this.handle, this.#library.loggerAddress, 0n),
    );
  }

  /**
   * Appends the CUDA execution provider.
   * @throws {OrtError} when ORT cannot load the CUDA provider library or its CUDA/cuDNN dependencies.
   */
  appendCuda(provider: CudaProviderOptions): void {
    this.calls.check(
      "SessionOptionsAppendExecutionProvider_CUDA_V2",
      this.calls.fns.SessionOptionsAppendExecutionProvider_CUDA_V2.call(this.handle, provider.handle),
    );
  }

  /**
   * Appends the TensorRT execution provider.
   * @throws {OrtError} when ORT cannot load the TensorRT provider library or `libnvinfer`.
   */
  appendTensorRt(provider: TensorRtProviderOptions): void {
    this.calls.check(
      "SessionOptionsAppendExecutionProvider_TensorRT_V2",
      this.calls.fns.SessionOptionsAppendExecutionProvider_TensorRT_V2.call(this.handle, provider.handle),
    );
  }

  /**
   * Uses `value` for the initializer `name` instead of the model's own data
   * (`AddInitializer`): ORT keeps a reference to the value without copying
   * it, so sessions given the same value share its memory. The value must
   * outlive every session created with these options; this object keeps it
   * referenced until closed.
   */
  addInitializer(name: string, value: Value): void {
    this.#keep.push(value);
    this.calls.check("AddInitializer", this.calls.fns.AddInitializer.call(this.handle, cString(name), value.handle));
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseSessionOptions.call(handle);
    this.#keep.length = 0;
  }
}

/** What {@link OrtEnv.cudaProviderOptions} sets; each maps to the CUDA EP option of the same snake_case name. */
export interface CudaProviderInit {
  /** `device_id`. */
  deviceId: number;
  /** `user_compute_stream` (a `CUstream`/`cudaStream_t` handle); also sets `has_user_compute_stream`. */
  userComputeStream?: bigint;
  /** `gpu_mem_limit`, bytes of the EP's arena. */
  gpuMemLimit?: number;
  /** `arena_extend_strategy`. */
  arenaExtendStrategy?: "kNextPowerOfTwo" | "kSameAsRequested";
  /** `cudnn_conv_algo_search`. */
  cudnnConvAlgoSearch?: "EXHAUSTIVE" | "HEURISTIC" | "DEFAULT";
  /** `use_tf32`. */
  useTf32?: boolean;
  /** `enable_cuda_graph`. */
  enableCudaGraph?: boolean;
  /** `do_copy_in_default_stream`. */
  doCopyInDefaultStream?: boolean;
  /** Further raw options, passed as they are. */
  extra?: Record<string, string>;
}

function flag(v: boolean): string {
  return v ? "1" : "0";
}

/** `OrtCUDAProviderOptionsV2`. */
export class CudaProviderOptions extends Handle {
  /** The options as ORT was given them (strings), for logs and the API. */
  readonly values: Record<string, string>;

  private constructor(calls: Calls, handle: bigint, values: Record<string, string>) {
    super(calls, handle);
    this.values = values;
  }

  /** Use {@link OrtEnv.cudaProviderOptions}. */
  static create(calls: Calls, init: CudaProviderInit): CudaProviderOptions {
    const values: Record<string, string> = { device_id: String(init.deviceId) };
    if (init.gpuMemLimit !== undefined) values.gpu_mem_limit = String(Math.floor(init.gpuMemLimit));
    if (init.arenaExtendStrategy) values.arena_extend_strategy = init.arenaExtendStrategy;
    if (init.cudnnConvAlgoSearch) values.cudnn_conv_algo_search = init.cudnnConvAlgoSearch;
    if (init.useTf32 !== undefined) values.use_tf32 = flag(init.useTf32);
    if (init.enableCudaGraph !== undefined) values.enable_cuda_graph = flag(init.enableCudaGraph);
    if (init.doCopyInDefaultStream !== undefined) values.do_copy_in_default_stream = flag(init.doCopyInDefaultStream);
    if (init.userComputeStream !== undefined) values.has_user_compute_stream = "1";
    Object.assign(values, init.extra);
    const handle = calls.out("CreateCUDAProviderOptions", (o) => calls.fns.CreateCUDAProviderOptions.call(o));
    const options = new CudaProviderOptions(calls, handle, values);
    try {
      const keep: unknown[] = [];
      const keys = calls.stringArray(Object.keys(values), keep);
      const vals = calls.stringArray(Object.values(values), keep);
      calls.check(
        "UpdateCUDAProviderOptions",
        calls.fns.UpdateCUDAProviderOptions.call(handle, keys, vals, BigInt(keys.length)),
      );
      if (init.userComputeStream !== undefined) {
        calls.check(
          "UpdateCUDAProviderOptionsWithValue",
          calls.fns.UpdateCUDAProviderOptionsWithValue.call(
            handle,
            cString("user_compute_stream"),
            init.userComputeStream,
          ),
        );
        values.user_compute_stream = `0x${init.userComputeStream.toString(16)}`;
      }
      return options;
    } catch (error) {
      options.close();
      throw error;
    }
  }

  /**
   * Every option as ORT holds it now (`GetCUDAProviderOptionsAsString`):
   * ORT's defaults for what was not set, so it also tells which options
   * this ORT knows.
   */
  effective(): Record<string, string> {
    const c = this.calls;
    const allocator = c.out("GetAllocatorWithDefaultOptions", (o) => c.fns.GetAllocatorWithDefaultOptions.call(o));
    const text = c.out(
      "GetCUDAProviderOptionsAsString",
      (o) => c.fns.GetCUDAProviderOptionsAsString.call(this.handle, allocator, o),
    );
    const joined = c.memory.string(text);
    c.check("AllocatorFree", c.fns.AllocatorFree.call(allocator, text));
    const out: Record<string, string> = {};
    for (const pair of joined.split(";")) {
      const at = pair.indexOf("=");
      if (at > 0) out[pair.slice(0, at)] = pair.slice(at + 1);
    }
    return out;
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseCUDAProviderOptions.call(handle);
  }
}

/** What {@link OrtEnv.tensorRtProviderOptions} sets (TensorRT EP option names). */
export interface TensorRtProviderInit {
  /** `device_id`. */
  deviceId: number;
  /** `user_compute_stream`; also sets `has_user_compute_stream`. */
  userComputeStream?: bigint;
  /** `trt_fp16_enable`. */
  fp16?: boolean;
  /** `trt_engine_cache_enable` and `trt_engine_cache_path`. */
  engineCachePath?: string;
  /** Further raw options. */
  extra?: Record<string, string>;
}

/** `OrtTensorRTProviderOptionsV2`. */
export class TensorRtProviderOptions extends Handle {
  /** The options as given to ORT. */
  readonly values: Record<string, string>;

  private constructor(calls: Calls, handle: bigint, values: Record<string, string>) {
    super(calls, handle);
    this.values = values;
  }

  /** Use {@link OrtEnv.tensorRtProviderOptions}. */
  static create(calls: Calls, init: TensorRtProviderInit): TensorRtProviderOptions {
    const values: Record<string, string> = { device_id: String(init.deviceId) };
    if (init.fp16 !== undefined) values.trt_fp16_enable = flag(init.fp16);
    if (init.engineCachePath !== undefined) {
      values.trt_engine_cache_enable = "1";
      values.trt_engine_cache_path = init.engineCachePath;
    }
    if (init.userComputeStream !== undefined) values.has_user_compute_stream = "1";
    Object.assign(values, init.extra);
    const handle = calls.out("CreateTensorRTProviderOptions", (o) => calls.fns.CreateTensorRTProviderOptions.call(o));
    const options = new TensorRtProviderOptions(calls, handle, values);
    try {
      const keep: unknown[] = [];
      const keys = calls.stringArray(Object.keys(values), keep);
      const vals = calls.stringArray(Object.values(values), keep);
      calls.check(
        "UpdateTensorRTProviderOptions",
        calls.fns.UpdateTensorRTProviderOptions.call(handle, keys, vals, BigInt(keys.length)),
      );
      if (init.userComputeStream !== undefined) {
        calls.check(
          "UpdateTensorRTProviderOptionsWithValue",
          calls.fns.UpdateTensorRTProviderOptionsWithValue.call(
            handle,
            cString("user_compute_stream"),
            init.userComputeStream,
          ),
        );
      }
      return options;
    } catch (error) {
      options.close();
      throw error;
    }
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseTensorRTProviderOptions.call(handle);
  }
}

/** `OrtMemoryInfo`. */
export class MemoryInfo extends Handle {
  private constructor(calls: Calls, handle: bigint, readonly name: string, readonly device: number) {
    super(calls, handle);
  }

  /** CPU memory, device allocator, default memory type. */
  static cpu(calls: Calls): MemoryInfo {
    const h = calls.out("CreateCpuMemoryInfo", (o) => calls.fns.CreateCpuMemoryInfo.call(0, memType.default, o));
    return new MemoryInfo(calls, h, "Cpu", 0);
  }

  /** `CreateMemoryInfo(name, OrtDeviceAllocator, device, type)`; pinned memory is `OrtMemTypeCPUOutput`. */
  static create(calls: Calls, name: string, device: number): MemoryInfo {
    const type = name === "CudaPinned" ? memType.cpuOutput : memType.default;
    const h = calls.out("CreateMemoryInfo", (o) => calls.fns.CreateMemoryInfo.call(cString(name), 0, device, type, o));
    return new MemoryInfo(calls, h, name, device);
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseMemoryInfo.call(handle);
  }
}

/** Element type and dimensions of a tensor. */
export interface TensorShape {
  type: ElementType | `onnx:${number}`;
  dims: number[];
}

/** An `OrtValue` tensor. Values from ORT (outputs) own their memory; values over caller memory keep it alive. */
export class Value extends Handle {
  #keep: unknown[];

  private constructor(calls: Calls, handle: bigint, keep: unknown[]) {
    super(calls, handle);
    this.#keep = keep;
  }

  /** Wraps an `OrtValue*` this object now owns. */
  static wrap(calls: Calls, handle: bigint, keep: unknown[]): Value {
    return new Value(calls, handle, keep);
  }

  /** Element type and dimensions. */
  shape(): TensorShape {
    const c = this.calls;
    const info = c.out("GetTensorTypeAndShape", (o) => c.fns.GetTensorTypeAndShape.call(this.handle, o));
    try {
      return readShape(c, info, false).shape;
    } finally {
      c.fns.ReleaseTensorTypeAndShapeInfo.call(info);
    }
  }

  /** The address of the tensor's data (host or device, as the value's memory info says). */
  dataAddress(): bigint {
    return this.calls.out("GetTensorMutableData", (o) => this.calls.fns.GetTensorMutableData.call(this.handle, o));
  }

  /** Bytes of the tensor's data. */
  byteLength(): number {
    return Number(
      this.calls.out("GetTensorSizeInBytes", (o) => this.calls.fns.GetTensorSizeInBytes.call(this.handle, o)),
    );
  }

  /**
   * A copy of a host tensor's elements (CPU or pinned memory); `shape` is
   * {@link shape}'s answer where the caller has it already.
   * @throws {OrtError} for element types this binding does not read (strings).
   */
  read(shape: TensorShape = this.shape()): ElementArray<ElementType> {
    const { type, dims } = shape;
    if (!(type in elementTypes)) throw new OrtError("Value.read", 9, `element type ${type} is not supported`);
    const t = elementTypes[type as ElementType];
    const count = dims.reduce((a, b) => a * b, 1);
    const out = new t.array(new ArrayBuffer(count * t.bytes)) as ElementArray<ElementType>;
    this.calls.memory.read(this.dataAddress(), out);
    return out;
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseValue.call(handle);
    this.#keep.length = 0;
  }
}

function readShape(c: Calls, info: bigint, symbolic: boolean): { shape: TensorShape; symbolic: string[] } {
  c.check("GetTensorElementType", c.fns.GetTensorElementType.call(info, c.int));
  const type = c.int[0];
  const count = Number(c.out("GetDimensionsCount", (o) => c.fns.GetDimensionsCount.call(info, o)));
  const dims = new BigInt64Array(new ArrayBuffer(Math.max(count, 1) * 8), 0, count);
  c.check("GetDimensions", c.fns.GetDimensions.call(info, dims, BigInt(count)));
  const names: string[] = [];
  if (symbolic) {
    const pointers = new BigUint64Array(new ArrayBuffer(Math.max(count, 1) * 8), 0, count);
    c.check("GetSymbolicDimensions", c.fns.GetSymbolicDimensions.call(info, pointers, BigInt(count)));
    for (const p of pointers) names.push(c.memory.string(p));
  }
  return { shape: { type: elementTypeName(type), dims: Array.from(dims, Number) }, symbolic: names };
}

/** A model input or output as the session declares it. */
export interface ValueMetadata {
  name: string;
  /** False for sequences, maps and optionals; then `type` is `non-tensor` and `shape` is empty. */
  isTensor: boolean;
  type: ElementType | `onnx:${number}` | "non-tensor";
  /** Dimensions: a number when fixed, the symbolic name (or `""`) when dynamic. */
  shape: (number | string)[];
}

/** Options of {@link Session.run}. */
export interface RunCallOptions {
  /** Outputs to compute, all by default. */
  outputs?: string[];
  runOptions?: RunOptions;
}

/** `OrtSession`: names, metadata, `Run`, IO binding and profiling. */
export class Session extends Handle {
  readonly inputs: ValueMetadata[];
  readonly outputs: ValueMetadata[];
  // The names as C strings in native memory, made once so that Run needs no pointer operations (and so that a
  // nonblocking Run reads nothing on the V8 heap); freed with the session.
  readonly #inputNames: Map<string, bigint>;
  readonly #outputNames: Map<string, bigint>;

  private constructor(
    calls: Calls,
    handle: bigint,
    inputs: ValueMetadata[],
    outputs: ValueMetadata[],
  ) {
    super(calls, handle);
    this.inputs = inputs;
    this.outputs = outputs;
    const addresses = (list: ValueMetadata[]) => new Map(list.map((m) => [m.name, calls.memory.cString(m.name)]));
    this.#inputNames = addresses(inputs);
    this.#outputNames = addresses(outputs);
  }

  /** Takes ownership of an `OrtSession*` and reads its inputs and outputs. */
  static wrap(calls: Calls, handle: bigint): Session {
    try {
      return new Session(calls, handle, describe(calls, handle, "input"), describe(calls, handle, "output"));
    } catch (error) {
      calls.fns.ReleaseSession.call(handle);
      throw error;
    }
  }

  /** Input names in model order. */
  get inputNames(): string[] {
    return this.inputs.map((m) => m.name);
  }

  /** Output names in model order. */
  get outputNames(): string[] {
    return this.outputs.map((m) => m.name);
  }

  /**
   * `Run`: feeds the given inputs and returns the requested outputs (all by
   * default) as values the caller owns and must close.
   * @throws {OrtError} for an unknown name (`ORT_INVALID_ARGUMENT`), a wrong shape or type, or a terminated run.
   */
  run(feeds: Record<string, Value>, options?: RunCallOptions): Record<string, Value> {
    const call = this.#prepare(feeds, options);
    this.calls.check("Run", this.calls.fns.Run.call(...call.args));
    return call.wrap();
  }

  /**
   * Like {@link run}, on Deno's blocking-thread pool: the isolate's event loop
   * stays free during the run (so a timer can call {@link RunOptions.terminate}).
   * The name and value arrays ORT reads and the output array it writes live in
   * native memory for the call; the inputs should too ({@link OrtEnv.tensorCopy}),
   * so that nothing the run touches is freed if the isolate ends first.
   */
  async runAsync(feeds: Record<string, Value>, options?: RunCallOptions): Promise<Record<string, Value>> {
    const plan = this.#plan(feeds, options);
    const n = plan.inputs.length;
    const m = plan.outputNames.length;
    const memory = this.calls.memory;
    // [input names | inputs | output names | outputs], the outputs zeroed (ORT reads them as preallocated values).
    const block = memory.alloc((2 * n + 2 * m) * 8);
    try {
      memory.writeWords(block, [...plan.inputNames, ...plan.inputs, ...plan.outputNames]);
      const at = (words: number) => block + BigInt(words * 8);
      const status = await this.calls.fns.RunNonblocking.call(
        this.handle,
        options?.runOptions?.handle ?? 0n,
        at(0),
        at(n),
        BigInt(n),
        at(2 * n),
        BigInt(m),
        at(2 * n + m),
      );
      this.calls.check("Run", status);
      const outputs = memory.words(at(2 * n + m), m);
      return Object.fromEntries(plan.wanted.map((name, i) => [name, Value.wrap(this.calls, outputs[i], [])]));
    } finally {
      memory.free(block);
    }
  }

  /** The addresses of the names and inputs of a run; throws for a name the model does not have. */
  #plan(feeds: Record<string, Value>, options?: RunCallOptions) {
    const names = Object.keys(feeds);
    const inputNames = names.map((name) => {
      const address = this.#inputNames.get(name);
      if (address === undefined) {
        throw new OrtError("Run", 2, `invalid input name: '${name}' (inputs: ${this.inputNames.join(", ")})`);
      }
      return address;
    });
    const inputs = names.map((name) => feeds[name].handle);
    const wanted = options?.outputs ?? this.outputNames;
    const outputNames = wanted.map((name) => {
      const address = this.#outputNames.get(name);
      if (address === undefined) {
        throw new OrtError("Run", 2, `invalid output name: '${name}' (outputs: ${this.outputNames.join(", ")})`);
      }
      return address;
    });
    return { inputNames, inputs, outputNames, wanted };
  }

  #prepare(feeds: Record<string, Value>, options?: RunCallOptions) {
    const plan = this.#plan(feeds, options);
    const table = (values: bigint[]) => {
      const out = words(values.length);
      out.set(values);
      return out;
    };
    const outputs = words(plan.wanted.length);
    const args = [
      this.handle,
      options?.runOptions?.handle ?? 0n,
      table(plan.inputNames),
      table(plan.inputs),
      BigInt(plan.inputs.length),
      table(plan.outputNames),
      BigInt(plan.wanted.length),
      outputs,
    ] as const;
    const wrap = () => Object.fromEntries(plan.wanted.map((name, i) => [name, Value.wrap(this.calls, outputs[i], [])]));
    return { args, wrap };
  }

  /** A new IO binding on this session. */
  ioBinding(): IoBinding {
    return IoBinding.create(this.calls, this);
  }

  /**
   * Ends profiling (`SessionEndProfiling`) and returns the path of the
   * profile ORT wrote (a Chrome trace JSON whose node events name their provider).
   */
  endProfiling(): string {
    const c = this.calls;
    const allocator = c.out("GetAllocatorWithDefaultOptions", (o) => c.fns.GetAllocatorWithDefaultOptions.call(o));
    const path = c.out("SessionEndProfiling", (o) => c.fns.SessionEndProfiling.call(this.handle, allocator, o));
    const text = c.memory.string(path);
    c.check("AllocatorFree", c.fns.AllocatorFree.call(allocator, path));
    return text;
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseSession.call(handle);
    for (const address of [...this.#inputNames.values(), ...this.#outputNames.values()]) {
      this.calls.memory.free(address);
    }
  }
}

function describe(c: Calls, session: bigint, kind: "input" | "output"): ValueMetadata[] {
  const f = c.fns;
  const allocator = c.out("GetAllocatorWithDefaultOptions", (o) => f.GetAllocatorWithDefaultOptions.call(o));
  const count = Number(
    c.out(
      `SessionGet${kind === "input" ? "Input" : "Output"}Count`,
      (o) => kind === "input" ? f.SessionGetInputCount.call(session, o) : f.SessionGetOutputCount.call(session, o),
    ),
  );
  const list: ValueMetadata[] = [];
  for (let i = 0; i < count; i++) {
    const index = BigInt(i);
    const namePtr = c.out(
      "SessionGetName",
      (o) =>
        kind === "input"
          ? f.SessionGetInputName.call(session, index, allocator, o)
          : f.SessionGetOutputName.call(session, index, allocator, o),
    );
    const name = c.memory.string(namePtr);
    c.check("AllocatorFree", f.AllocatorFree.call(allocator, namePtr));
    const typeInfo = c.out(
      "SessionGetTypeInfo",
      (o) =>
        kind === "input"
          ? f.SessionGetInputTypeInfo.call(session, index, o)
          : f.SessionGetOutputTypeInfo.call(session, index, o),
    );
    try {
      const onnxType = new Int32Array(1);
      c.check("GetOnnxTypeFromTypeInfo", f.GetOnnxTypeFromTypeInfo.call(typeInfo, onnxType));
      if (onnxType[0] !== 1) {
        list.push({ name, isTensor: false, type: "non-tensor", shape: [] });
        continue;
      }
      // The tensor info belongs to the type info: it is not released on its own.
      const tensorInfo = c.out("CastTypeInfoToTensorInfo", (o) => f.CastTypeInfoToTensorInfo.call(typeInfo, o));
      const { shape, symbolic } = readShape(c, tensorInfo, true);
      list.push({
        name,
        isTensor: true,
        type: shape.type,
        shape: shape.dims.map((d, j) => (d >= 0 ? d : symbolic[j])),
      });
    } finally {
      f.ReleaseTypeInfo.call(typeInfo);
    }
  }
  return list;
}

/** `OrtRunOptions`: terminate flag and run config entries such as `gpu_graph_id`. */
export class RunOptions extends Handle {
  /** Use {@link OrtEnv.runOptions}. */
  static create(calls: Calls): RunOptions {
    return new RunOptions(calls, calls.out("CreateRunOptions", (o) => calls.fns.CreateRunOptions.call(o)));
  }

  /** `RunOptionsSetTerminate`: runs with these options stop as soon as ORT checks the flag, and fail. */
  terminate(): void {
    this.calls.check("RunOptionsSetTerminate", this.calls.fns.RunOptionsSetTerminate.call(this.handle));
  }

  /** `RunOptionsSetRunLogSeverityLevel`: the lowest severity ORT logs for runs with these options. */
  logSeverity(level: keyof typeof loggingLevel): void {
    this.calls.check(
      "RunOptionsSetRunLogSeverityLevel",
      this.calls.fns.RunOptionsSetRunLogSeverityLevel.call(this.handle, loggingLevel[level]),
    );
  }

  /** `RunOptionsUnsetTerminate`. */
  resume(): void {
    this.calls.check("RunOptionsUnsetTerminate", this.calls.fns.RunOptionsUnsetTerminate.call(this.handle));
  }

  /** `AddRunConfigEntry(key, value)`, e.g. `gpu_graph_id`. */
  config(key: string, value: string): void {
    this.calls.check(
      "AddRunConfigEntry",
      this.calls.fns.AddRunConfigEntry.call(this.handle, cString(key), cString(value)),
    );
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseRunOptions.call(handle);
  }
}

/** `OrtIoBinding`: inputs and outputs bound once, runs without per-run name lookups or output copies. */
export class IoBinding extends Handle {
  readonly #session: Session;
  readonly #names = new Map<string, Uint8Array>();
  readonly #bound = new Map<string, Value>();

  private constructor(calls: Calls, handle: bigint, session: Session) {
    super(calls, handle);
    this.#session = session;
  }

  /** Use {@link Session.ioBinding}. */
  static create(calls: Calls, session: Session): IoBinding {
    const h = calls.out("CreateIoBinding", (o) => calls.fns.CreateIoBinding.call(session.handle, o));
    return new IoBinding(calls, h, session);
  }

  #name(name: string): Uint8Array {
    let c = this.#names.get(name);
    if (!c) {
      c = cString(name);
      this.#names.set(name, c);
    }
    return c;
  }

  /** Binds `value` to input `name`; the binding keeps it referenced until rebound or closed. */
  bindInput(name: string, value: Value): void {
    this.calls.check("BindInput", this.calls.fns.BindInput.call(this.handle, this.#name(name), value.handle));
    this.#bound.set(`in:${name}`, value);
  }

  /** Binds output `name` to a preallocated `value`. */
  bindOutput(name: string, value: Value): void {
    this.calls.check("BindOutput", this.calls.fns.BindOutput.call(this.handle, this.#name(name), value.handle));
    this.#bound.set(`out:${name}`, value);
  }

  /** Binds output `name` to memory that ORT allocates per run on the device `memory` describes. */
  bindOutputToDevice(name: string, memory: MemoryInfo): void {
    this.calls.check(
      "BindOutputToDevice",
      this.calls.fns.BindOutputToDevice.call(this.handle, this.#name(name), memory.handle),
    );
  }

  /** `RunWithBinding`. */
  run(runOptions?: RunOptions): void {
    this.calls.check(
      "RunWithBinding",
      this.calls.fns.RunWithBinding.call(this.#session.handle, runOptions?.handle ?? 0n, this.handle),
    );
  }

  /** `RunWithBinding` on Deno's blocking-thread pool. */
  async runAsync(runOptions?: RunOptions): Promise<void> {
    this.calls.check(
      "RunWithBinding",
      await this.calls.fns.RunWithBindingNonblocking.call(this.#session.handle, runOptions?.handle ?? 0n, this.handle),
    );
  }

  /** `GetBoundOutputValues`: the outputs of the last run, in binding order, owned by the caller. */
  outputs(): Value[] {
    const c = this.calls;
    const allocator = c.out("GetAllocatorWithDefaultOptions", (o) => c.fns.GetAllocatorWithDefaultOptions.call(o));
    const count = new BigUint64Array(1);
    const array = c.out(
      "GetBoundOutputValues",
      (o) => c.fns.GetBoundOutputValues.call(this.handle, allocator, o, count),
    );
    if (array === 0n) return [];
    const handles = c.memory.words(array, Number(count[0]));
    c.check("AllocatorFree", c.fns.AllocatorFree.call(allocator, array));
    return [...handles].map((h) => Value.wrap(c, h, []));
  }

  /** Unbinds all inputs. */
  clearInputs(): void {
    this.calls.fns.ClearBoundInputs.call(this.handle);
    for (const key of [...this.#bound.keys()]) if (key.startsWith("in:")) this.#bound.delete(key);
  }

  /** Unbinds all outputs. */
  clearOutputs(): void {
    this.calls.fns.ClearBoundOutputs.call(this.handle);
    for (const key of [...this.#bound.keys()]) if (key.startsWith("out:")) this.#bound.delete(key);
  }

  protected release(handle: bigint): void {
    this.calls.fns.ReleaseIoBinding.call(handle);
    this.#bound.clear();
  }
}

export type { Calls };
