/**
 * Loads one version of a function: inspects its module in a bare isolate,
 * resolves its models, plans its lanes and starts its pool.
 * @module
 */
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import type { LanePlan, Manifest } from "../protocol.ts";
import { WorkerHost } from "../pool/worker_host.ts";
import { ProcessHost } from "../pool/process_host.ts";
import type { HostSpec, Isolation } from "../pool/host.ts";
import { FunctionPool, type PoolSpec } from "../pool/function_pool.ts";
import { hostSpecFor } from "../pool/supervisor.ts";
import { IsolaneError } from "../errors.ts";
import { isolatePermissions } from "../pool/permissions.ts";
import { type DeviceInventory, planLanes } from "../pool/plan_lanes.ts";
import { resolveFilePaths } from "./file_paths.ts";
import { editModels, modelFiles } from "../inference/model_edit.ts";
import { functionModulePath } from "./dependencies.ts";
import { log } from "../log.ts";
import { defaultStagingRows, stagingLayout } from "../tensors.ts";
import type { FunctionLimits } from "../pool/limits.ts";
import { fits, prepareSpare, type Spare } from "../pool/spare.ts";
import { type ReadySpare, removeFolder, undeclaredLimits } from "./ready_spare.ts";
import type { PoolObserver } from "../pool/observer.ts";
import type { WeightMemory } from "../pool/shared_weights.ts";

/** One loaded, serving version of a function. */
export interface FunctionVersion {
  name: string;
  version: number;
  dir: string;
  manifest: Manifest;
  modelPaths: Record<string, string>;
  pool: FunctionPool;
  loadedAt: Date;
  /**
   * The folder the version serves from when it is not `dir`: hard links of its files, in the folder of the ready
   * spare it took (`ready_spare.ts`); remove it with `removeFolder` once the pool has ended.
   */
  folder?: string;
}

/** Where the runtime's own files are and what it may use. */
export interface LoadContext {
  /** The project's `node_modules` (npm models). */
  nodeModules: string;
  /** The kernels' PTX. */
  kernelsPtxPath: string;
  devices: DeviceInventory;
  /** Intra-op threads per isolate; 0 takes {@link defaultOrtThreads}. */
  ortThreads: number;
  /** Where isolates live for functions that leave `isolation` at "auto". */
  defaultIsolation?: "auto" | "worker" | "process";
  /** How long an isolate may take to start serving (`ISOLANE_BOOT_TIMEOUT_MS`); the supervisor's default otherwise. */
  bootTimeoutMs?: number;
  /** Told of every pool's dispatches and restarts. */
  observer?: PoolObserver;
  /** Holds the device memory of weights shared by a function's CUDA lanes; absent without CUDA. */
  weightMemory?: WeightMemory;
  /** Start spare isolates: one while a version loads, one per function for respawns (`src/pool/spare.ts`). */
  spares?: boolean;
  /** Process hosts too keep a respawn spare, once respawned (`ISOLANE_SPARE_ISOLATES=all`). */
  processSpares?: boolean;
  /** The runtime's ready spare, which a load takes first (`ready_spare.ts`). */
  readySpare?: ReadySpare;
}

/**
 * The limits of an inspecting isolate: it only imports the module. In a process, the heap a module may take at import
 * is `memoryMb`; a module may declare a larger `memoryLimitMb` for serving, which is not known before the import.
 */
const inspectLimits: Omit<FunctionLimits, "permissions" | "isolation"> = {
  wallTimeMs: 30_000,
  abortGraceMs: 0,
  cpuTimeMs: 0,
  memoryMb: 2048,
  gpuMemoryMb: 0,
  maxBodyBytes: 0,
  queueDepth: 0,
};

/**
 * Reads a module's manifest in an isolate that may read only the function's folder. `moduleUrl` defaults to the
 * folder's `mod.ts`. With `isolation: "process"` the isolate is a child process (it loads ONNX Runtime, as a process
 * spare does, and drops ffi before the import), so a module that allocates without bound at import ends only that
 * child (422 `invalid_bundle` for a deploy); a Worker that runs out of heap aborts the whole runtime (Deno 2.9.6,
 * "Fatal JavaScript out of memory"). The default, a Worker, loads no native code and starts faster.
 * @throws {IsolaneError} why the module cannot be read: it threw, timed out, or exceeded its memory at import.
 */
