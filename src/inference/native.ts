/**
 * Sessions through ONNX Runtime's C API (`native/ort/`).
 *
 * CUDA lanes: on the lane's own stream (`user_compute_stream`), with IO
 * binding staged in the lane's pinned host memory, the function's GPU arena
 * limit, TF32 and CUDA graphs as the function asks, and no silent CPU
 * fallback for compute nodes. onnxruntime-node's session takes only a device
 * id, so its kernels would run on streams of ORT's own.
 *
 * CPU lanes ({@link createCpuSession}): every run goes to Deno's
 * blocking-thread pool, so the isolate's event loop stays free while ORT
 * works. When the run's request aborts (its deadline, or its client gone),
 * the isolate sets ORT's terminate flag on that run's own run options; ORT
 * stops before its next node, the job is answered, and the isolate is kept.
 * onnxruntime-node's `run` blocks the isolate's thread for the whole run, so
 * the abort was not even read until the run ended. Models whose inputs or
 * outputs the binding does not carry (string tensors, sequences, maps) load
 * through onnxruntime-node instead, and their runs cannot be stopped; so does
 * every CPU model where `libffi.so.8` is missing (the binding's calls would
 * need the ffi permission that isolates drop).
 * @module
 */
import { fileURLToPath } from "node:url";
import type { InferenceSession, Tensor } from "onnxruntime-common";
import {
  type ElementType,
  elementTypes,
  isTerminatedRun,
  NativeSession,
  type NativeSessionOptions,
  OrtEnv,
  ortLibraryPath,
  PinnedArena,
  RunAbortedError,
  sealOrtLibrary,
  type Value,
} from "../../native/ort/mod.ts";
import { hex, type Lane } from "../../native/mod.ts";
import { refuseDeviceTensors } from "../../native/ort/device_tensor.ts";
import type { LanePlan, SharedWeights, StagingLayout, WeightsInfo } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { checkModelFiles } from "./external_data.ts";
import { assertModelAllowed } from "./model_access.ts";
import type { Ort } from "./ort.ts";
import { createSession, invalidModel, type SessionOptions } from "./session.ts";
import { currentRunScope } from "./run_scope.ts";
import { readModelWeights } from "./weights.ts";
import { modelOps } from "./_onnx_ops.ts";

const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));
const MiB = 1024 * 1024;

// Module-private: whoever holds the environment can open a session on any file.
let env: OrtEnv | undefined;

/**
 * Opens the process's ORT environment through the C API when the isolate has
 * models to load (`open`; one reference per isolate, the library, libffi and
 * libc bound once), then seals the binding either way: no other code in the
 * isolate can open it again, and this module keeps the environment to
 * itself, since whoever holds it can open any file and read and write
 * memory. Call before the ffi permission is dropped: every later call goes
 * through symbols bound here. An isolate without models opens nothing (an
 * environment costs some 17 MB resident).
 * @throws {Error} when the library or libffi cannot be opened.
 */
export function openNativeOrt({ open }: { open: boolean }): void {
  if (open) env ??= OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
  else if (env) {
    // Opened ahead by a spare ({@link preopenNativeOrt}) for a function that turned out to have no models.
    env.close();
    env = undefined;
  }
  sealOrtLibrary();
}

/**
 * Closes the environment of an isolate that opened it before it knew it has no models (a spare that inspected its
 * module), after the ffi drop: through the bound symbols, so a failure only leaves it open.
 */
export function closeUnusedNativeOrt(): void {
  try {
    env?.close();
  } catch { /* left open: some 17 MB until the isolate ends */ }
  env = undefined;
}

/**
 * Opens the ORT environment ahead of an init, without sealing the binding: a spare isolate's warm-up, before any
 * user code runs (`src/pool/spare.ts`). The init's {@link openNativeOrt} then finds it open, or closes it.
 * @throws {Error} when the library or libffi cannot be opened (the init then fails with the same reason).
 */
export function preopenNativeOrt(): void {
  env ??= OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
}

/**
 * Maps the lane's pinned staging for a `runModel` model as JS memory: one
 * slot per input and output of `layout`. Call before the ffi permission is
 * dropped; close it after the session that stages in it is released.
 * @throws {CudaError} when the pinned memory cannot be had.
 */
export function mapStaging(bound: Lane, layout: StagingLayout): PinnedArena {
  return PinnedArena.map(bound.pinnedMemory(), layout);
}

