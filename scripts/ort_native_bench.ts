/**
 * Times the 8×1024 fp32 ReLU MLP (generated here with onnx-proto) at batch 1,
 * 64 and 256 through (a) onnxruntime-node's `InferenceSession.run` and (b) the
 * native C-API path (native/ort/) with IO binding, reporting the median
 * microseconds per run, host copies included (input from a JS array, output
 * back into one).
 *
 *   deno run -A scripts/ort_native_bench.ts           # CPU
 *   deno run -A scripts/ort_native_bench.ts --cuda    # CUDA device 0: (b) on a lane's stream, pinned
 *                                                     # inputs and outputs, TF32, plus (c) with a CUDA graph
 *
 * Options: `--batches 1,64,256`, `--seconds 2` (time budget per case), `--threads N` (CPU intra-op threads).
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as ortNode from "onnxruntime-node";
import { Tensor } from "onnxruntime-common";
import { Lane, openCudaDriver } from "../native/mod.ts";
import { NativeSession, type NativeSessionOptions, OrtEnv, ortLibraryPath } from "../native/ort/mod.ts";
import { denseReluModel } from "../native/ort/test_models.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cuda: { type: "boolean", default: false },
    batches: { type: "string", default: "1,64,256" },
    seconds: { type: "string", default: "2" },
    threads: { type: "string", default: "0" },
  },
});
const layers = 8;
const width = 1024;
const batches = values.batches.split(",").map(Number);
const budgetMs = Number(values.seconds) * 1000;
const threads = Number(values.threads);
const nodeModules = fileURLToPath(new URL("../node_modules", import.meta.url));

/** Median µs of `run` over as many runs as fit the budget (at least 5, at most 2000), after warm-up. */
async function time(run: () => Promise<unknown>): Promise<{ medianUs: number; runs: number }> {
  for (let i = 0; i < 3; i++) await run();
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  while ((samples.length < 5 || performance.now() < end) && samples.length < 2000) {
    const t0 = performance.now();
    await run();
    samples.push((performance.now() - t0) * 1000);
  }
  samples.sort((a, b) => a - b);
  return { medianUs: samples[Math.floor(samples.length / 2)], runs: samples.length };
}

const dir = await Deno.makeTempDir({ prefix: "isolane-ort-bench-" });
const rows: { batch: number; path: string; us: number; runs: number }[] = [];
const opened = values.cuda ? openCudaDriver() : null;
if (opened && !opened.ok) throw new Error(opened.reason);
const lane = opened?.ok ? Lane.open(opened.driver, 0) : null;
const env = OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
try {
  const dynamicPath = `${dir}/mlp_8x1024.onnx`;
  await Deno.writeFile(dynamicPath, denseReluModel({ layers, width }));
  for (const batch of batches) {
    const x = Float32Array.from({ length: batch * width }, (_, i) => Math.sin(i * 0.01));
    // The output is already host memory in JS on every path; touching it keeps the run from being optimised away.
    // (Float32Array.from walks the iterator, about 1 µs per 1,000 floats: it once hid every path's real cost.)
    const read = (t: Tensor | ortNode.Tensor) => (t.data as Float32Array)[0];

    const node = await ortNode.InferenceSession.create(dynamicPath, {
      executionProviders: values.cuda ? [{ name: "cuda", deviceId: 0 }] : ["cpu"],
      graphOptimizationLevel: "all",
      ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
    });
    const a = await time(async () => read((await node.run({ x: new ortNode.Tensor("float32", x, [batch, width]) })).y));
    rows.push({ batch, path: `onnxruntime-node ${values.cuda ? "CUDA" : "CPU"}`, us: a.medianUs, runs: a.runs });
    await node.release();

    const base: NativeSessionOptions = lane
      ? {
        provider: "cuda",
        deviceId: lane.device,
        stream: lane.stream,
        pinned: lane.pinnedMemory(),
        device: lane.deviceMemory(),
        cuda: { useTf32: true },
      }
      : { provider: "cpu", ioBinding: true, intraOpThreads: threads || undefined };
    const native = NativeSession.create(env, dynamicPath, base);
    const b = await time(async () => read((await native.run({ x: new Tensor("float32", x, [batch, width]) })).y));
    rows.push({
      batch,
      path: `native IO binding ${lane ? "CUDA, lane stream, pinned" : "CPU"}`,
      us: b.medianUs,
      runs: b.runs,
    });
    await native.release();

    if (lane) {
      const fixedPath = `${dir}/mlp_8x1024_b${batch}.onnx`;
      await Deno.writeFile(fixedPath, denseReluModel({ layers, width, batch }));
      const graphed = NativeSession.create(env, fixedPath, {
        ...base,
        cuda: { useTf32: true, enableCudaGraph: true },
        gpuGraphId: batch,
      });
      const c = await time(async () => read((await graphed.run({ x: new Tensor("float32", x, [batch, width]) })).y));
      rows.push({ batch, path: "native IO binding + CUDA graph", us: c.medianUs, runs: c.runs });
      await graphed.release();
    }
  }
} finally {
  env.close();
  lane?.close();
  await Deno.remove(dir, { recursive: true });
}

console.log(`8×${width} fp32 ReLU MLP, ORT ${env.version}, per-run median (host copies included)`);
console.log("| batch | path | median µs | runs |");
console.log("|---|---|---|---|");
for (const r of rows) console.log(`| ${r.batch} | ${r.path} | ${r.us.toFixed(0)} | ${r.runs} |`);
