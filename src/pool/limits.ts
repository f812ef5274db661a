/**
 * Every limit of a function in one object, decided in one place and handed to
 * its host, as Supabase's edge-runtime hands one `userWorkers.create({...})`
 * call all of a worker's limits.
 * @module
 */
import type { FunctionOptions } from "../sdk.ts";
import type { LanePlan } from "../protocol.ts";
import type { Isolation } from "./host.ts";
import { isolatePermissions } from "./permissions.ts";

/** The limits of one function's isolates. */
export interface FunctionLimits {
  /** Wall-clock limit of one request, from arrival to answer, in milliseconds (`timeoutMs`). */
  wallTimeMs: number;
  /**
   * After a request's deadline its `ctx.signal` is aborted; the isolate is
   * ended only if it still holds the request this many milliseconds later.
   */
  abortGraceMs: number;
  /**
   * CPU time one request may use, in milliseconds (`cpuTimeMs`; 0: no limit). Measured on process hosts only
   * (from /proc); a Deno Worker's CPU time cannot be read apart from its process's.
   */
  cpuTimeMs: number;
  /** Memory of one isolate in MiB: its V8 heap and, on a process host, its resident memory (`memoryLimitMb`). */
  memoryMb: number;
  /** GPU memory of one isolate's ONNX Runtime arena in MiB; 0 is no limit (`gpuMemoryLimitMb`). */
  gpuMemoryMb: number;
  /** Largest request body in bytes (`maxBodyBytes`). */
  maxBodyBytes: number;
  /** Requests that may wait for an isolate (`queueDepth`). */
  queueDepth: number;
  /** Where the isolate lives. */
  isolation: Isolation;
  /** What the isolate may touch. */
  permissions: Deno.PermissionOptionsObject;
}

/** Inputs of {@link limitsFor} besides the function's options. */
export interface LimitInputs {
  /** The function's folder (absolute). */
  dir: string;
  /** Absolute paths the isolate reads besides its folder: models, assets, the kernels' PTX. */
  files: string[];
  lane: LanePlan;
  /** The runtime's choice for functions that leave `isolation` at "auto" (`ISOLANE_ISOLATION`). */
  defaultIsolation?: "auto" | Isolation;
}

/**
 * The isolation a function gets: what it asks for; else, on `"auto"`, a
 * process on CPU lanes (only a process boundary contains a memory runaway)
 * and a Worker on GPU lanes (Workers share the device's primary context; a
 * process costs a CUDA context of its own).
 */
export function isolationFor(
  options: Pick<FunctionOptions, "isolation">,
  lane: LanePlan,
  fallback: "auto" | Isolation = "auto",
): Isolation {
  const wanted = options.isolation !== "auto" ? options.isolation : fallback;
  if (wanted !== "auto") return wanted;
  return lane.kind === "cuda" ? "worker" : "process";
}

/** The limits of an isolate of a function on `lane`. */
export function limitsFor(
  options: FunctionOptions,
  { dir, files, lane, defaultIsolation }: LimitInputs,
): FunctionLimits {
  return {
    wallTimeMs: options.timeoutMs,
    abortGraceMs: options.abortGraceMs,
    cpuTimeMs: options.cpuTimeMs,
    memoryMb: options.memoryLimitMb,
    gpuMemoryMb: options.gpuMemoryLimitMb,
    maxBodyBytes: options.maxBodyBytes,
    queueDepth: options.queueDepth,
    isolation: isolationFor(options, lane, defaultIsolation),
    permissions: isolatePermissions({ dir, modelPaths: files, declared: options.permissions, native: true }),
  };
}