/** What a lane's session needs besides the model. */
export interface NativeLaneOptions {
  lane: Extract<LanePlan, { kind: "cuda" }>;
  /** The bound lane: its stream and its driver's pinned host memory. */
  bound: Lane;
  threads: number;
  /** The folder the model's files must stay in. */
  root: string;
  fn: string;
  model: string;
  /** ORT's GPU arena limit in MiB; 0 is none. */
  gpuMemoryMb: number;
  tf32: boolean;
  cudaGraph: boolean;
  /**
   * Sessions kept per model, each for one set of input shapes (the function's `shapeSessions`; 1: one session for
   * every shape, as ORT has it).
   */
  shapeSessions?: number;
  /** Pinned staging mapped as JS memory, for the model of a `runModel` handler (`NativeSession.runStaged`). */
  arena?: PinnedArena;
  /** Called after a session per input shapes is created (with `shapeSessions` above 1), with the placement then. */
  onShapeSession?: (placement: SessionPlacement) => void;
  /** The model's weights in device memory shared by the device's lanes (`AddInitializer` over them). */
  weights?: SharedWeights;
}

/** A lane's session, whether it computes from the device's shared weights, and its release. */
export interface LaneSession {
  /** The first session (the one `runModel` handlers stage in, and whose placement is reported). */
  session: NativeSession;
  /** What handlers run: the session, or with `shapeSessions` above 1 the session for each run's input shapes. */
  facade: InferenceSession;
  /** Absent when no shared weights were offered. */
  weights?: WeightsInfo;
  /**
   * Where ORT placed the nodes of the sessions that serve now ({@link placementOf}): with `shapeSessions` above 1, of
   * each session per input shapes (its key as {@link ShapeSessions.keyOf} gives it), once one exists; else of the
   * first session.
   */
  placement(): SessionPlacement;
  /** Releases the session, then its values over the shared weights (the weights stay: the host frees them). */
  release(): Promise<void>;
}

/**
 * Nodes per provider of the session that serves (`placement`), and with sessions per input shapes, of each
 * (`shapes`, by shape key, least recently used first). `placement` is then the most recently used one's.
 */
export interface SessionPlacement {
  placement?: Record<string, number>;
  shapes?: Record<string, Record<string, number>>;
}

const weightAlignment = 256;

/**
 * Uploads a model's weights (its initializers of at least 64 KiB) into one
 * block of device memory (`cuMemAlloc` in the device's primary context, not
 * ordered on a stream: every lane of the device reads it), to share with the
 * device's other lanes. `undefined` when the model has no weights that
 * large.
 * @throws {IsolaneError} `function_unavailable` when a file leaves the folder; a `CudaError` when the device is out
 * of memory.
 */
export async function uploadWeights(
  path: string,
  options: Pick<NativeLaneOptions, "bound" | "root" | "fn" | "model">,
): Promise<SharedWeights | undefined> {
  assertModelAllowed(path);
  await checkModelFiles(path, options.root, { fn: options.fn, model: options.model });
  const weights = await readModelWeights(path);
  if (weights.length === 0) return undefined;
  let total = 0;
  const tensors = weights.map((w) => {
    const placed = { name: w.name, type: w.type, dims: w.dims, offset: total, bytes: w.bytes.byteLength };
    total += Math.ceil(w.bytes.byteLength / weightAlignment) * weightAlignment;
    return placed;
  });
  const { driver, stream, device } = options.bound;
  const address = driver.alloc(total);
  try {
    weights.forEach((w, i) => driver.copyToDevice(address + BigInt(tensors[i].offset), w.bytes, stream));
    driver.streamSynchronize(stream);
  } catch (error) {
    driver.free(address);
    throw error;
  }
  return { device, address: hex(address), bytes: total, tensors };
}

/** Frees a block from {@link uploadWeights} that no lane uses (its lane failed before it was ready, or ORT refused it). */
export function freeWeights(weights: SharedWeights, bound: Lane): void {
  bound.driver.free(BigInt(weights.address));
}

