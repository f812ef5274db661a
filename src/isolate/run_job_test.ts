import assert from "node:assert/strict";
import type { InferenceSession } from "onnxruntime-common";
import { defineFunction, runModel, type TensorFunctionDefinition } from "../sdk.ts";
import type { Job, JobResult, WireTensor } from "../protocol.ts";
import type { StagedOutput, StagedRun } from "../../native/ort/mod.ts";
import { runBatch, type RunContext, runJob } from "./run_job.ts";
import { graphBatchSizes, type StagedModel } from "./staged_model.ts";

const encoder = new TextEncoder();

const definition = defineFunction({
  description: "y = 2x, z = x + 1 (by a staged model)",
  models: { m: "m.onnx" },
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 2] }],
  },
  dynamicBatching: { maxBatchSize: 8 },
  handler: runModel("m"),
}) as TensorFunctionDefinition;

/**
 * A staged model that stages in one buffer of its own, as a lane's arena does, and detaches that buffer after
 * every run (transfer): a result that still pointed into the staging would read as empty.
 */
function fakeModel(
  options: {
    outputs?: (x: Float32Array, dims: readonly number[]) => Record<string, StagedOutput>;
    /** Batch sizes the model pads to (a CUDA graph per size); its staging holds 99s from before each run. */
    sizes?: number[];
  } = {},
) {
  const runs: { dims: readonly number[][]; x: number[] }[] = [];
  let staging = new ArrayBuffer(1024);
  const model: StagedModel = {
    // deno-lint-ignore require-await
    async run<T>(request: StagedRun<T>): Promise<T> {
      const [input] = request.inputs;
      assert.equal(input.name, "x");
      assert.equal(input.type, "float32");
      const count = input.dims.reduce((a, b) => a * b, 1);
      if (options.sizes) new Float32Array(staging).fill(99);
      const into = new Uint8Array(staging, 0, count * 4);
      request.fill("x", into);
      const x = new Float32Array(staging, 0, count);
      runs.push({ dims: request.inputs.map((i) => [...i.dims]), x: Array.from(x) });
      const y = new Float32Array(staging, 512, count);
      x.forEach((v, i) => (y[i] = 2 * v));
      const outputs = options.outputs?.(x, input.dims) ??
        { y: { type: "float32", dims: input.dims, bytes: new Uint8Array(staging, 512, count * 4) } };
      try {
        return request.consume(outputs);
      } finally {
        staging = staging.transfer();
      }
    },
    ...(options.sizes ? { padRows: (rows: number) => options.sizes!.find((size) => size >= rows) ?? rows } : {}),
  };
  return { model, runs };
}

/** A context whose session must never be called: the runtime runs a runModel handler's model itself. */
function context(model: StagedModel): RunContext {
  const session = {
    run: () => Promise.reject(new Error("the handler ran instead of the staged model")),
  } as unknown as InferenceSession;
  return { base: { name: "double", models: { m: session }, assets: {}, gpu: null, state: undefined }, model };
}

function wire(rows: number[][]): WireTensor {
  return { name: "x", datatype: "FP32", shape: [rows.length, 2], data: Float32Array.from(rows.flat()).buffer };
}

function binaryJob(id: number, rows: number[][]): Job {
  return { id, body: new ArrayBuffer(0), tensors: [wire(rows)] };
}

function jsonJob(id: number, body: unknown): Job {
  return { id, body: encoder.encode(JSON.stringify(body)).buffer as ArrayBuffer };
}

function rowsOf(result: JobResult): number[][] {
  assert.ok(result.ok, JSON.stringify(result));
  if (!result.tensors) return JSON.parse(new TextDecoder().decode(result.body)).y;
  const [y] = result.tensors;
  const data = Array.from(new Float32Array(y.data));
  return Array.from({ length: y.shape[0] }, (_, r) => data.slice(r * 2, r * 2 + 2));
}

const signals = (jobs: Job[]) => new Map(jobs.map((j) => [j.id, new AbortController().signal]));

