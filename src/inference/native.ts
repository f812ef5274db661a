/**
 * Sessions of CUDA lanes through ONNX Runtime's C API (`native/ort/`): on the
 * lane's own stream (`user_compute_stream`), with IO binding staged in the
 * lane's pinned host memory, the function's GPU arena limit, TF32 and CUDA
 * graphs as the function asks, and no silent CPU fallback for compute nodes.
 * onnxruntime-node's session takes only a device id, so its kernels would run
 * on streams of ORT's own.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { InferenceSession } from "onnxruntime-common";
import { NativeSession, OrtEnv, ortLibraryPath, PinnedArena } from "../../native/ort/mod.ts";
import type { Lane } from "../../native/mod.ts";
import type { LanePlan, StagingLayout } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { checkModelFiles } from "./external_data.ts";
import { assertModelAllowed } from "./model_access.ts";

const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));
const MiB = 1024 * 1024;

// Module-private: whoever holds the environment can open a session on any file.
let env: OrtEnv | undefined;

/** Opens the process's ORT environment through the C API; call before the ffi permission is dropped. */
export function openNativeOrt(): void {
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
  /** Pinned staging mapped as JS memory, for the model of a `runModel` handler (`NativeSession.runStaged`). */
  arena?: PinnedArena;
}

/**
 * A session of a CUDA lane. Its `placement` says where ORT put each node.
 * @throws {IsolaneError} `function_unavailable` with ORT's reason when the model or the provider cannot load, or
 * when a compute node would run on the CPU.
 */
export async function createLaneSession(path: string, options: NativeLaneOptions): Promise<NativeSession> {
  assertModelAllowed(path);
  if (!env) throw new Error("openNativeOrt() was not called before the ffi permission was dropped");
  await checkModelFiles(path, options.root, { fn: options.fn, model: options.model });
  const { bound } = options;
  try {
    return NativeSession.create(env, path, {
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
    });
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

/**
 * What a handler sees of a lane's session: `run` and the model's description.
 * The session itself holds the native environment, which can open any file,
 * so it never reaches user code.
 */
export function sessionFacade(session: NativeSession): InferenceSession {
  const facade = {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
    run: (feeds: Parameters<NativeSession["run"]>[0]) => session.run(feeds),
  };
  return Object.freeze(facade) as unknown as InferenceSession;
}
