/**
 * What the sections of `gpu_perf_probe.ts` share: the probe's context (ORT,
 * the lane or its CPU stand-in), memory and copies behind one interface,
 * generated models, reference outputs, timing by stages, and the two ways a
 * bound run moves its data, written out call by call so that each stage is
 * timed on its own:
 *
 * - {@link LegacyPipeline}: what `NativeSession` does with `staging: "ort"`.
 * - {@link FastPipeline}: what it does with `staging: "lane"`.
 *
 * On a machine without a GPU (or with `--dry-run`) "pinned" and "device"
 * memory are `malloc`ed host memory and copies are `memcpy`, so every
 * pipeline runs on the CPU provider too.
 * @module
 */
import { fileURLToPath } from "node:url";
import { Tensor } from "onnxruntime-common";
import { type CudaDriver, Lane, openCudaDriver } from "../native/mod.ts";
import {
  type DeviceMemory,
  IoBinding,
  type MemoryInfo,
  NativeSession,
  type NativeSessionOptions,
  OrtEnv,
  ortLibraryPath,
  type PinnedArena,
  type PinnedHostMemory,
  type PrepackedWeights,
  type RunOptions,
  type Session,
  type SessionOptionsInit,
  type Value,
} from "../native/ort/mod.ts";
import { denseReluModel, type DenseReluOptions, identityModel } from "../native/ort/test_models.ts";
import { cudaProviderStatus } from "../src/inference/providers.ts";

export const nodeModules: string = fileURLToPath(new URL("../node_modules", import.meta.url));

/** Stage durations of one run, in µs, in the order the stages ran. */
export type StageTimes = Record<string, number>;

/** Memory and copies: the lane's (CUDA) or their host stand-in. */
export interface Mem {
  kind: "cuda" | "host";
  pinned: PinnedHostMemory;
  device: Required<DeviceMemory>;
  /** `MemoryInfo` name of `device` buffers. */
  deviceName: "Cuda" | "Cpu";
  /** `MemoryInfo` name of `pinned` buffers. */
  pinnedName: "CudaPinned" | "Cpu";
  /** Queues a copy from JS (pageable) memory to the device. */
  uploadPageable(dst: bigint, src: ArrayBufferView): void;
  /** Timing events on the stream; `null` on the host. */
  events: EventPool | null;
  close(): void;
}

/** A few CUDA events, recorded by slot on the lane's stream. */
export class EventPool {
  readonly #driver: CudaDriver;
  readonly #stream: bigint;
  readonly #events: bigint[] = [];

  constructor(driver: CudaDriver, stream: bigint, count = 6) {
    this.#driver = driver;
    this.#stream = stream;
    for (let i = 0; i < count; i++) this.#events.push(driver.eventCreate(0));
  }

  /** Records event `slot` on the stream. */
  record(slot: number): void {
    this.#driver.eventRecord(this.#events[slot], this.#stream);
  }

  /** µs between two recorded, completed events. */
  elapsedUs(from: number, to: number): number {
    return this.#driver.eventElapsedMs(this.#events[from], this.#events[to]) * 1000;
  }

