/**
 * The stages of one batch of `/v1` JSON requests in a CPU isolate, timed one by one in this process over the real C
 * API session (as an isolate loads it: `createCpuSession`) and the 8×1024 MLP: JSON decode, wire tensors to ORT
 * tensors, the model run with the rows combined and split back (`runModelRows`), JSON encode; then a bare run of the
 * same batch through the session, and `runBatch` end to end. Medians of 40 rounds, per batch and per row.
 *
 *   deno run -A bench/cpu_batch_stages.ts [--threads 2] [--rows 32]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadOrt } from "../src/inference/ort.ts";
import { createCpuSession, openNativeOrt } from "../src/inference/native.ts";
import { allowModelsOnce } from "../src/inference/model_access.ts";
import { stagedModel } from "../src/isolate/staged_model.ts";
import { runModelRows, tensorsFromWire, wireOf } from "../src/isolate/tensor_input.ts";
import { runBatch } from "../src/isolate/run_job.ts";
import { outputsToJsonBody, wireFromJsonBody } from "../src/tensors.ts";
import type { TensorFunctionDefinition, TensorSignature } from "../src/sdk.ts";
import type { Job } from "../src/protocol.ts";
import type { BaseContext } from "../src/isolate/run_job.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { threads: { type: "string", default: "2" }, rows: { type: "string", default: "32" } },
});
const threads = Number(values.threads);
const n = Number(values.rows);
const path = fileURLToPath(new URL("./.models/mlp8x1024.onnx", import.meta.url));
const ort = await loadOrt();
openNativeOrt({ open: true });
allowModelsOnce([path]);
const cpu = await createCpuSession(ort, path, {
  lane: { kind: "cpu" },
  threads,
  root: fileURLToPath(new URL("./.models", import.meta.url)),
  fn: "mlp8x1024",
  model: "mlp",
  onTerminated() {},
});
const model = stagedModel(cpu.model);
const signature: TensorSignature = {
  inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1024] }],
  outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1024] }],
};
const row = Array.from({ length: 1024 }, (_, i) => Math.round(Math.sin(i * 0.37) * 5000) / 10_000);
const body = new TextEncoder().encode(JSON.stringify({ x: [row] })).buffer as ArrayBuffer;
const jobs = Array.from({ length: n }, (_, id) => ({ id, body: body.slice(0) }) as Job);
const definition = {
  signature,
  dynamicBatching: { maxBatchSize: 64 },
  handler: () => ({}),
} as unknown as TensorFunctionDefinition;
const signals = new Map(jobs.map((job) => [job.id, new AbortController().signal]));
const base = { name: "mlp8x1024", models: {}, assets: {}, gpu: null, state: undefined } as unknown as BaseContext;
const times = new Map<string, number[]>();
const add = (stage: string, ms: number) => times.set(stage, [...times.get(stage) ?? [], ms]);
for (let round = 0; round < 40; round++) {
  let at = performance.now();
  const lap = (stage: string) => {
    const now = performance.now();
    add(stage, now - at);
    at = now;
  };
  const wires = jobs.map((job) => wireFromJsonBody(signature, job.body));
  lap("JSON decode");
  const inputs = wires.map((wire) => tensorsFromWire(signature, wire));
  lap("ORT tensors");
  const split = await runModelRows(model, signature, inputs, { name: "mlp8x1024" });
  lap("combine, run, split");
  for (const outputs of split!) outputsToJsonBody(outputs.map(wireOf));
  lap("JSON encode");
  await cpu.model.run({ x: new ort.Tensor("float32", new Float32Array(n * 1024), [n, 1024]) });
  lap("bare run");
  const results = await runBatch(definition, jobs, { base, model, signals });
  lap("runBatch");
  if (!results.every((r) => r.ok)) throw new Error(`runBatch failed: ${JSON.stringify(results.find((r) => !r.ok))}`);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`${n} rows, ${threads} intra-op threads; load average ${Deno.loadavg()[0].toFixed(2)}`);
for (const [stage, ms] of times) {
  console.log(`  ${stage.padEnd(20)} ${median(ms).toFixed(2)} ms  ${(median(ms) / n * 1000).toFixed(0)} µs/row`);
}
await cpu.session.release();
