/**
 * The device ceiling: a bare onnxruntime-node loop, no HTTP. For each batch size it runs the model back to back for
 * a while and prints one JSON line: `{"batch", "runs", "seconds", "rowsPerSecond", "p50Ms", "p99Ms"}`.
 *
 *   deno run --allow-all bench/baselines/ort_loop.ts --model m.onnx [--batches 1,64,256] [--seconds 2] [--cuda]
 *
 * The CPU session uses every core as intra-op threads; `--cuda` runs on GPU 0 (CPU as fallback).
 * @module
 */
import * as ort from "onnxruntime-node";
import { parseArgs } from "node:util";
import { availableParallelism } from "node:os";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    batches: { type: "string", default: "1,64,256" },
    seconds: { type: "string", default: "2" },
    cuda: { type: "boolean", default: false },
  },
});
if (!values.model) {
  console.error("Usage: ort_loop.ts --model <file.onnx> [--batches 1,64,256] [--seconds 2] [--cuda]");
  Deno.exit(2);
}
const session = await ort.InferenceSession.create(values.model, {
  intraOpNumThreads: availableParallelism(),
  graphOptimizationLevel: "all",
  executionProviders: values.cuda ? [{ name: "cuda", deviceId: 0 }, "cpu"] : ["cpu"],
});
const meta = session.inputMetadata[0];
const width = meta.isTensor ? Number(meta.shape[1]) : 1;
const seconds = Number(values.seconds);

for (const batch of values.batches.split(",").map(Number)) {
  const data = Float32Array.from({ length: batch * width }, (_, i) => Math.sin(i) * 0.5);
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", data, [batch, width]) };
  for (let i = 0; i < 3; i++) await session.run(feeds); // warm-up
  const times: number[] = [];
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - start) / 1000;
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
  console.log(JSON.stringify({
    batch,
    runs: times.length,
    seconds: elapsed,
    rowsPerSecond: (times.length * batch) / elapsed,
    p50Ms: at(50),
    p99Ms: at(99),
  }));
}
