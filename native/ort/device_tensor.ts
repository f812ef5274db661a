/**
 * A tensor in a lane's device memory: what isolane's kernels write for a model
 * to read with no trip through host memory (issue 15: "device tensor in").
 * {@link NativeSession} takes one as a feed and copies it on the device into
 * the input it binds; anything else (onnxruntime-node's sessions, another
 * lane's session) refuses it with {@link DeviceTensorError}
 * ({@link refuseDeviceTensors} for sessions that read host memory). Handlers
 * pass it as a feed with no cast: `ModelSession` (`src/sdk.ts`) takes
 * `Tensor | DeviceTensor`.
 *
 * The device address never reaches user code: it lives in a module-private
 * `WeakMap`, read only by {@link deviceTensorMemory}.
 * @module
 */
import type { ElementType } from "./ort.ts";

/** Why a device tensor cannot be used (released, another lane's, a session that reads host memory only). */
export class DeviceTensorError extends Error {
  override name = "DeviceTensorError";
}

/** Where a device tensor's bytes are, and how to free them. */
interface Memory {
  address: bigint;
  bytes: number;
  /** The stream (a lane's) whose work made it, and that any copy of it must be ordered on. */
  stream: bigint;
  free: (address: bigint) => void;
}

const memory = new WeakMap<DeviceTensor, Memory>();

/**
 * A tensor whose bytes are in CUDA device memory, on one lane. Pass it to a
 * model's `run` on the same lane as any other feed; release it with
 * `dispose()` (or `using`) when done: it holds device memory until then.
 *
 * Shapes: `dims`, row-major, like an ONNX Runtime `Tensor`.
 * @example
 * ```ts
 * using input = gpu.resizeNormalizeToDevice(image, { region, width, height, mean, std });
 * const out = await models.det.run({ x: input });
 * ```
 */
export class DeviceTensor implements Disposable {
  /** Where the bytes are: CUDA device memory. */
  readonly location = "cuda" as const;

  /** @internal Made by a lane's kernels, which own `address` until {@link dispose}. */
  constructor(
    /** Element type, as ONNX Runtime names it (`"float32"`). */
    readonly type: ElementType,
    /** Dimensions. */
    readonly dims: readonly number[],
    /** The CUDA device index. */
    readonly device: number,
    held: Memory,
  ) {
    memory.set(this, held);
    Object.freeze(this.dims);
  }

  /** Whether {@link dispose} has freed it. */
  get disposed(): boolean {
    return !memory.has(this);
  }

  /** Frees the device memory (ordered on the lane's stream, after the work queued before). Idempotent. */
  dispose(): void {
    const held = memory.get(this);
    if (!held) return;
    memory.delete(this);
    held.free(held.address);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * The device memory of `tensor`, checked for use on `stream`.
 * @throws {DeviceTensorError} when it was disposed, or was made on another stream (another lane).
 */
export function deviceTensorMemory(
  tensor: DeviceTensor,
  stream: bigint | undefined,
  name: string,
): { address: bigint; bytes: number } {
  const held = memory.get(tensor);
  if (!held) throw new DeviceTensorError(`Input '${name}': the device tensor was disposed before this run`);
  if (stream === undefined || held.stream !== stream) {
    throw new DeviceTensorError(
      `Input '${name}': a device tensor can only feed a model on the lane that made it (a CUDA lane's own session)`,
    );
  }
  return { address: held.address, bytes: held.bytes };
}

/**
 * Refuses `feeds` for a session that reads host memory (a CPU lane's, onnxruntime-node's) when one of them is a
 * {@link DeviceTensor}, rather than let ORT read a device address as host memory or fail without naming the input
 * (onnxruntime-node says "Tensor.location is not supported").
 * @throws {DeviceTensorError} naming the first input that is a device tensor.
 */
export function refuseDeviceTensors(feeds: Readonly<Record<string, unknown>>): void {
  for (const name in feeds) {
    if (feeds[name] instanceof DeviceTensor) {
      throw new DeviceTensorError(
        `Input '${name}': a device tensor can only feed a model on a CUDA lane (this session reads host memory)`,
      );
    }
  }
}