/** Values over the shared block, one per weight, by initializer name. */
function weightValues(weights: SharedWeights): Record<string, Value> {
  const memory = env!.memoryInfo("Cuda", weights.device);
  const values: Record<string, Value> = {};
  try {
    for (const t of weights.tensors) {
      const address = BigInt(weights.address) + BigInt(t.offset);
      values[t.name] = env!.tensorAt(t.type as ElementType, address, t.bytes, t.dims, memory);
    }
    return values;
  } catch (error) {
    for (const value of Object.values(values)) value.close();
    throw error;
  } finally {
    // A tensor keeps a copy of its memory info.
    memory.close();
  }
}

/**
 * A session of a CUDA lane. Its `placement` says where ORT put each node.
 * With `weights`, ORT takes the model's initializers from the shared block
 * (`AddInitializer`) instead of a copy of its own; if ORT refuses them, the
 * session loads its own copy and `weights.reason` says why.
 * @throws {IsolaneError} `function_unavailable` with ORT's reason when the model or the provider cannot load, or
 * when a compute node would run on the CPU.
 */
export async function createLaneSession(path: string, options: NativeLaneOptions): Promise<LaneSession> {
  assertModelAllowed(path);
  if (!env) throw new Error("openNativeOrt() was not called before the ffi permission was dropped");
  await checkModelFiles(path, options.root, { fn: options.fn, model: options.model });
  const laneSession = (
    initializers: Record<string, Value>,
    weights?: WeightsInfo,
    after?: () => void,
  ): LaneSession => {
    const perShape = (options.shapeSessions ?? 1) > 1;
    // With a session per shape, the first one has no graph: a model may keep shape arithmetic on the CPU until its
    // dimensions are fixed. Each session per shape is probed too (ORT's placement log, in a probe session of the
    // same options): it is what runs, so it is what is reported, and a compute node it would put on the CPU fails
    // that shape's run rather than running there.
    const session = createNative(path, perShape ? { ...options, cudaGraph: false } : options, initializers);
    const shapes = perShape
      ? new ShapeSessions(
        session,
        (freeDimensions) => {
          try {
            return createNative(path, options, initializers, true, freeDimensions);
          } catch (error) {
            // Shapes whose session ORT cannot capture as a graph (a node left on the CPU) run without one.
            if (!options.cudaGraph) throw error;
            return createNative(path, { ...options, cudaGraph: false }, initializers, true, freeDimensions);
          }
        },
        options.shapeSessions!,
        () => options.onShapeSession?.(placementNow()),
      )
      : undefined;
    const placementNow = (): SessionPlacement => {
      const byShape = shapes?.sessions() ?? [];
      if (byShape.length === 0) return { placement: placementOf(session) };
      const entries = byShape.map(([key, s]) => [key, placementOf(s) ?? {}] as const);
      return { placement: entries.at(-1)![1], shapes: Object.fromEntries(entries) };
    };
    return {
      session,
      facade: mappedFacade(shapes ? shapes.facade() : sessionFacade(session), (e) => laneRunError(e, options)),
      ...(weights ? { weights } : {}),
      placement: placementNow,
      release: async () => {
        await (shapes ? shapes.release() : session.release());
        after?.();
      },
    };
  };
  if (options.weights) {
    let values: Record<string, Value> = {};
    try {
      values = weightValues(options.weights);
      const shared = Object.values(values);
      return laneSession(
        values,
        { shared: true, tensors: shared.length, bytes: options.weights.bytes },
        () => shared.forEach((value) => value.close()),
      );
    } catch (error) {
      for (const value of Object.values(values)) value.close();
      return laneSession({}, { shared: false, reason: `ORT refused the shared weights: ${(error as Error).message}` });
    }
  }
  return laneSession({});
}

/**
 * Up to `max` sessions of one model on a lane, each used for one set of input shapes. ORT's CUDA provider plans a
 * convolution for the input shape it last saw: every change of shape cost a session 60–100 ms on the H200, even
 * back to a shape it ran a moment before, under every `cudnn_conv_algo_search` (docs/gpu-results.md). A session that
 * only ever sees one shape pays that once. Sessions are created on the first run of a new shape (its set-up is that
 * run's) and the least recently used one is released when a new shape needs room; each has its own arena (the
 * function's `gpuMemoryLimitMb` applies to each). Runs take turns, so no session is released while it runs. Feeds
 * the model cannot take are refused before a session is chosen (else each would cost a session, and evict one); a
 * session that cannot be created fails its run with the shapes named ("Cannot create a session for input shapes
 * x:1x3x960x1280 (shapeSessions: 6): ..."), and later runs go on.
 */