  close(): void {
    for (const e of this.#events) this.#driver.eventDestroy(e);
    this.#events.length = 0;
  }
}

const libc = Deno.dlopen("libc.so.6", {
  malloc: { parameters: ["usize"], result: "u64" },
  free: { parameters: ["u64"], result: "void" },
  copy: { name: "memcpy", parameters: ["u64", "u64", "usize"], result: "u64" },
  copyIn: { name: "memcpy", parameters: ["u64", "buffer", "usize"], result: "u64" },
  copyOut: { name: "memcpy", parameters: ["buffer", "u64", "usize"], result: "u64" },
  getpid: { parameters: [], result: "i32" },
  gettid: { parameters: [], result: "i32", optional: true },
  gettidNonblocking: { name: "gettid", parameters: [], result: "i32", nonblocking: true, optional: true },
  usleepNonblocking: { name: "usleep", parameters: ["u32"], result: "i32", nonblocking: true },
});

/** libc calls the sections use directly (a plain FFI call, thread ids, a sleep on the blocking pool). */
export const host = {
  /** A plain Deno FFI call that does almost nothing: the floor of an FFI call. */
  getpid: (): number => libc.symbols.getpid(),
  /** The calling thread's id; -1 where libc has no `gettid`. */
  gettid: (): number => libc.symbols.gettid?.() ?? -1,
  /** The id of the blocking-pool thread that answers. */
  gettidOnPool: async (): Promise<number> => (await libc.symbols.gettidNonblocking?.()) ?? -1,
  /** Sleeps `us` on a blocking-pool thread (keeps that thread busy). */
  sleepOnPool: async (us: number): Promise<void> => void (await libc.symbols.usleepNonblocking(us)),
  malloc: (bytes: number): bigint => BigInt(libc.symbols.malloc(BigInt(bytes))),
  free: (address: bigint): void => libc.symbols.free(address),
};

function viewBytes(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Host memory standing in for pinned and device memory (the CPU fallback). */
function hostMem(): Mem {
  const live = new Set<bigint>();
  const alloc = (bytes: number) => {
    const address = host.malloc(Math.max(bytes, 1));
    live.add(address);
    return address;
  };
  const free = (address: bigint) => {
    if (live.delete(address)) host.free(address);
  };
  return {
    kind: "host",
    pinned: { alloc, free },
    device: {
      alloc,
      free,
      upload: (dst, src) => void libc.symbols.copyIn(dst, viewBytes(src), BigInt(src.byteLength)),
      download: (dst, src) => void libc.symbols.copyOut(viewBytes(dst), src, BigInt(dst.byteLength)),
      uploadFrom: (dst, src, bytes) => void libc.symbols.copy(dst, src, BigInt(bytes)),
      downloadTo: (dst, src, bytes) => void libc.symbols.copy(dst, src, BigInt(bytes)),
      copyOnDevice: (dst, src, bytes) => void libc.symbols.copy(dst, src, BigInt(bytes)),
      synchronize: () => {},
    },
    deviceName: "Cpu",
    pinnedName: "Cpu",
    uploadPageable: (dst, src) => void libc.symbols.copyIn(dst, viewBytes(src), BigInt(src.byteLength)),
    events: null,
    close: () => {
      for (const address of live) host.free(address);
      live.clear();
    },
  };
}

function laneMem(lane: Lane): Mem {
  const events = new EventPool(lane.driver, lane.stream);
  return {
    kind: "cuda",
    pinned: lane.pinnedMemory(),
    device: lane.deviceMemory(),
    deviceName: "Cuda",
    pinnedName: "CudaPinned",
    uploadPageable: (dst, src) => lane.driver.copyToDevice(dst, src, lane.stream),
    events,
    close: () => events.close(),
  };
}

/** What every section gets. */
export interface ProbeContext {
  section: string;
  /** Time budget of one timed case, ms. */
  caseMs: number;
  /** Epoch ms after which the section starts nothing new. */
  deadline: number;
  dryRun: boolean;
  /** The MLP: 8×1024 on the GPU host, smaller in a dry run. */
  shape: { layers: number; width: number };
  batches: number[];
  env: OrtEnv;
  /** The lane, or `null` on the CPU fallback. */
  gpu: { driver: CudaDriver; lane: Lane } | null;
  /** Why there is no GPU (`null` when there is one). */
  noGpu: string | null;
  mem: Mem;
  dir: string;
  close(): Promise<void>;
}

/** Opens ORT and, where there is a GPU and ORT's CUDA provider, a lane on device 0. */
export async function openContext(
  options: { section: string; seconds: number; deadline: number; dryRun: boolean },
): Promise<ProbeContext> {
  const env = OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
  let gpu: ProbeContext["gpu"] = null;
  let noGpu: string | null = "dry run";
  if (!options.dryRun) {
    const opened = openCudaDriver();
    const provider = cudaProviderStatus(nodeModules);
    if (!opened.ok) noGpu = opened.reason;
    else if (opened.driver.deviceCount() === 0) noGpu = "the driver sees no device";
    else if (!provider.ok) noGpu = provider.reason;
    else {
      gpu = { driver: opened.driver, lane: Lane.open(opened.driver, 0) };
      noGpu = null;
    }
  }
  const mem = gpu ? laneMem(gpu.lane) : hostMem();
  const dir = await Deno.makeTempDir({ prefix: "isolane-gpu-perf-" });
  const small = options.dryRun || !gpu;
  return {
    section: options.section,
    caseMs: options.seconds * 1000,
    deadline: options.deadline,
    dryRun: options.dryRun,
    shape: small ? { layers: 2, width: 128 } : { layers: 8, width: 1024 },
    batches: [1, 64, 256],
    env,
    gpu,
    noGpu,
    mem,
    dir,
    close: async () => {
      mem.close();
      gpu?.lane.close();
      env.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Prints one result as a JSON line (the parent collects them). */
export function emit(ctx: { section: string }, record: Record<string, unknown>): void {
  console.log(JSON.stringify({ section: ctx.section, ...record }, (_k, v) => (typeof v === "bigint" ? hex(v) : v)));
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/** The message of an error, with ORT's code name where it is an `OrtError`. */
export function describeError(error: unknown): { error: string; code?: string } {
  const e = error as { message?: string; codeName?: string };
  return { error: String(e?.message ?? error).slice(0, 2000), ...(e?.codeName ? { code: e.codeName } : {}) };
}

/** Runs `fn`, turning a throw into an `{case, error}` line: one failed experiment never ends the section. */
export async function attempt(
  ctx: ProbeContext,
  name: string,
  fn: () => Promise<void> | void,
  extra: Record<string, unknown> = {},
): Promise<boolean> {
  if (Date.now() > ctx.deadline) {
    emit(ctx, { case: name, ...extra, skipped: "past the section's deadline" });
    return false;
  }
  try {
    await fn();
    return true;
  } catch (error) {
    emit(ctx, { case: name, ...extra, ...describeError(error) });
    return false;
  }
}

/** Summary of a series of stage timings: median, p10, p90 per stage, µs (one decimal). */
export interface Sampled {
  runs: number;
  median: StageTimes;
  p10: StageTimes;
  p90: StageTimes;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** Summarises samples of stage timings. */
export function summarise(samples: StageTimes[]): Sampled {
  const keys = samples.length > 0 ? Object.keys(samples[0]) : [];
  const by = (q: number) =>
    Object.fromEntries(keys.map((k) => {
      const v = samples.map((s) => s[k]).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
      return [k, v.length ? round1(quantile(v, q)) : NaN];
    }));
  return { runs: samples.length, median: by(0.5), p10: by(0.1), p90: by(0.9) };
}

/** Options of {@link sample}. */
export interface SampleOptions {
  budgetMs?: number;
  warmup?: number;
  minRuns?: number;
  maxRuns?: number;
}

/**
 * Runs `fn` `warmup` times, then as often as the budget allows (at least
 * `minRuns`, at most `maxRuns`), and summarises its stage timings.
 */
export async function sample(
  ctx: ProbeContext,
  fn: () => StageTimes | Promise<StageTimes>,
  options: SampleOptions = {},
): Promise<Sampled> {
  for (let i = 0; i < (options.warmup ?? 5); i++) await fn();
  const samples: StageTimes[] = [];
  const budget = Math.min(options.budgetMs ?? ctx.caseMs, Math.max(0, ctx.deadline - Date.now() - 2000));
  const end = performance.now() + budget;
  const min = options.minRuns ?? 5;
  const max = options.maxRuns ?? 5000;
  while ((samples.length < min || performance.now() < end) && samples.length < max) samples.push(await fn());
  return summarise(samples);
}

/** Times a call (`fn` returns nothing) as one stage `us`. */
export async function timeCall(
  ctx: ProbeContext,
  fn: () => unknown,
  options: SampleOptions = {},
): Promise<Sampled> {
  return await sample(ctx, async () => {
    const t0 = performance.now();
    await fn();
    return { us: (performance.now() - t0) * 1000 };
  }, options);
}

/** The stage with the largest median among `stages` (all but `total` by default). */
export function dominant(s: Sampled, stages?: string[]): string {
  const keys = stages ?? Object.keys(s.median).filter((k) => k !== "total");
  return keys.reduce((a, b) => (s.median[b] > s.median[a] ? b : a), keys[0]);
}

/** A generated model. */
export interface ModelSpec {
  kind?: "mlp" | "identity";
  op?: DenseReluOptions["op"];
  float16?: boolean;
  /** Fixed batch (CUDA graphs), or dynamic. */
  batch?: number;
}

const modelPaths = new Map<string, Promise<string>>();

/** Writes the model once per context and returns its path. */
export function model(ctx: ProbeContext, spec: ModelSpec): Promise<string> {
  const { layers, width } = ctx.shape;
  const kind = spec.kind ?? "mlp";
  const batch = spec.batch ?? "batch";
  const key = `${kind}_${spec.op ?? "matmul"}_${spec.float16 ? "fp16" : "fp32"}_${batch}_${layers}x${width}`;
  let made = modelPaths.get(key);
  if (!made) {
    made = (async () => {
      const path = `${ctx.dir}/${key}.onnx`;
      const bytes = kind === "identity"
        ? identityModel({ width, batch })
        : denseReluModel({ layers, width, batch, op: spec.op, float16: spec.float16 });
      await Deno.writeFile(path, bytes);
      return path;
    })();
    modelPaths.set(key, made);
  }
  return made;
}

const inputs = new Map<string, Float32Array>();

/** A deterministic input of `batch` rows; `seed` picks one of several. */
export function input(ctx: ProbeContext, batch: number, seed = 0): Float32Array {
  const key = `${batch}/${seed}`;
  let x = inputs.get(key);
  if (!x) {
    x = Float32Array.from({ length: batch * ctx.shape.width }, (_, i) => Math.sin(seed * 3.1 + i * 0.01));
    inputs.set(key, x);
  }
  return x;
}

const references = new Map<string, Promise<Float32Array>>();

/** The fp32 CPU answer for `input(ctx, batch, seed)`. */
export function reference(ctx: ProbeContext, batch: number, seed = 0): Promise<Float32Array> {
  const key = `${batch}/${seed}`;
  let made = references.get(key);
  if (!made) {
    made = (async () => {
      const session = NativeSession.create(ctx.env, await model(ctx, {}), { provider: "cpu" });
      try {
        const x = input(ctx, batch, seed);
        return (await session.run({ x: new Tensor("float32", x, [batch, ctx.shape.width]) })).y.data as Float32Array;
      } finally {
        await session.release();
      }
    })();
    references.set(key, made);
  }
  return made;
}

/** Largest `|a - b| / (1 + |b|)`. */
export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

/** How a session is made: provider options and session options. */
export interface SessionSpec {
  model?: ModelSpec;
  tf32?: boolean;
  graph?: boolean;
  graphOptimization?: SessionOptionsInit["graphOptimization"];
  /** Intra-op threads; 1 by default, 0 for ORT's default. */
  intraOpThreads?: number;
  /** Session config entries. */
  config?: Record<string, string>;
  /** Raw CUDA provider options. */
  extra?: Record<string, string>;
  /** As the runtime's lanes set them (`kSameAsRequested`, `HEURISTIC`). */
  laneDefaults?: boolean;
  initializers?: Record<string, Value>;
  /** Share pre-packed weights through this container (`CreateSessionWithPrepackedWeightsContainer`). */
  prepacked?: PrepackedWeights;
  /** The CPU provider even where there is a GPU. */
  cpu?: boolean;
}

function cudaInit(spec: SessionSpec) {
  return {
    useTf32: spec.tf32 ?? true,
    enableCudaGraph: spec.graph ?? false,
    ...(spec.laneDefaults
      ? { arenaExtendStrategy: "kSameAsRequested" as const, cudnnConvAlgoSearch: "HEURISTIC" as const }
      : {}),
    extra: spec.extra,
  };
}

/** A bare C-API session on the lane's stream (CPU provider on the fallback), for the pipelines. */
export function rawSession(ctx: ProbeContext, path: string, spec: SessionSpec): Session {
  const intra = spec.intraOpThreads ?? 1;
  using so = ctx.env.sessionOptions({
    intraOpThreads: intra || undefined,
    interOpThreads: 1,
    graphOptimization: spec.graphOptimization ?? "all",
    config: spec.config,
  });
  if (ctx.gpu && !spec.cpu) {
    using cuda = ctx.env.cudaProviderOptions({
      deviceId: ctx.gpu.lane.device,
      userComputeStream: ctx.gpu.lane.stream,
      ...cudaInit(spec),
    });
    so.appendCuda(cuda);
  }
  for (const [name, value] of Object.entries(spec.initializers ?? {})) so.addInitializer(name, value);
  return ctx.env.session(path, so, { prepackedWeights: spec.prepacked });
}

/** A `NativeSession` as a lane makes it (placement not probed), with `staging` and `nonblocking` as asked. */
export function laneSession(
  ctx: ProbeContext,
  path: string,
  spec: SessionSpec & { staging?: "ort" | "lane"; nonblocking?: boolean; gpuGraphId?: number; arena?: PinnedArena },
): NativeSession {
  const intra = spec.intraOpThreads ?? 1;
  const base: NativeSessionOptions = {
    provider: ctx.gpu ? "cuda" : "cpu",
    intraOpThreads: intra || undefined,
    interOpThreads: 1,
    graphOptimization: spec.graphOptimization ?? "all",
    config: spec.config,
    checkPlacement: false,
    staging: spec.staging,
    nonblocking: spec.nonblocking,
    initializers: spec.initializers,
    arena: spec.arena,
    pinned: ctx.mem.pinned,
    device: ctx.mem.device,
  };
  if (!ctx.gpu) return NativeSession.create(ctx.env, path, { ...base, ioBinding: true });
  return NativeSession.create(ctx.env, path, {
    ...base,
    deviceId: ctx.gpu.lane.device,
    stream: ctx.gpu.lane.stream,
    cuda: cudaInit(spec),
    gpuGraphId: spec.graph ? (spec.gpuGraphId ?? 1) : undefined,
  });
}

/** The CUDA provider options ORT holds for `spec` (every key this ORT knows), or why not. */
export function effectiveCudaOptions(ctx: ProbeContext, spec: SessionSpec): Record<string, string> | string {
  if (!ctx.gpu) return ctx.noGpu ?? "no GPU";
  using cuda = ctx.env.cudaProviderOptions({
    deviceId: ctx.gpu.lane.device,
    userComputeStream: ctx.gpu.lane.stream,
    ...cudaInit(spec),
  });
  try {
    return cuda.effective();
  } catch (error) {
    return `GetCUDAProviderOptionsAsString failed: ${describeError(error).error}`;
  }
}

/** One device and pinned buffer pair with an ORT value over the device buffer. */
interface Buffers {
  pinned: bigint;
  device: bigint;
  bytes: number;
  value: Value;
}

/** Run options as the pipelines use them. */
function runOptions(env: OrtEnv, graph: boolean, sync: boolean): RunOptions {
  const ro = env.runOptions();
  if (graph) ro.config("gpu_graph_id", "1");
  if (!sync) ro.config("disable_synchronize_execution_providers", "1");
  return ro;
}

/**
 * `staging: "lane"`, call by call: input and output bound once to device
 * buffers; per run the input is copied into pinned staging (`fill`), the
 * copy to the device queued (`copyIn`), the run queued (`run`: ORT does not
 * wait at its end), the copy back queued (`copyOut`), one wait (`sync`), and
 * the copy into a new JS array (`read`). With events, the device's own time
 * of the copies and the run (`device.*`).
 */
export class FastPipeline implements Disposable {
  readonly #ctx: ProbeContext;
  readonly #session: Session;
  readonly #binding: IoBinding;
  readonly #ro: RunOptions;
  readonly #memory: MemoryInfo;
  readonly #in: Buffers;
  readonly #out: Buffers;
  readonly #rows: number;
  readonly #nonblocking: boolean;
  readonly #events: boolean;

  constructor(
    ctx: ProbeContext,
    session: Session,
    options: { batch: number; graph?: boolean; nonblocking?: boolean; events?: boolean },
  ) {
    this.#ctx = ctx;
    this.#session = session;
    this.#rows = options.batch;
    this.#nonblocking = options.nonblocking ?? false;
    this.#events = (options.events ?? true) && ctx.mem.events !== null;
    const bytes = options.batch * ctx.shape.width * 4;
    const dims = [options.batch, ctx.shape.width];
    this.#memory = ctx.env.memoryInfo(ctx.mem.deviceName, 0);
    const buffers = (): Buffers => {
      const pinned = ctx.mem.pinned.alloc(bytes);
      const device = ctx.mem.device.alloc(bytes);
      return { pinned, device, bytes, value: ctx.env.tensorAt("float32", device, bytes, dims, this.#memory) };
    };
    this.#in = buffers();
    this.#out = buffers();
    this.#binding = session.ioBinding();
    this.#binding.bindInput("x", this.#in.value);
    this.#binding.bindOutput("y", this.#out.value);
    this.#ro = runOptions(ctx.env, options.graph ?? false, false);
  }

  /** The output buffer's device address (for checks of what the device holds now). */
  get outputAddress(): bigint {
    return this.#out.device;
  }

  /** Bytes of the input and of the output. */
  get bytes(): number {
    return this.#in.bytes;
  }

  /** The binding and run options (for nonblocking checks that drive the run themselves). */
  get parts(): { binding: IoBinding; runOptions: RunOptions } {
    return { binding: this.#binding, runOptions: this.#ro };
  }

  /** Copies `x` into pinned staging and queues its copy to the device (for checks that run the binding themselves). */
  stageInput(x: Float32Array): void {
    this.#ctx.env.writeHost(this.#in.pinned, x);
    this.#ctx.mem.device.uploadFrom(this.#in.device, this.#in.pinned, this.#in.bytes);
  }

  /** Queues the output's copy into pinned staging, waits for the stream, and returns it in a new array. */
  finish(): Float32Array {
    const { env, mem } = this.#ctx;
    mem.device.downloadTo(this.#out.pinned, this.#out.device, this.#out.bytes);
    mem.device.synchronize();
    const y = new Float32Array(new ArrayBuffer(this.#out.bytes));
    env.readHost(this.#out.pinned, y);
    return y;
  }

  /** One run; returns the output and the stage timings (µs). */
  async run(x: Float32Array): Promise<{ y: Float32Array; times: StageTimes }> {
    const { env, mem } = this.#ctx;
    const ev = this.#events ? mem.events : null;
    const t0 = performance.now();
    env.writeHost(this.#in.pinned, x);
    const t1 = performance.now();
    ev?.record(0);
    mem.device.uploadFrom(this.#in.device, this.#in.pinned, this.#in.bytes);
    ev?.record(1);
    const t2 = performance.now();
    if (this.#nonblocking) await this.#binding.runAsync(this.#ro);
    else this.#binding.run(this.#ro);
    ev?.record(2);
    const t3 = performance.now();
    mem.device.downloadTo(this.#out.pinned, this.#out.device, this.#out.bytes);
    ev?.record(3);
    const t4 = performance.now();
    mem.device.synchronize();
    const t5 = performance.now();
    const y = new Float32Array(new ArrayBuffer(this.#out.bytes));
    env.readHost(this.#out.pinned, y);
    const t6 = performance.now();
    const times: StageTimes = {
      fill: (t1 - t0) * 1000,
      copyIn: (t2 - t1) * 1000,
      run: (t3 - t2) * 1000,
      copyOut: (t4 - t3) * 1000,
      sync: (t5 - t4) * 1000,
      read: (t6 - t5) * 1000,
      total: (t6 - t0) * 1000,
    };
    if (ev) {
      times["device.copyIn"] = ev.elapsedUs(0, 1);
      times["device.run"] = ev.elapsedUs(1, 2);
      times["device.copyOut"] = ev.elapsedUs(2, 3);
    }
    return { y, times };
  }

  /**
   * One run whose device work is held back until it is all queued (the
   * stream waits on a word in pinned memory that the host writes last), so
   * the events time the device alone. `gate.release` must be able to free
   * the stream from another thread in case ORT waits inside `Run`.
   */
  runGated(x: Float32Array, gate: Gate): { y: Float32Array; times: StageTimes } {
    const { env, mem, gpu } = this.#ctx;
    const ev = mem.events!;
    const k = gate.arm();
    env.writeHost(this.#in.pinned, x);
    if (!gpu!.driver.streamWaitValue32(gpu!.lane.stream, gate.deviceAddress, k)) {
      throw new Error("cuStreamWaitValue32 is not available in this driver");
    }
    ev.record(0);
    mem.device.uploadFrom(this.#in.device, this.#in.pinned, this.#in.bytes);
    ev.record(1);
    const t0 = performance.now();
    this.#binding.run(this.#ro);
    const t1 = performance.now();
    ev.record(2);
    mem.device.downloadTo(this.#out.pinned, this.#out.device, this.#out.bytes);
    ev.record(3);
    const releasedByWatchdog = gate.watchdogFired(k);
    gate.release(k);
    mem.device.synchronize();
    const y = new Float32Array(new ArrayBuffer(this.#out.bytes));
    env.readHost(this.#out.pinned, y);
    return {
      y,
      times: {
        hostRunEnqueue: (t1 - t0) * 1000,
        "device.copyIn": ev.elapsedUs(0, 1),
        "device.run": ev.elapsedUs(1, 2),
        "device.copyOut": ev.elapsedUs(2, 3),
        "device.total": ev.elapsedUs(0, 3),
        waitedInsideRun: releasedByWatchdog ? 1 : 0,
      },
    };
  }

  /** Rows per run. */
  get rows(): number {
    return this.#rows;
  }

  close(): void {
    this.#binding.close();
    this.#ro.close();
    for (const b of [this.#in, this.#out]) {
      b.value.close();
      this.#ctx.mem.device.free(b.device);
      this.#ctx.mem.pinned.free(b.pinned);
    }
    this.#memory.close();
    this.#session.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * `staging: "ort"`, call by call. Without a graph: the input copied into
 * pinned staging (`fill`), a value over it made and bound with the output
 * bound to pinned memory ORT allocates (`bind`), `Run` with ORT's wait at the
 * end (`run`), the output read into JS and every value released (`read`).
 * With a CUDA graph: the input copied from JS memory straight to its fixed
 * device buffer (`copyIn`, pageable), bound (`bind`), `Run` (`run`), and the
 * output copied into a new JS array with a wait (`copyOut`, pageable).
 */
export class LegacyPipeline implements Disposable {
  readonly #ctx: ProbeContext;
  readonly #session: Session;
  readonly #binding: IoBinding;
  readonly #ro: RunOptions;
  readonly #graph: boolean;
  readonly #dims: number[];
  readonly #bytes: number;
  readonly #pinnedMemory: MemoryInfo;
  readonly #deviceMemory: MemoryInfo;
  readonly #pinnedIn: bigint;
  readonly #device: { in: bigint; out: bigint; inValue: Value; outValue: Value } | null;

  constructor(ctx: ProbeContext, session: Session, options: { batch: number; graph?: boolean }) {
    this.#ctx = ctx;
    this.#session = session;
    this.#graph = options.graph ?? false;
    this.#dims = [options.batch, ctx.shape.width];
    this.#bytes = options.batch * ctx.shape.width * 4;
    this.#pinnedMemory = ctx.env.memoryInfo(ctx.mem.pinnedName, 0);
    this.#deviceMemory = ctx.env.memoryInfo(ctx.mem.deviceName, 0);
    this.#pinnedIn = ctx.mem.pinned.alloc(this.#bytes);
    this.#binding = session.ioBinding();
    this.#ro = runOptions(ctx.env, this.#graph, true);
    if (this.#graph) {
      const din = ctx.mem.device.alloc(this.#bytes);
      const dout = ctx.mem.device.alloc(this.#bytes);
      const inValue = ctx.env.tensorAt("float32", din, this.#bytes, this.#dims, this.#deviceMemory);
      const outValue = ctx.env.tensorAt("float32", dout, this.#bytes, this.#dims, this.#deviceMemory);
      this.#binding.bindOutput("y", outValue);
      this.#device = { in: din, out: dout, inValue, outValue };
    } else {
      this.#device = null;
    }
  }

  /** One run; returns the output and the stage timings (µs). */
  run(x: Float32Array): { y: Float32Array; times: StageTimes } {
    return this.#device ? this.#runGraph(x, this.#device) : this.#runBound(x);
  }

  #runBound(x: Float32Array): { y: Float32Array; times: StageTimes } {
    const { env } = this.#ctx;
    const t0 = performance.now();
    env.writeHost(this.#pinnedIn, x);
    const t1 = performance.now();
    const value = env.tensorAt("float32", this.#pinnedIn, this.#bytes, this.#dims, this.#pinnedMemory);
    this.#binding.bindInput("x", value);
    this.#binding.bindOutputToDevice("y", this.#pinnedMemory);
    const t2 = performance.now();
    this.#binding.run(this.#ro);
    const t3 = performance.now();
    const outputs = this.#binding.outputs();
    const y = outputs[0].read() as Float32Array;
    outputs[0].shape();
    for (const o of outputs) o.close();
    this.#binding.clearInputs();
    value.close();
    const t4 = performance.now();
    return {
      y,
      times: {
        fill: (t1 - t0) * 1000,
        bind: (t2 - t1) * 1000,
        run: (t3 - t2) * 1000,
        read: (t4 - t3) * 1000,
        total: (t4 - t0) * 1000,
      },
    };
  }

  #runGraph(
    x: Float32Array,
    device: { in: bigint; out: bigint; inValue: Value },
  ): { y: Float32Array; times: StageTimes } {
    const { mem } = this.#ctx;
    const t0 = performance.now();
    mem.uploadPageable(device.in, x);
    const t1 = performance.now();
    this.#binding.bindInput("x", device.inValue);
    const t2 = performance.now();
    this.#binding.run(this.#ro);
    const t3 = performance.now();
    const y = new Float32Array(this.#bytes / 4);
    mem.device.download(y, device.out);
    const t4 = performance.now();
    return {
      y,
      times: {
        copyIn: (t1 - t0) * 1000,
        bind: (t2 - t1) * 1000,
        run: (t3 - t2) * 1000,
        copyOut: (t4 - t3) * 1000,
        total: (t4 - t0) * 1000,
      },
    };
  }

  close(): void {
    this.#binding.close();
    this.#ro.close();
    if (this.#device) {
      this.#device.inValue.close();
      this.#device.outValue.close();
      this.#ctx.mem.device.free(this.#device.in);
      this.#ctx.mem.device.free(this.#device.out);
    }
    this.#ctx.mem.pinned.free(this.#pinnedIn);
    this.#pinnedMemory.close();
    this.#deviceMemory.close();
    this.#session.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const watchdogSource = `
const lib = Deno.dlopen("libc.so.6", { memcpy: { parameters: ["u64", "buffer", "usize"], result: "u64" } });
const fired = new Set();
const read = Deno.dlopen("libc.so.6", { memcpy: { parameters: ["buffer", "u64", "usize"], result: "u64" } });
self.onmessage = (event) => {
  const { address, value, delayMs, flags } = event.data;
  setTimeout(() => {
    const now = new Uint32Array(1);
    read.symbols.memcpy(now, address, 4n);
    // Never moves the word backwards: the host may have released a later value already.
    if (now[0] < value) lib.symbols.memcpy(address, new Uint32Array([value]), 4n);
    const f = new Int32Array(flags);
    if (now[0] < value) Atomics.store(f, value % f.length, value);
  }, delayMs);
};
`;

/**
 * A word in pinned memory that the lane's stream waits on
 * (`cuStreamWaitValue32`), and a Worker that writes it after a delay in case
 * the isolate's thread is stuck inside ORT (ORT waiting for the stream that
 * the gate holds).
 */
export class Gate implements Disposable {
  readonly #ctx: ProbeContext;
  readonly address: bigint;
  readonly deviceAddress: bigint;
  readonly #worker: Worker;
  readonly #flags = new SharedArrayBuffer(64 * 4);
  readonly #delayMs: number;
  #value = 0;

  constructor(ctx: ProbeContext, delayMs = 1500) {
    this.#ctx = ctx;
    this.#delayMs = delayMs;
    this.address = ctx.mem.pinned.alloc(64);
    ctx.env.writeHost(this.address, new Uint32Array(16));
    let deviceAddress = this.address;
    try {
      deviceAddress = ctx.gpu!.driver.hostDevicePointer(this.address);
    } catch {
      // Under unified addressing the host address is the device address.
    }
    this.deviceAddress = deviceAddress;
    const url = URL.createObjectURL(new Blob([watchdogSource], { type: "application/javascript" }));
    this.#worker = new Worker(url, { type: "module" });
  }

  /** The next value to wait for; the watchdog writes it after the delay unless released first. */
  arm(): number {
    this.#value++;
    this.#worker.postMessage({
      address: this.address,
      value: this.#value,
      delayMs: this.#delayMs,
      flags: this.#flags,
    });
    return this.#value;
  }

  /** Whether the watchdog has written `k` (so the host was stuck until it did). */
  watchdogFired(k: number): boolean {
    return Atomics.load(new Int32Array(this.#flags), k % 64) === k;
  }

  /** Writes `k`: the stream goes on. */
  release(k: number): void {
    this.#ctx.env.writeHost(this.address, new Uint32Array([k]));
  }

  close(): void {
    this.#worker.terminate();
    this.#ctx.mem.pinned.free(this.address);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Resident memory of this process (`VmRSS`), MiB. */
export async function rssMiB(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status");
  const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

/** Device memory in use (total − free from `cuMemGetInfo`, the whole device), MiB; `null` without a GPU. */
export function gpuUsedMiB(ctx: ProbeContext): number | null {
  if (!ctx.gpu) return null;
  const { freeBytes, totalBytes } = ctx.gpu.driver.memoryInfo();
  return Math.round(((totalBytes - freeBytes) / 1048576) * 10) / 10;
}

/** A `Tensor` of `x` as `[rows, width]`. */
export function tensorOf(ctx: ProbeContext, x: Float32Array): Tensor {
  return new Tensor("float32", x, [x.length / ctx.shape.width, ctx.shape.width]);
}

export { IoBinding };
