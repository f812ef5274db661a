/**
 * The isolate's own work on a batch of v2 binary jobs from an HTTP thread, this checkout against another one, in one
 * process: the jobs' inputs copied out of the thread's arena (`takeShared` in `src/isolate/main.ts`), `runBatch`
 * (inputs checked, combined, the model run, outputs cut per job) and the answers written into the link's answer ring
 * and published (`replyByLink`). The model is one `Relu` over `[batch, 1024]` (bench/make_relu1024.ts) in a CPU
 * session of this checkout, so the runtime's JavaScript, not ONNX Runtime, is what counts. `runBatch` and the answer
 * ring come from each checkout, and so does `staged_model.ts` (over this checkout's one CPU session); `takeShared` and
 * `replyByLink` are private to `main.ts`, so each side's is copied
 * here as its checkout has it (`old`: before the seventh round of docs/hop.md; `new`: after). The two sides
 * alternate in blocks; printed: the medians of the blocks' CPU time of the process per job (all its threads: V8's
 * helpers collect the garbage the work leaves; the answers' drain, the HTTP thread's work, left out), and the load
 * average. `--other-pooled`: the other checkout copies the arena as this one does (its own
 * `runBatch` and answers as `old`), to measure the answers' path alone. `--take-only`: both sides are the other
 * checkout's (which must read `ViewedWireTensor` views), `old` copying the arena as before and `new` as now, to measure
 * the inputs' copy alone. `--other-new`: the other checkout is one that has this round's `takeShared` and answers
 * too (a commit of it), to measure what changed since in its files.
 *
 *   deno run -A bench/ab_isolate_batch.ts <other checkout's root> [--rows 32] [--blocks 30] [--batches 300]
 *     [--other-pooled | --take-only | --other-new]
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadOrt } from "../src/inference/ort.ts";
import { createCpuSession, openNativeOrt } from "../src/inference/native.ts";
import { allowModelsOnce } from "../src/inference/model_access.ts";
import { datatypes, isDatatype } from "../src/tensors.ts";
import type { Job, JobResult, SharedTensor, WireTensor } from "../src/protocol.ts";
import type { TensorFunctionDefinition } from "../src/sdk.ts";
import { buildRelu1024 } from "./make_relu1024.ts";
import { giveScratch, takeScratch } from "../src/isolate/scratch.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    rows: { type: "string", default: "32" },
    blocks: { type: "string", default: "30" },
    batches: { type: "string", default: "300" },
    "other-pooled": { type: "boolean", default: false },
    "take-only": { type: "boolean", default: false },
    "other-new": { type: "boolean", default: false },
  },
});
if (!positionals[0]) throw new Error("Usage: bench/ab_isolate_batch.ts <other checkout's root>");
const n = Number(values.rows);
const blocks = Number(values.blocks);
const batches = Number(values.batches);

const folder = await Deno.makeTempDir({ prefix: "isolane-ab-batch-" });
const path = `${folder}/relu.onnx`;
await Deno.writeFile(path, buildRelu1024());
const ort = await loadOrt();
openNativeOrt({ open: true });
allowModelsOnce([path]);
const cpu = await createCpuSession(ort, path, {
  lane: { kind: "cpu" },
  threads: 1,
  root: folder,
  fn: "relu",
  model: "relu",
  onTerminated() {},
});

const definition = {
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1024] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1024] }],
  },
  dynamicBatching: { maxBatchSize: 64, maxQueueDelayMs: 0 },
  handler: () => ({}),
} as unknown as TensorFunctionDefinition;
const base = { name: "relu", models: {}, assets: {}, gpu: null, state: undefined };

// The HTTP thread's arena: request i's row at i × 4 KiB.
const arena = new SharedArrayBuffer(n * 4096);
const rows = new Float32Array(arena);
for (let i = 0; i < rows.length; i++) rows[i] = Math.sin(i * 0.37) - 0.2;

type Writer = { answer(id: number, tensors: readonly unknown[]): boolean; publish(): void };
type Reader = { drain(sink: (id: number, tensors: WireTensor[]) => void): number };
type RunBatch = (
  definition: TensorFunctionDefinition,
  jobs: Job[],
  options: Record<string, unknown>,
) => Promise<JobResult[]>;

interface Side {
  runBatch: RunBatch;
  /** The model as the checkout's `staged_model.ts` stages it, over the one CPU session. */
  model: unknown;
  writer: Writer;
  reader: Reader;
  takeShared(jobs: Job[]): Uint8Array<ArrayBuffer> | void;
  replyByLink(jobs: Job[], results: JobResult[]): void;
  reply?: (job: Job, outputs: readonly unknown[]) => boolean;
}