Deno.test("runModel batch: one staged run over the jobs' rows in order, each job's rows cut out with copies of its own", async () => {
  const { model, runs } = fakeModel();
  const jobs = [
    binaryJob(1, [[1, 2]]),
    jsonJob(2, { x: [[3, 4], [5, 6]] }),
    jsonJob(3, { x: [[1, 2, 3]] }),
    binaryJob(4, [[7, 8], [9, 10], [11, 12]]),
  ];
  const results = await runBatch(definition, jobs, { ...context(model), signals: signals(jobs) });
  assert.equal(runs.length, 1, "the three good jobs ran as one model run");
  assert.deepEqual(runs[0].dims, [[6, 2]]);
  assert.deepEqual(runs[0].x, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual(rowsOf(results[0]), [[2, 4]]);
  assert.deepEqual(rowsOf(results[1]), [[6, 8], [10, 12]]);
  assert.equal(results[2].ok, false, "a bad job fails alone");
  assert.deepEqual(rowsOf(results[3]), [[14, 16], [18, 20], [22, 24]]);
});

Deno.test("runModel single job: the staged run's outputs checked against the signature, as a handler's are", async () => {
  const good = fakeModel();
  const ok = await runJob(definition, binaryJob(1, [[1, -1]]), {
    ...context(good.model),
    signal: new AbortController().signal,
  });
  assert.deepEqual(rowsOf(ok), [[2, -2]]);
  const missing = fakeModel({ outputs: () => ({}) });
  const bad = await runJob(definition, jsonJob(2, { x: [[1, 1]] }), {
    ...context(missing.model),
    signal: new AbortController().signal,
  });
  assert.ok(!bad.ok);
  assert.equal(bad.error.code, "invalid_output");
  assert.match(bad.error.message, /output 'y'.*missing/);
  const failing: StagedModel = { run: () => Promise.reject(new Error("input 'x': no such input")) };
  const thrown = await runJob(definition, jsonJob(3, { x: [[1, 1]] }), {
    ...context(failing),
    signal: new AbortController().signal,
  });
  assert.ok(!thrown.ok);
  assert.equal(thrown.error.code, "handler_error");
  assert.equal(thrown.error.message, "Function 'double' threw: input 'x': no such input");
});

Deno.test("runModel batch: outputs whose rows do not add up are run again job by job", async () => {
  const { model, runs } = fakeModel({
    // One row fewer than asked: the batch cannot be split.
    outputs: (x, dims) => ({
      y: {
        type: "float32",
        dims: [Math.max(0, dims[0] - 1), 2],
        bytes: new Uint8Array(x.buffer, 512, (dims[0] - 1) * 8),
      },
    }),
  });
  const jobs = [binaryJob(1, [[1, 2], [3, 4]]), binaryJob(2, [[5, 6], [7, 8]])];
  const results = await runBatch(definition, jobs, { ...context(model), signals: signals(jobs) });
  assert.deepEqual(runs.map((r) => r.dims), [[[4, 2]], [[2, 2]], [[2, 2]]], "one combined run, then one per job");
  assert.deepEqual(results.map((r) => rowsOf(r).length), [1, 1]);
});

Deno.test("runModel with a scalar input: no rows to stage, so the handler runs the model as any handler would", async () => {
  const scalar = defineFunction({
    description: "y = x * n",
    models: { m: "m.onnx" },
    signature: {
      inputs: [{ name: "n", datatype: "FP32", shape: [] }, { name: "x", datatype: "FP32", shape: [-1, 2] }],
      outputs: [{ name: "y", datatype: "FP32", shape: [-1, 2] }],
    },
    handler: runModel("m"),
  }) as TensorFunctionDefinition;
  const { model, runs } = fakeModel();
  const calls: Record<string, unknown>[] = [];
  const session = {
    // deno-lint-ignore require-await
    async run(feeds: Record<string, { data: Float32Array; dims: readonly number[] }>) {
      calls.push(feeds);
      const n = feeds.n.data[0];
      return { y: { type: "float32", data: feeds.x.data.map((v) => v * n), dims: feeds.x.dims } };
    },
  } as unknown as InferenceSession;
  const result = await runJob(scalar, jsonJob(1, { n: 3, x: [[1, 2]] }), {
    base: { name: "scale", models: { m: session }, assets: {}, gpu: null, state: undefined },
    model,
    signal: new AbortController().signal,
  });
  assert.deepEqual(rowsOf(result), [[3, 6]]);
  assert.equal(runs.length, 0, "nothing was staged");
  assert.equal(calls.length, 1, "the model ran once, through the session");
});

Deno.test("graphBatchSizes: the preferred sizes and maxBatchSize, else powers of two up to maxBatchSize", () => {
  assert.deepEqual(graphBatchSizes({ maxBatchSize: 48 }), [1, 2, 4, 8, 16, 32, 48]);
  assert.deepEqual(graphBatchSizes({ maxBatchSize: 64 }), [1, 2, 4, 8, 16, 32, 64]);
  assert.deepEqual(graphBatchSizes({ maxBatchSize: 32, preferredBatchSizes: [16, 4] }), [4, 16, 32]);
  assert.deepEqual(graphBatchSizes({ maxBatchSize: 1 }), [1]);
});

Deno.test("runModel with batch sizes (CUDA graphs): runs padded with zero rows to the next size, answers cut to the rows", async () => {
  const { model, runs } = fakeModel({ sizes: graphBatchSizes({ maxBatchSize: 8 }) });
  const jobs = [binaryJob(1, [[1, 2]]), jsonJob(2, { x: [[3, 4], [5, 6]] })];
  const results = await runBatch(definition, jobs, { ...context(model), signals: signals(jobs) });
  assert.deepEqual(runs.map((r) => r.dims), [[[4, 2]]], "three rows ran as four");
  assert.deepEqual(runs[0].x, [1, 2, 3, 4, 5, 6, 0, 0], "the padding is zeros, not what staging held");
  assert.deepEqual(rowsOf(results[0]), [[2, 4]]);
  assert.deepEqual(rowsOf(results[1]), [[6, 8], [10, 12]]);
  const alone = await runJob(definition, binaryJob(3, [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]), {
    ...context(model),
    signal: new AbortController().signal,
  });
  assert.deepEqual(runs[1].dims, [[8, 2]], "one job of five rows ran as eight");
  assert.deepEqual(rowsOf(alone), [[2, 2], [4, 4], [6, 6], [8, 8], [10, 10]]);
  const full = await runJob(definition, binaryJob(4, [[1, 1], [1, 1]]), {
    ...context(model),
    signal: new AbortController().signal,
  });
  assert.deepEqual(runs[2].dims, [[2, 2]], "a batch of a size on the list runs as it is");
  assert.deepEqual(rowsOf(full), [[2, 2], [2, 2]]);
});

Deno.test("runModel with batch sizes: zero rows, odd counts, more rows than the largest size, two outputs (FP32 and INT64)", async () => {
  const two = defineFunction({
    description: "y = 2x, i = the row's index",
    models: { m: "m.onnx" },
    signature: {
      inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }],
      outputs: [{ name: "y", datatype: "FP32", shape: [-1, 2] }, { name: "i", datatype: "INT64", shape: [-1] }],
    },
    dynamicBatching: { maxBatchSize: 4 },
    handler: runModel("m"),
  }) as TensorFunctionDefinition;
  const { model, runs } = fakeModel({
    sizes: graphBatchSizes({ maxBatchSize: 4 }),
    outputs: (x, dims) => {
      const i = new BigInt64Array(dims[0]).map((_, r) => BigInt(r));
      const y = x.map((v) => 2 * v);
      return {
        y: { type: "float32", dims: [...dims], bytes: new Uint8Array(y.buffer) },
        i: { type: "int64", dims: [dims[0]], bytes: new Uint8Array(i.buffer) },
      };
    },
  });
  const outputsOf = (result: JobResult) => {
    assert.ok(result.ok && result.tensors, JSON.stringify(result));
    const [y, i] = result.tensors;
    return { y: Array.from(new Float32Array(y.data)), yShape: y.shape, i: Array.from(new BigInt64Array(i.data)) };
  };
  const run = (id: number, rows: number[][]) =>
    runJob(two, { id, body: new ArrayBuffer(0), tensors: [wire(rows)] }, {
      ...context(model),
      signal: new AbortController().signal,
    });
  // Zero rows run as one zero row, and answer none.
  assert.deepEqual(outputsOf(await run(1, [])), { y: [], yShape: [0, 2], i: [] });
  assert.deepEqual(runs.at(-1)!.dims, [[1, 2]]);
  // Three rows run as four; the padded row's outputs are cut off, the INT64 output's too.
  assert.deepEqual(outputsOf(await run(2, [[1, 1], [2, 2], [3, 3]])), {
    y: [2, 2, 4, 4, 6, 6],
    yShape: [3, 2],
    i: [0n, 1n, 2n],
  });
  assert.deepEqual(runs.at(-1)!.dims, [[4, 2]]);
  // Five rows, past maxBatchSize and every size: run as they are.
  const five = [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]];
  assert.deepEqual(outputsOf(await run(3, five)).i, [0n, 1n, 2n, 3n, 4n]);
  assert.deepEqual(runs.at(-1)!.dims, [[5, 2]]);
});

