/**
 * isolane's binding of the ONNX Runtime C API (ORT 1.29, API version 29)
 * over Deno FFI, on the `libonnxruntime.so.1` that onnxruntime-node ships.
 * Imports nothing from `src/`.
 *
 * @example
 * ```ts
 * using env = OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
 * const session = NativeSession.create(env, "functions/mlp/mlp.onnx", { provider: "cpu" });
 * const { y } = await session.run({ x: new Tensor("float32", new Float32Array(4), [1, 4]) });
 * session.release();
 * ```
 * @module
 */
export {
  apiMembers,
  keepOrtLoaded,
  ortApiVersion,
  type OrtLibrary,
  ortLibraryInNodeModules,
  sealOrtLibrary,
} from "./ffi.ts";
export { OrtError, ortErrorCodes, type OrtErrorName } from "./error.ts";
export {
  type CudaProviderInit,
  CudaProviderOptions,
  type ElementType,
  elementTypeName,
  elementTypes,
  IoBinding,
  MemoryInfo,
  OrtEnv,
  type OrtEnvOptions,
  PrepackedWeights,
  RunOptions,
  Session,
  type SessionCreateOptions,
  SessionOptions,
  type SessionOptionsInit,
  type TensorRtProviderInit,
  TensorRtProviderOptions,
  type TensorShape,
  Value,
  type ValueMetadata,
} from "./ort.ts";
export {
  computeOps,
  cpuComputeNodes,
  parsePlacement,
  type PlacedNode,
  type Placement,
  placementFromProfile,
  probePlacement,
} from "./placement.ts";
export {
  type DeviceMemory,
  inlineWindow,
  isTerminatedRun,
  type NativeRunOptions,
  NativeSession,
  type NativeSessionOptions,
  ortLibraryPath,
  type PinnedHostMemory,
  RunAbortedError,
  type StagedInput,
  type StagedOutput,
  type StagedRun,
} from "./native_session.ts";
export {
  arenaAlignment,
  type ArenaLayout,
  type ArenaSlot,
  type HostMapper,
  mapHostMemory,
  PinnedArena,
} from "./pinned_arena.ts";