async function side(root: string, kind: "old" | "new"): Promise<Side> {
  const url = (file: string) => pathToFileURL(`${root}/${file}`).href;
  const { runBatch } = await import(url("src/isolate/run_job.ts"));
  const { oneRunAtATime, stagedModel } = await import(url("src/isolate/staged_model.ts"));
  const model = oneRunAtATime(stagedModel(cpu.model));
  const { AnswerRingReader, AnswerRingWriter } = await import(url("src/answer_ring.ts"));
  const reader = new AnswerRingReader();
  const writer: Writer = new AnswerRingWriter(reader.ring, new SharedArrayBuffer(4));
  if (kind === "old") {
    return {
      runBatch,
      model,
      writer,
      reader,
      takeShared: values["other-pooled"] ? pooledTake : slicedTake,
      replyByLink(jobs, results) {
        let rung = false;
        for (let i = 0; i < jobs.length; i++) {
          const result = results[i];
          if (!result.ok || !result.tensors) continue;
          if (writer.answer(jobs[i].reply!.id, result.tensors)) rung = true;
          else throw new Error("The answer ring is full");
        }
        if (rung) writer.publish();
      },
    };
  }
  return {
    runBatch,
    model,
    writer,
    reader,
    takeShared: pooledTake,
    replyByLink(jobs, results) {
      let rung = false;
      for (let i = 0; i < jobs.length; i++) {
        const result = results[i];
        if (result.ok && result.replied) rung = true;
        else throw new Error("A job was not answered in the ring");
      }
      if (rung) writer.publish();
    },
    reply: (job, outputs) => writer.answer(job.reply!.id, outputs),
  };
}

/** `takeShared` before: a buffer of its own per tensor. */
function slicedTake(jobs: Job[]): void {
  for (const job of jobs) {
    job.tensors = job.shared!.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      data: new Uint8Array(arena, t.offset, t.bytes).slice().buffer,
    }));
    delete job.shared;
  }
}

function poolable(t: SharedTensor): boolean {
  const size = isDatatype(t.datatype) && datatypes[t.datatype].array ? datatypes[t.datatype].byteSize : 0;
  return size > 0 && t.bytes % size === 0;
}

/** `takeShared` after: a run's fixed-size inputs in one buffer kept for reuse, a view each. */
function pooledTake(jobs: Job[]): Uint8Array<ArrayBuffer> {
  let pooled = 0;
  for (const job of jobs) for (const t of job.shared!) if (poolable(t)) pooled += (t.bytes + 7) & ~7;
  const pool = takeScratch(pooled);
  let at = 0;
  for (const job of jobs) {
    job.tensors = job.shared!.map((t) => {
      pool.set(new Uint8Array(arena, t.offset, t.bytes), at);
      const view = pool.subarray(at, at + t.bytes);
      at += (t.bytes + 7) & ~7;
      return { name: t.name, datatype: t.datatype, shape: t.shape, data: new ArrayBuffer(0), view };
    });
    delete job.shared;
  }
  return pool;
}

const here = fileURLToPath(new URL("..", import.meta.url));
const sides = values["take-only"]
  ? { old: await side(positionals[0], "old"), new: { ...await side(positionals[0], "old"), takeShared: pooledTake } }
  : { old: await side(positionals[0], values["other-new"] ? "new" : "old"), new: await side(here, "new") };

/** The process's CPU time so far (user and system, all threads), in ms. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function jobsOf(batch: number): Job[] {
  return Array.from({ length: n }, (_, i) => ({
    id: batch * n + i,
    body: new ArrayBuffer(0),
    shared: [{ name: "x", datatype: "FP32", shape: [1, 1024], offset: i * 4096, bytes: 4096 }],
    reply: { link: 1, id: batch * n + i },
  }));
}

/**
 * Runs `batches` batches on `s`; the CPU time of the process per job, in ms (every thread's: V8's helpers collect the
 * garbage), less the answers' drain (the HTTP thread's work).
 */
async function block(s: Side): Promise<number> {
  let ms = 0;
  let answers = 0;
  for (let b = 0; b < batches; b++) {
    const jobs = jobsOf(b);
    const t0 = cpuMs();
    const pool = s.takeShared(jobs);
    const signals = new Map(jobs.map((job) => [job.id, new AbortController().signal]));
    const results = await s.runBatch(definition, jobs, {
      base,
      model: s.model,
      signals,
      ...(s.reply ? { reply: s.reply } : {}),
    });
    s.replyByLink(jobs, results);
    if (pool) giveScratch(pool);
    ms += cpuMs() - t0;
    answers += s.reader.drain((id, tensors) => {
      const y = new Float32Array(tensors[0].data);
      const x = rows[(id % n) * 1024 + 5];
      if (y[5] !== Math.max(x, 0)) throw new Error(`Answer ${id} is wrong: ${y[5]} for ${x}`);
    });
  }
  if (answers !== batches * n) throw new Error(`${answers} answers for ${batches * n} jobs`);
  return ms / (batches * n);
}

const times: Record<string, number[]> = { old: [], new: [] };
for (let i = 0; i < blocks; i++) {
  const order = i % 2 === 0 ? ["old", "new"] as const : ["new", "old"] as const;
  for (const name of order) times[name].push(await block(sides[name]));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const skip = (xs: number[]) => xs.slice(2);
console.log(
  `${n} jobs a batch, ${blocks} blocks of ${batches} batches each side; load average ${
    Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
  }`,
);
for (const name of ["old", "new"] as const) {
  console.log(
    `  ${name}: ${(median(skip(times[name])) * 1000).toFixed(2)} µs a job (median of blocks, first 2 left out)`,
  );
}
await cpu.session.release();
await Deno.remove(folder, { recursive: true });
