/**
 * Creates onnxruntime-node sessions (CPU models the C API path does not
 * carry, see `native.ts`) and describes sessions for the API.
 * @module
 */
import type { InferenceSession } from "onnxruntime-common";
import type { LanePlan, ModelInfo, TensorInfo } from "../protocol.ts";
import type { Ort } from "./ort.ts";
import { dirname, isAbsolute, relative } from "node:path";
import { IsolaneError } from "../errors.ts";
import { checkModelFiles } from "./external_data.ts";

/** Options for {@link createSession}. */
export interface SessionOptions {
  lane: LanePlan;
  /** Intra-op threads; 0 leaves ONNX Runtime's default. */
  threads: number;
  /** The folder the model and its external data must stay in: the function's folder, or an npm model's own. */
  root: string;
  /** The function's and the model's names, for messages. */
  fn: string;
  model: string;
}

/** Execution providers for a lane, most preferred first. */
export function providersFor(lane: LanePlan): InferenceSession.ExecutionProviderConfig[] {
  if (lane.kind === "cpu") return ["cpu"];
  const cuda = { name: "cuda", deviceId: lane.device };
  return lane.provider === "tensorrt" ? [{ name: "tensorrt", deviceId: lane.device }, cuda, "cpu"] : [cuda, "cpu"];
}

/**
 * Creates a session from a model's path. ORT reads the file and resolves
 * external data against the model's folder, natively, past Deno's
 * permissions: so the model and every external data location are checked
 * first ({@link checkModelFiles}) to stay inside `options.root`.
 * @throws {IsolaneError} `function_unavailable` when a file leaves the folder, is missing, or ORT refuses the model.
 */
export async function createSession(ort: Ort, modelPath: string, options: SessionOptions): Promise<InferenceSession> {
  await checkModelFiles(modelPath, options.root, { fn: options.fn, model: options.model });
  try {
    return await createOrtSession(ort, modelPath, options);
  } catch (error) {
    throw invalidModel(options, error);
  }
}

/** The `function_unavailable` error of a model ORT refuses to load. */
export function invalidModel(options: { fn: string; model: string }, error: unknown): IsolaneError {
  return new IsolaneError(
    "function_unavailable",
    `Cannot load function '${options.fn}': model '${options.model}' is not a valid ONNX model: ${
      error instanceof Error ? error.message : String(error)
    }`,
  );
}

/** The folder a model's files must stay in: the function's folder, or the model's own for models from npm. */
export function modelRoot(functionDir: string, modelPath: string): string {
  const rel = relative(functionDir, modelPath);
  return rel.startsWith("..") || isAbsolute(rel) ? dirname(modelPath) : functionDir;
}

async function createOrtSession(ort: Ort, modelPath: string, options: SessionOptions): Promise<InferenceSession> {
  return await ort.InferenceSession.create(modelPath, {
    executionProviders: providersFor(options.lane),
    graphOptimizationLevel: "all",
    ...(options.threads > 0 ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    // As the C API's CPU sessions (native.ts, cpuSessionConfig): idle intra-op threads sleep instead of spinning.
    ...(options.lane.kind === "cpu" ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
  });
}

function tensorInfo(meta: InferenceSession.ValueMetadata): TensorInfo {
  return meta.isTensor
    ? { name: meta.name, type: meta.type, shape: meta.shape.map((d) => (d === "" ? "?" : d)) }
    : { name: meta.name, type: "non-tensor", shape: [] };
}

/** Describes a loaded session: input and output names, types and shapes; `api` is which ORT API runs it. */
export function describeSession(
  name: string,
  session: InferenceSession,
  { lane, api }: { lane: LanePlan; api: ModelInfo["api"] },
): ModelInfo {
  return {
    name,
    api,
    inputs: session.inputMetadata.map(tensorInfo),
    outputs: session.outputMetadata.map(tensorInfo),
    providers: providersFor(lane).map((p) => (typeof p === "string" ? p : p.name)),
  };
}
