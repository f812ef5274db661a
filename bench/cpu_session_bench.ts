/**
 * The per-run cost of a CPU lane's model run, old path against new, on the
 * `mlp` model (4→16→3) at 1 and 64 rows and on the 8×1024 fp32 ReLU MLP of
 * the benchmarks at 1 row:
 * - onnxruntime-node's `InferenceSession.run` (what CPU lanes used: the run
 *   blocks the isolate's thread);
 * - the C API path CPU lanes use now (`NativeSession`, `nonblocking`: inputs
 *   copied into ORT's memory, run options of the run's own, `Run` on Deno's
 *   blocking-thread pool, outputs copied back), with an abort signal as a
 *   request's run has.
 * Both with one intra-op thread and every graph optimisation.
 *
 *   deno bench -A bench/cpu_session_bench.ts
 * @module
 */
import { fileURLToPath } from "node:url";
import * as ortNode from "onnxruntime-node";
import { Tensor } from "onnxruntime-common";
import { NativeSession, OrtEnv, ortLibraryPath } from "../native/ort/mod.ts";
import { denseReluModel, writeTempModel } from "../native/ort/test_models.ts";

const mlpPath = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));
const env = OrtEnv.open({ libraryPath: ortLibraryPath(fileURLToPath(new URL("../node_modules", import.meta.url))) });
const signal = new AbortController().signal;

async function sessions(path: string) {
  const node = await ortNode.InferenceSession.create(path, {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const native = NativeSession.create(env, path, {
    provider: "cpu",
    nonblocking: true,
    graphOptimization: "all",
    intraOpThreads: 1,
    interOpThreads: 1,
  });
  return { node, native };
}

function benchPair(
  group: string,
  { node, native }: Awaited<ReturnType<typeof sessions>>,
  x: Float32Array,
  dims: number[],
) {
  const outputs = dims[0] * Number(native.outputMetadata[0].isTensor ? native.outputMetadata[0].shape[1] : 0);
  Deno.bench(`onnxruntime-node run (${group})`, { group, baseline: true }, async () => {
    const { y } = await node.run({ x: new ortNode.Tensor("float32", x, dims) });
    if ((y.data as Float32Array).length !== outputs) throw new Error("wrong output");
  });
  Deno.bench(`C API nonblocking run with a signal (${group})`, { group }, async () => {
    const { y } = await native.run({ x: new Tensor("float32", x, dims) }, { signal });
    if ((y.data as Float32Array).length !== outputs) throw new Error("wrong output");
  });
}

const mlp = await sessions(mlpPath);
for (const rows of [1, 64]) {
  benchPair(`mlp, ${rows} row${rows > 1 ? "s" : ""}`, mlp, Float32Array.from({ length: rows * 4 }, Math.sin), [
    rows,
    4,
  ]);
}
const densePath = await writeTempModel(denseReluModel({ layers: 8, width: 1024 }));
benchPair("8×1024 MLP, 1 row", await sessions(densePath), Float32Array.from({ length: 1024 }, Math.sin), [1, 1024]);