export class ShapeSessions {
  /** Sessions by the key of their input shapes, least recently used first. */
  readonly #byShape = new Map<string, NativeSession>();
  #first: NativeSession | undefined;
  #turn: Promise<unknown> = Promise.resolve();
  #released = false;
  /** Sessions created since the first, and released to make room: for the API and the tests. */
  readonly stats = { created: 0, evicted: 0 };

  /**
   * The model's inputs, from the first session: feeds are checked against them before a session is chosen, and
   * their named dynamic dimensions (a string in `shape`) give each new session's free dimension overrides.
   */
  readonly #inputs: readonly InferenceSession.ValueMetadata[];

  /**
   * @param first the model's first session; it serves the first shapes only when the model has no named dynamic
   * dimension (else it is released once the first session of a shape is made).
   * @param create makes a session for one set of input shapes, given the values of the model's named dynamic
   * dimensions (ORT's free dimension overrides): ORT plans it for exactly those, so shape arithmetic folds into
   * constants instead of running on the CPU between the device's kernels.
   */
  constructor(
    first: NativeSession,
    readonly create: (freeDimensions: Record<string, number>) => NativeSession,
    readonly max: number,
    /** Called after each session created for a new shape is in place. */
    readonly onCreated?: () => void,
  ) {
    this.#first = first;
    this.#inputs = first.inputMetadata;
  }

