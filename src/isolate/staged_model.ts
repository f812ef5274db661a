/**
 * One model run with inputs written by a callback and outputs read by one,
 * for {@link runModel} handlers (`tensor_input.ts`): on a CUDA lane the
 * session's own `runStaged`, which hands the callbacks its pinned staging
 * (no copy between JS memory and pinned memory); on a CPU lane a run of
 * onnxruntime-node over JS arrays, whose outputs the callback reads in
 * place.
 * @module
 */
import { Tensor } from "onnxruntime-common";
import type { InferenceSession } from "onnxruntime-common";
import { NativeSession, type StagedOutput, type StagedRun } from "../../native/ort/mod.ts";
import { datatypes } from "../tensors.ts";
import { giveScratch, takeScratch } from "./scratch.ts";

/** A model that runs {@link StagedRun}s. */
export interface StagedModel {
  /** Runs the model: `fill` writes the inputs, `consume` reads the outputs (views valid during the call only). */
  run<T>(request: StagedRun<T>): Promise<T>;
  /**
   * The rows a batch of `rows` runs as, when the model runs batches padded (with zero rows) to a few sizes: a CUDA
   * graph is captured per set of input shapes, so a batcher's every size would be a graph of its own. Absent: as
   * they come.
   */
  padRows?(rows: number): number;
}

/**
 * The batch sizes a model with a CUDA graph per input shape pads its batches to: the function's preferred batch
 * sizes and its `maxBatchSize` (Triton's dynamic batcher's terms), or without preferred sizes the powers of two up
 * to `maxBatchSize`, and `maxBatchSize` itself. A batch larger than all of them runs as it is.
 * @example
 * ```ts
 * graphBatchSizes({ maxBatchSize: 48 }); // [1, 2, 4, 8, 16, 32, 48]
 * ```
 */
export function graphBatchSizes(batching: { maxBatchSize: number; preferredBatchSizes?: number[] }): number[] {
  const sizes = new Set<number>([batching.maxBatchSize]);
  if (batching.preferredBatchSizes?.length) { for (const size of batching.preferredBatchSizes) sizes.add(size); }
  else for (let size = 1; size < batching.maxBatchSize; size *= 2) sizes.add(size);
  return [...sizes].sort((a, b) => a - b);
}

type TypedArrayConstructor = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): ArrayBufferView;
  readonly BYTES_PER_ELEMENT: number;
};

const arrays = new Map<string, TypedArrayConstructor>(
  Object.values(datatypes).flatMap((d) => (d.array ? [[d.ort, d.array as unknown as TypedArrayConstructor]] : [])),
);

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * The staged form of a lane's session: a {@link NativeSession} stages in its
 * arena; any other session (onnxruntime-node's) runs over new JS arrays. A
 * native session with a CUDA graph per input shape pads batches to the next
 * of `batchSizes` ({@link graphBatchSizes}).
 * Outputs that are not typed arrays (strings, maps) are left out.
 */
export function stagedModel(session: InferenceSession | NativeSession, batchSizes?: readonly number[]): StagedModel {
  if (session instanceof NativeSession) {
    const run = <T>(request: StagedRun<T>) => session.runStaged(request);
    if (session.cudaGraphs !== "shapes" || !batchSizes?.length) return { run };
    return { run, padRows: (rows) => batchSizes.find((size) => size >= rows) ?? rows };
  }
  return {
    async run<T>(request: StagedRun<T>): Promise<T> {
      const feeds: Record<string, Tensor> = {};
      // The inputs in buffers kept for reuse (`fill` writes every byte): a batch's are a few hundred KiB, which a new
      // array would take as fresh zeroed pages each run. The session reads them during the run only.
      const held: Uint8Array<ArrayBuffer>[] = [];
      try {
        for (const input of request.inputs) {
          const ArrayType = arrays.get(input.type);
          if (!ArrayType) throw new TypeError(`input '${input.name}': tensor type ${input.type} cannot be staged`);
          const count = input.dims.reduce((a, b) => a * b, 1);
          const bytes = takeScratch(count * ArrayType.BYTES_PER_ELEMENT);
          held.push(bytes);
          const data = new ArrayType(bytes.buffer, 0, count);
          request.fill(input.name, bytes);
          feeds[input.name] = new Tensor(input.type as "float32", data as Float32Array, [...input.dims]);
        }
        const results = await session.run(feeds);
        const outputs: Record<string, StagedOutput> = {};
        for (const [name, value] of Object.entries(results)) {
          const tensor = value as Tensor;
          if (!ArrayBuffer.isView(tensor.data)) continue;
          outputs[name] = { type: tensor.type as StagedOutput["type"], dims: tensor.dims, bytes: bytesOf(tensor.data) };
        }
        return request.consume(outputs);
      } finally {
        for (const bytes of held) giveScratch(bytes);
      }
    },
  };
}

/**
 * `model` with its runs one at a time, in the order they were asked for: a batch that reaches a busy isolate is
 * decoded while the run before it goes on, and its run starts as that one ends, instead of both runs sharing the
 * cores (each CPU session has a thread per core).
 */
export function oneRunAtATime(model: StagedModel): StagedModel {
  let last: Promise<unknown> = Promise.resolve();
  return {
    ...model,
    run<T>(request: StagedRun<T>): Promise<T> {
      const run = last.then(() => model.run(request));
      last = run.catch(() => {});
      return run;
    },
  };
}