export async function inspectFunction(
  name: string,
  dir: string,
  { moduleUrl = pathToFileURL(join(dir, "mod.ts")).href, isolation = "worker" }: {
    moduleUrl?: string;
    isolation?: Isolation;
  } = {},
): Promise<Manifest> {
  const spec: HostSpec = {
    init: inspectInit(name, moduleUrl),
    limits: {
      ...inspectLimits,
      isolation,
      permissions: isolatePermissions({ dir, modelPaths: [], declared: {}, native: isolation === "process" }),
    },
    bootTimeoutMs: 30_000,
  };
  const isolate = isolation === "process" ? await ProcessHost.start(spec) : await WorkerHost.start(spec);
  void isolate.close();
  return isolate.manifest!;
}

/** The init message of an isolate that reads a module's manifest (`mode: "inspect"`), on the CPU. */
function inspectInit(name: string, moduleUrl: string): HostSpec["init"] {
  return {
    mode: "inspect",
    name,
    moduleUrl,
    modelPaths: {},
    assetPaths: {},
    kernelsPtxPath: null,
    lane: { kind: "cpu" },
    ortThreads: 0,
  };
}

/**
 * Reads a module's manifest in the spare that will serve it: the spare readies itself as a serving isolate does
 * before it imports user code (ffi dropped, its model list sealed until the serve init fills it), imports the module
 * with the permissions it was started with (its folder, nothing else), and keeps it. If the pool has no use for it,
 * the spare is ended (`startHost`).
 */
async function inspectIn(spare: Spare, name: string, moduleUrl: string): Promise<Manifest> {
  const host = await spare.host.launch({
    init: inspectInit(name, moduleUrl),
    limits: spare.limits,
    bootTimeoutMs: 30_000,
  });
  return host.manifest!;
}

/** `error` with the spare's folder in its message named as the version's own (`dir`). */
function inFolder(error: unknown, folder: string, dir: string): unknown {
  if (!(error instanceof IsolaneError)) return error;
  const message = error.message
    .replaceAll(pathToFileURL(folder).href, pathToFileURL(dir).href)
    .replaceAll(folder, dir);
  return new IsolaneError(error.code, message, error.details, error.headers);
}

/**
 * ONNX Runtime intra-op threads per isolate when `ISOLANE_ORT_THREADS` is not
 * set: every core on CPU lanes, so a lone request may use them all (their
 * sessions' threads sleep when idle, `cpuSessionConfig` in
 * src/inference/native.ts, so isolates that wait take no core from one that
 * runs); one on GPU lanes. A CUDA lane's session may leave only shape
 * arithmetic on the CPU (a compute node there fails the load), which a pool of
 * threads does not speed up, while its threads spin after each use (ORT's
 * default on these sessions) beside the HTTP threads and the other isolates.
 * Measured on the H200 (docs/gpu-results.md, `ISOLANE_ORT_THREADS=1` against
 * 8 threads for each of 2 lanes): `mlp` batched at c=64 27,317 → 30,499 rps,
 * unbatched 7,613 → 9,984; the 8×1024 MLP unchanged within the call's spread.
 */
export function defaultOrtThreads(lanes: readonly LanePlan[], cores: number): number {
  if (lanes.every((lane) => lane.kind === "cpu")) return Math.max(1, cores);
  return 1;
}

/**
 * Loads and starts a function version; throws `IsolaneError` with the reason when it cannot. A deployed version
 * boots in the ready spare where it fits. A function with its own dependencies (a `deno.json` with `imports`) is served from its bundle,
 * rebuilt when `fresh` (see {@link functionModulePath}).
 */