  /** The values of the named dynamic dimensions in `feeds` (a name two inputs give different values is left out). */
  #freeDimensions(feeds: Record<string, Tensor>): Record<string, number> {
    const values: Record<string, number> = {};
    const conflicting = new Set<string>();
    for (const input of this.#inputs) {
      if (!input.isTensor) continue;
      const dims = feeds[input.name]?.dims;
      input.shape.forEach((d, i) => {
        if (typeof d !== "string" || d === "" || dims?.[i] === undefined) return;
        if (d in values && values[d] !== dims[i]) conflicting.add(d);
        values[d] = dims[i];
      });
    }
    for (const name of conflicting) delete values[name];
    return values;
  }

  /**
   * Throws, naming the input, for feeds the model cannot take (an unknown or missing name, a rank or a fixed
   * dimension that differs): such a run would otherwise create a session for its shapes, releasing another to make
   * room, only for ORT to refuse it.
   */
  #check(feeds: Record<string, Tensor>): void {
    const names = this.#inputs.map((input) => input.name);
    const unknown = Object.keys(feeds).filter((name) => !names.includes(name));
    const missing = names.filter((name) => !Object.hasOwn(feeds, name));
    if (unknown.length > 0 || missing.length > 0) {
      throw new Error(
        `The model's inputs are ${names.join(", ")}; ${
          unknown.length ? `${unknown.join(", ")} is not one of them` : `${missing.join(", ")} is missing`
        }`,
      );
    }
    for (const input of this.#inputs) {
      if (!input.isTensor) continue;
      const dims = feeds[input.name]?.dims;
      const fits = Array.isArray(dims) && dims.length === input.shape.length &&
        input.shape.every((d, i) => typeof d !== "number" || d < 0 || dims[i] === d);
      if (!fits) {
        throw new Error(
          `Input '${input.name}' has shape [${dims?.join(", ")}]; the model's input is [${input.shape.join(", ")}]`,
        );
      }
    }
  }

  /** The key of a run's input shapes: each input's name and dimensions. */
  static keyOf(feeds: Record<string, Tensor>): string {
    return Object.keys(feeds).sort().map((name) => `${name}:${feeds[name].dims.join("x")}`).join(",");
  }

  /**
   * The session for `feeds`' shapes: the one that ran them before, a new one planned for them, or (a model without
   * named dynamic dimensions) the first session for the first shapes.
   */
  async #sessionFor(key: string, feeds: Record<string, Tensor>): Promise<NativeSession> {
    const known = this.#byShape.get(key);
    if (known) {
      this.#byShape.delete(key);
      this.#byShape.set(key, known);
      return known;
    }
    let session: NativeSession;
    let created = false;
    const freeDimensions = this.#freeDimensions(feeds);
    if (this.#first && Object.keys(freeDimensions).length === 0) {
      session = this.#first;
      this.#first = undefined;
    } else {
      if (this.#byShape.size >= this.max) {
        const [oldest, evicted] = this.#byShape.entries().next().value!;
        this.#byShape.delete(oldest);
        this.stats.evicted++;
        await evicted.release();
      }
      try {
        session = this.create(freeDimensions);
      } catch (error) {
        throw new Error(
          `Cannot create a session for input shapes ${key} (shapeSessions: ${this.max}): ${(error as Error).message}`,
        );
      }
      this.stats.created++;
      created = true;
      if (this.#first) {
        // Planned for no shape in particular: the sessions per shape replace it.
        const first = this.#first;
        this.#first = undefined;
        await first.release();
      }
    }
    this.#byShape.set(key, session);
    if (created) this.onCreated?.();
    return session;
  }

  /** The sessions per input shapes now, by shape key, least recently used first. */
  sessions(): [string, NativeSession][] {
    return [...this.#byShape.entries()];
  }

  /** Runs `feeds` on the session of their shapes; runs take turns. */
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    if (this.#released) return Promise.reject(new Error("The model's sessions were released"));
    const turn = this.#turn.then(async () => {
      this.#check(feeds);
      return (await this.#sessionFor(ShapeSessions.keyOf(feeds), feeds)).run(feeds);
    });
    this.#turn = turn.catch(() => {});
    return turn;
  }

  /** Input shapes with a session now, least recently used first. */
  shapes(): string[] {
    return [...this.#byShape.keys()];
  }

  /** What a handler sees: `run` and the model's description (the first session's). */
  facade(): InferenceSession {
    const first = this.#first ?? [...this.#byShape.values()][0];
    return facadeOf(first, (feeds) => this.run(feeds));
  }

  /** Releases every session, after the run in progress. */
  async release(): Promise<void> {
    this.#released = true;
    await this.#turn;
    const all = [...this.#byShape.values(), ...(this.#first ? [this.#first] : [])];
    this.#byShape.clear();
    this.#first = undefined;
    await Promise.all(all.map((s) => s.release()));
  }
}

function createNative(
  path: string,
  options: NativeLaneOptions,
  initializers: Record<string, Value>,
  checkPlacement = true,
  freeDimensions?: Record<string, number>,
): NativeSession {
  const { bound } = options;
  const create: NativeSessionOptions = {
    checkPlacement,
    ...(freeDimensions ? { freeDimensions } : {}),
    provider: options.lane.provider,
    deviceId: options.lane.device,
    stream: bound.stream,
    pinned: bound.pinnedMemory(),
    device: bound.deviceMemory(),
    // Bound once per input shape, copies through pinned staging on the lane's stream, one wait per run: measured
    // on the H200 at 185 µs against 228 µs for ORT's staging (8×1024 MLP, batch 64, CUDA graph; docs/gpu-results.md).
    staging: "lane",
    arena: options.arena,
    intraOpThreads: options.threads,
    interOpThreads: 1,
    graphOptimization: "all",
    cuda: {
      useTf32: options.tf32,
      ...(options.gpuMemoryMb > 0 ? { gpuMemLimit: options.gpuMemoryMb * MiB } : {}),
      arenaExtendStrategy: "kSameAsRequested",
      cudnnConvAlgoSearch: "HEURISTIC",
      enableCudaGraph: options.cudaGraph,
    },
    initializers,
  };
  try {
    return NativeSession.create(env!, path, create);
  } catch (error) {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${options.fn}': model '${options.model}' cannot run on cuda:${options.lane.device}: ${
        (error as Error).message
      }`,
    );
  }
}

const shortNames: Record<string, string> = {
  CUDAExecutionProvider: "cuda",
  CPUExecutionProvider: "cpu",
  TensorrtExecutionProvider: "tensorrt",
};

/**
 * Where ORT placed the session's nodes, as read from its own placement log:
 * nodes per provider (`cuda`, `cpu`, `tensorrt`), most first. `undefined` for
 * sessions that were not probed (CPU lanes, whose nodes all run on the CPU).
 */
export function placementOf(session: InferenceSession | NativeSession): Record<string, number> | undefined {
  if (!(session instanceof NativeSession) || !session.placement) return undefined;
  return Object.fromEntries(
    Object.entries(session.placement)
      .sort((a, b) => b[1].count - a[1].count)
      .map(([provider, { count }]) => [shortNames[provider] ?? provider, count]),
  );
}

/** ORT's BFC arena refusing an allocation past its limit (`bfc_arena.cc`, `AllocateRawInternal`). */
const arenaRefusal = /Available memory of (\d+) is smaller than requested bytes of (\d+)/;

/**
 * A run's error as the client should get it: ORT's arena refusing memory past the function's `gpuMemoryLimitMb` (its
 * `gpu_mem_limit`) becomes `gpu_memory_limit` (HTTP 413: the request needs more than the function allows), naming
 * what was free and what the run asked for; any other error is returned as it is.
 */
export function laneRunError(
  error: unknown,
  options: Pick<NativeLaneOptions, "fn" | "model" | "gpuMemoryMb">,
): unknown {
  const refused = options.gpuMemoryMb > 0 && error instanceof Error ? arenaRefusal.exec(error.message) : null;
  if (!refused) return error;
  const mb = (bytes: string) => (Number(bytes) / 1e6).toFixed(1);
  return new IsolaneError(
    "gpu_memory_limit",
    `Model '${options.model}' of function '${options.fn}' needs more GPU memory for this request than the function's ` +
      `gpuMemoryLimitMb (${options.gpuMemoryMb}) allows: the run asked for ${mb(refused[2])} MB more, with ` +
      `${mb(refused[1])} MB free; send fewer rows at a time, or raise gpuMemoryLimitMb`,
  );
}