Deno.test("runModel with batch sizes: inputs whose first dimensions differ are not padded (each keeps its rows)", async () => {
  const twoInputs = defineFunction({
    description: "y = 2x (w is a second input with rows of its own)",
    models: { m: "m.onnx" },
    signature: {
      inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }, { name: "w", datatype: "FP32", shape: [-1, 2] }],
      outputs: [{ name: "y", datatype: "FP32", shape: [-1, 2] }],
    },
    handler: runModel("m"),
  }) as TensorFunctionDefinition;
  const seen: Record<string, number[]>[] = [];
  const model: StagedModel = {
    // deno-lint-ignore require-await
    async run<T>(request: StagedRun<T>): Promise<T> {
      const buffers: Record<string, Uint8Array> = {};
      for (const input of request.inputs) {
        buffers[input.name] = new Uint8Array(input.dims.reduce((a, b) => a * b, 1) * 4);
        request.fill(input.name, buffers[input.name]);
      }
      seen.push(Object.fromEntries(request.inputs.map((i) => [i.name, [...i.dims]])));
      const x = new Float32Array(buffers.x.buffer);
      const y = x.map((v) => 2 * v);
      const dims = request.inputs.find((i) => i.name === "x")!.dims;
      return request.consume({ y: { type: "float32", dims, bytes: new Uint8Array(y.buffer) } });
    },
    padRows: (rows) => [1, 2, 4, 8].find((size) => size >= rows) ?? rows,
  };
  const job: Job = {
    id: 1,
    body: new ArrayBuffer(0),
    tensors: [
      { name: "x", datatype: "FP32", shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]).buffer },
      { name: "w", datatype: "FP32", shape: [1, 2], data: Float32Array.from([9, 9]).buffer },
    ],
  };
  const result = await runJob(twoInputs, job, { ...context(model), signal: new AbortController().signal });
  assert.deepEqual(seen, [{ x: [3, 2], w: [1, 2] }], "neither input was padded to four rows");
  assert.deepEqual(rowsOf(result), [[2, 4], [6, 8], [10, 12]]);
});