export async function loadFunction(
  { name, dir, version, fresh = true, deployed = false }: {
    name: string;
    dir: string;
    version: number;
    fresh?: boolean;
    /** A deployed version, whose folder never changes: only such a version may take the ready spare. */
    deployed?: boolean;
  },
  ctx: LoadContext,
): Promise<FunctionVersion> {
  const started = performance.now();
  const modulePath = await functionModulePath(name, dir, { fresh });
  const bundled = performance.now();
  // The module is inspected in a spare, which then serves the pool's first lane if the manifest asks for no more
  // than it was given: the ready spare, which has imported the runtime already, else one started now.
  let spare: Spare | undefined;
  let folder: string | undefined;
  if (ctx.spares !== false) {
    // A folder function is served from its folder as it is (it may read files that appear later); a deployed
    // version's folder never changes, so hard links of its files serve it alike.
    const ready = deployed ? await ctx.readySpare?.take(name, dir) : undefined;
    if (ready) ({ spare, dir: folder } = ready);
    else {spare = prepareSpare(name, {
        limits: undeclaredLimits(dir, ctx.defaultIsolation),
        lane: "cpu",
        purpose: "load",
      });}
  }
  const urlIn = (where: string) => pathToFileURL(join(where, relative(dir, modulePath))).href;
  let loaded = false;
  try {
    let manifest: Manifest;
    try {
      // A process spare is not handed user code to inspect: it imports the runtime meanwhile, and boots only if the
      // manifest fits it. (Loads that inspected in process spares raised the runtime's own resident memory by some
      // 150 MB over repeated deploys of a 64 MiB model in tests/containment_test.ts; the cause is not found yet.)
      manifest = spare?.limits.isolation === "worker"
        ? await inspectIn(spare, name, urlIn(folder ?? dir))
        : await inspectFunction(name, dir, {
          moduleUrl: urlIn(dir),
          // Where the function would run if it declares nothing: a process unless the runtime defaults to Workers.
          isolation: spare?.limits.isolation ?? undeclaredLimits(dir, ctx.defaultIsolation).isolation,
        });
    } catch (error) {
      throw folder ? inFolder(error, folder, dir) : error;
    }
    const inspected = performance.now();
    let spec = await poolSpec(name, manifest, folder ?? dir, urlIn(folder ?? dir), ctx);
    if (folder && !fits(spare!, hostSpecFor(spec, spec.lanes[0]).limits, spec.lanes[0].kind)) {
      // A version that does not boot in the ready spare is served from its own folder (it may write there, say).
      log("debug", "spare isolate discarded", {
        function: name,
        isolate: spare!.host.id,
        reason: "its limits differ from the lane's",
      });
      spare!.host.discard();
      spare = undefined;
      await removeFolder(folder);
      folder = undefined;
      spec = await poolSpec(name, manifest, dir, urlIn(dir), ctx);
    }
    const pool = new FunctionPool({ ...spec, ...(spare ? { spare } : {}) });
    // From here the pool owns the spare.
    spare = undefined;
    await pool.start();
    log("debug", "function load phases", {
      function: name,
      moduleMs: Math.round(bundled - started),
      inspectMs: Math.round(inspected - bundled),
      isolatesMs: Math.round(performance.now() - inspected),
      ...(folder ? { readySpare: true } : {}),
    });
    loaded = true;
    const { modelPaths } = spec;
    return { name, version, dir, manifest, modelPaths, pool, loadedAt: new Date(), ...(folder ? { folder } : {}) };
  } finally {
    spare?.host.discard();
    if (folder && !loaded) await removeFolder(folder);
    // The next ready spare starts once this load no longer needs the cores.
    ctx.readySpare?.replenish();
  }
}

/** What the pool of a version served from `served` needs, from its manifest. */
async function poolSpec(
  name: string,
  manifest: Manifest,
  served: string,
  moduleUrl: string,
  ctx: LoadContext,
): Promise<PoolSpec> {
  const { options } = manifest;
  const where = { dir: served, nodeModules: ctx.nodeModules };
  const declared = await resolveFilePaths(name, modelFiles(options.models), { ...where, kind: "model" });
  // Models declared with `outputs` are served edited (src/inference/model_edit.ts).
  const modelPaths = await editModels(name, options.models, declared);
  const assetPaths = await resolveFilePaths(name, options.assets, { ...where, kind: "asset" });
  const { lanes, notes } = planLanes(name, options, ctx.devices);
  for (const note of notes) log("warn", note, { function: name });
  const cores = navigator.hardwareConcurrency || 1;
  // A runModel handler's CUDA lanes stage one run of the largest batch in pinned memory that JS writes in place.
  const staging = manifest.modelHandler && options.signature
    ? stagingLayout(options.signature, options.dynamicBatching?.maxBatchSize ?? defaultStagingRows)
    : undefined;
  return {
    name,
    dir: served,
    moduleUrl,
    options,
    modelPaths,
    assetPaths,
    lanes,
    ortThreads: ctx.ortThreads || defaultOrtThreads(lanes, cores),
    kernelsPtxPath: ctx.kernelsPtxPath,
    ...(staging ? { staging } : {}),
    ...(ctx.weightMemory ? { weightMemory: ctx.weightMemory } : {}),
    observer: ctx.observer,
    defaultIsolation: ctx.defaultIsolation,
    ...(ctx.bootTimeoutMs ? { bootTimeoutMs: ctx.bootTimeoutMs } : {}),
    spares: ctx.spares !== false,
    processSpares: ctx.processSpares === true,
  };
}