/** `facade` with each run's errors mapped by `mapError`. */
function mappedFacade(facade: InferenceSession, mapError: (error: unknown) => unknown): InferenceSession {
  return facadeOf(facade, (feeds) =>
    facade.run(feeds).catch((error) => {
      throw mapError(error);
    }));
}

/** A model's names and metadata, as a session (ours or onnxruntime-node's) gives them. */
type Described = Pick<NativeSession, "inputNames" | "outputNames" | "inputMetadata" | "outputMetadata">;

/**
 * What a handler gets of a model: `described`'s names and metadata, and `run`; frozen, so that user code can neither
 * reach the session behind it nor swap its `run`.
 */
function facadeOf(
  described: Described | InferenceSession,
  run: (feeds: Record<string, Tensor>, fetches?: unknown) => Promise<Record<string, Tensor>>,
): InferenceSession {
  return Object.freeze({
    inputNames: described.inputNames,
    outputNames: described.outputNames,
    inputMetadata: described.inputMetadata,
    outputMetadata: described.outputMetadata,
    run,
  }) as unknown as InferenceSession;
}

/**
 * What a handler sees of a lane's session: `run` and the model's description.
 * The session itself holds the native environment, which can open any file,
 * so it never reaches user code.
 */
export function sessionFacade(session: NativeSession): InferenceSession {
  return facadeOf(session, (feeds) => session.run(feeds));
}

/** A run that ORT stopped because its request aborted. */
export interface TerminatedRun {
  /** The model's name in the function's `models`. */
  model: string;
  /** The jobs whose request aborted (a batch's, for a batched call). */
  jobs: readonly number[];
  requests: readonly string[];
  /** How long the run ran, from its start to ORT's answer, in milliseconds. */
  ms: number;
}

/** What {@link createCpuSession} needs besides the model's path. */
export interface CpuSessionOptions extends SessionOptions {
  /** Told of every run that ORT stopped on its request's abort (the isolate logs it through the host). */
  onTerminated(run: TerminatedRun): void;
}

/**
 * Session config of every CPU lane's session. ORT's intra-op threads spin
 * between and after parallel sections by default; each isolate of a function
 * has threads for every core, so spinning threads of idle or waiting isolates
 * would take the cores from the one that runs. With spinning off they sleep
 * until ORT hands them work (measured in README "Settings").
 */
export const cpuSessionConfig: Readonly<Record<string, string>> = Object.freeze({
  "session.intra_op.allow_spinning": "0",
});

/**
 * Runs of a CPU lane's session that recently took under this many ms run on the isolate's thread, where the model's
 * run time follows its input shapes ({@link fixedCostOps}): the hop to Deno's blocking-thread pool costs some 25–35
 * µs on the 2-core dev VM, more than a small model's run (`bench/cpu_run_hop.ts`, docs/cpu-mlp.md).
 */
export const inlineRunMs = 0.5;

/** Models larger than this are not read for their operators: their runs outlast {@link inlineRunMs} anyway. */
const inlineModelBytes = 4 * MiB;

