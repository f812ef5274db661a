/**
 * Creates ONNX Runtime sessions for a lane and describes them.
 * @module
 */
import type { InferenceSession } from "onnxruntime-common";
import type { LanePlan, ModelInfo, TensorInfo } from "../protocol.ts";
import { allowModel, type Ort } from "./ort.ts";

/** Options for {@link createSession}. */
export interface SessionOptions {
  lane: LanePlan;
  /** Intra-op threads; 0 leaves ONNX Runtime's default. */
  threads: number;
}

/** Execution providers for a lane, most preferred first. */
export function providersFor(lane: LanePlan): InferenceSession.ExecutionProviderConfig[] {
  if (lane.kind === "cpu") return ["cpu"];
  const cuda = { name: "cuda", deviceId: lane.device };
  return lane.provider === "tensorrt" ? [{ name: "tensorrt", deviceId: lane.device }, cuda, "cpu"] : [cuda, "cpu"];
}

/**
 * Creates a session from a model's bytes. Reading the bytes is the caller's
 * job, so that Deno's read permission, not the native library, guards the file.
 */
export async function createSession(ort: Ort, model: Uint8Array, options: SessionOptions): Promise<InferenceSession> {
  allowModel(model.buffer);
  return await ort.InferenceSession.create(model, {
    executionProviders: providersFor(options.lane),
    graphOptimizationLevel: "all",
    ...(options.threads > 0 ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
  });
}

function tensorInfo(meta: InferenceSession.ValueMetadata): TensorInfo {
  return meta.isTensor
    ? { name: meta.name, type: meta.type, shape: meta.shape.map((d) => (d === "" ? "?" : d)) }
    : { name: meta.name, type: "non-tensor", shape: [] };
}

/** Describes a loaded session: input and output names, types and shapes. */
export function describeSession(name: string, session: InferenceSession, lane: LanePlan): ModelInfo {
  return {
    name,
    inputs: session.inputMetadata.map(tensorInfo),
    outputs: session.outputMetadata.map(tensorInfo),
    providers: providersFor(lane).map((p) => (typeof p === "string" ? p : p.name)),
  };
}