/**
 * Operators whose work follows the shapes of their inputs, not their values: a model of these only, without
 * subgraphs, cannot turn one short run into a long one by what a request holds (a `Loop`'s count, `Expand`'s or
 * `Resize`'s sizes, `TopK`'s k, `NonMaxSuppression`'s boxes can).
 */
export const fixedCostOps: ReadonlySet<string> = new Set([
  "Abs",
  "Add",
  "ArgMax",
  "ArgMin",
  "AveragePool",
  "BatchNormalization",
  "Cast",
  "Clip",
  "Concat",
  "Conv",
  "Div",
  "Dropout",
  "Elu",
  "Equal",
  "Erf",
  "Exp",
  "Flatten",
  "Gather",
  "Gelu",
  "Gemm",
  "GlobalAveragePool",
  "GlobalMaxPool",
  "Greater",
  "HardSigmoid",
  "Identity",
  "LayerNormalization",
  "LeakyRelu",
  "Less",
  "Log",
  "LogSoftmax",
  "MatMul",
  "Max",
  "MaxPool",
  "Min",
  "Mul",
  "Neg",
  "Not",
  "Pow",
  "PRelu",
  "Reciprocal",
  "ReduceMax",
  "ReduceMean",
  "ReduceMin",
  "ReduceSum",
  "Relu",
  "Reshape",
  "Selu",
  "Shape",
  "Sigmoid",
  "Sign",
  "Slice",
  "Softmax",
  "Softplus",
  "Split",
  "Sqrt",
  "Squeeze",
  "Sub",
  "Sum",
  "Tanh",
  "Transpose",
  "Unsqueeze",
  "Where",
]);

/**
 * ONNX element types a graph input may have for its model's runs to go inline: floating point and bool
 * (`TensorProto.DataType` FLOAT 1, BOOL 9, FLOAT16 10, DOUBLE 11, BFLOAT16 16). An integer input can carry a shape or
 * indices (`Reshape`'s shape, `Slice`'s starts, `Gather`'s indices) and so make later broadcasts do more work at the
 * same input dimensions.
 */
const inlineInputTypes: ReadonlySet<number> = new Set([1, 9, 10, 11, 16]);

/**
 * Whether runs of the model at `path` may run inline ({@link inlineRunMs}): a model of at most 4 MiB, of
 * {@link fixedCostOps} only, without subgraphs or functions of its own (`ModelOps.localFunctions`: a `Loop` can hide
 * behind a node named `mydomain:Add`), whose inputs are all floating point or bool, and where no value
 * computed from an input reaches a shape operand (`ModelOps.shapesFromInputs`: a float input cast to int64 can be a
 * `Reshape`'s shape as well as an integer input can). `false` for a file it cannot read or parse.
 */
export async function inlineCapable(path: string): Promise<boolean> {
  try {
    if ((await Deno.stat(path)).size > inlineModelBytes) return false;
    const { ops, subgraphs, localFunctions, inputTypes, shapesFromInputs } = modelOps(await Deno.readFile(path));
    return !subgraphs && !localFunctions && ops.size > 0 && [...ops].every((op) => fixedCostOps.has(op)) &&
      inputTypes.every((type) => inlineInputTypes.has(type)) && shapesFromInputs.size === 0;
  } catch {
    return false;
  }
}

/** A CPU lane's model: what handlers get, what the isolate releases, and which API runs it. */
export interface CpuModel {
  /** `ctx.models.<name>`: `run` and the model's description. */
  model: InferenceSession;
  /** Released on unload (in-flight runs are terminated and awaited first). */
  session: { release(): Promise<void> };
  /** `c`: ORT's C API, runs can be stopped; `onnxruntime-node`: the fallback for what the binding does not carry. */
  api: "c" | "onnxruntime-node";
}

/**
 * Loads a CPU lane's model through the C API with today's CPU settings
 * (`options.threads` intra-op threads and one inter-op thread, or ORT's
 * defaults for 0; threads that sleep instead of spinning,
 * {@link cpuSessionConfig}; every graph optimisation; short runs of a small fixed-cost model on the isolate's
 * thread, {@link inlineRunMs}), or through onnxruntime-node when
 * an input or output is not a tensor of a type the binding reads and writes.
 * Only declared models, and only inside their folder, as for every session.
 * @throws {Deno.errors.NotCapable} for a model the function did not declare.
 * @throws {IsolaneError} `function_unavailable` when a file leaves the folder or ORT refuses the model.
 */
export async function createCpuSession(ort: Ort, path: string, options: CpuSessionOptions): Promise<CpuModel> {
  assertModelAllowed(path);
  if (!env) throw new Error("openNativeOrt() was not called before the ffi permission was dropped");
  if (env.library.caller !== "libffi") {
    // Without libffi the binding calls through Deno.UnsafeFnPointer, which the ffi drop refuses.
    const fallback = await createSession(ort, path, options);
    return { model: hostFeedsOnly(fallback), session: fallback, api: "onnxruntime-node" };
  }
  await checkModelFiles(path, options.root, { fn: options.fn, model: options.model });
  const inline = await inlineCapable(path);
  let session: NativeSession;
  try {
    session = NativeSession.create(env, path, {
      provider: "cpu",
      nonblocking: true,
      ...(inline ? { inlineRunsUnderMs: inlineRunMs } : {}),
      graphOptimization: "all",
      ...(options.threads > 0 ? { intraOpThreads: options.threads, interOpThreads: 1 } : {}),
      config: cpuSessionConfig,
    });
  } catch (error) {
    throw invalidModel(options, error);
  }
  if (!carried(session)) {
    await session.release();
    const fallback = await createSession(ort, path, options);
    return { model: hostFeedsOnly(fallback), session: fallback, api: "onnxruntime-node" };
  }
  return { model: cancellableFacade(session, options.model, options.onTerminated), session, api: "c" };
}

/**
 * What a handler sees of an onnxruntime-node session: its description and `run` as onnxruntime-node takes it, a
 * device tensor refused as the C API's sessions refuse it ({@link refuseDeviceTensors}: `DeviceTensorError` naming the
 * input, where onnxruntime-node says only "Tensor.location is not supported").
 */
export function hostFeedsOnly(session: InferenceSession): InferenceSession {
  const ortRun = session as unknown as { run(...args: unknown[]): Promise<Record<string, Tensor>> };
  return facadeOf(session, function runModel(feeds, ...rest: unknown[]) {
    try {
      refuseDeviceTensors(feeds);
    } catch (error) {
      return Promise.reject(error);
    }
    return ortRun.run(feeds, ...rest);
  });
}

/** Whether every input and output is a tensor of a type the binding reads and writes (not strings, maps, ...). */
function carried(session: NativeSession): boolean {
  return [...session.inputMetadata, ...session.outputMetadata].every((m) => m.isTensor && m.type in elementTypes);
}

/** The output names asked for by onnxruntime-node's `fetches` (names, or an object keyed by them); all otherwise. */
function outputsOf(fetches: unknown, outputNames: readonly string[]): string[] | undefined {
  if (Array.isArray(fetches)) return fetches.map(String);
  if (typeof fetches !== "object" || fetches === null) return undefined;
  const named = Object.keys(fetches).filter((key) => outputNames.includes(key));
  return named.length > 0 ? named : undefined;
}

/**
 * What a handler sees of a CPU lane's session: `run(feeds, fetches?)` and
 * the model's description. Each run is bound to the request in whose scope it
 * starts ({@link currentRunScope}): it stops when that request aborts.
 */
function cancellableFacade(
  session: NativeSession,
  model: string,
  onTerminated: (run: TerminatedRun) => void,
): InferenceSession {
  const run = async function runModel(feeds: Record<string, Tensor>, fetches?: unknown) {
    const scope = currentRunScope();
    const started = performance.now();
    try {
      return await session.run(feeds, {
        ...(scope ? { signal: scope.signal } : {}),
        ...(fetches === undefined ? {} : { outputs: outputsOf(fetches, session.outputNames) }),
      });
    } catch (error) {
      if (error instanceof RunAbortedError) {
        throw new IsolaneError("timeout", `Model '${model}' was not run: the request was aborted`);
      }
      if (scope?.signal.aborted && isTerminatedRun(error)) {
        onTerminated({
          model,
          jobs: scope.jobs,
          requests: scope.requests,
          ms: Math.round(performance.now() - started),
        });
        throw new IsolaneError("timeout", `Model '${model}' was stopped: the request was aborted`);
      }
      throw error;
    }
  };
  return facadeOf(session, run);
}
