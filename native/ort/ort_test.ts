import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as ortNode from "onnxruntime-node";
import { Tensor } from "onnxruntime-common";
import {
  apiMembers,
  cpuComputeNodes,
  inlineWindow,
  isTerminatedRun,
  NativeSession,
  OrtEnv,
  OrtError,
  ortLibraryPath,
  parsePlacement,
  placementFromProfile,
  probePlacement,
  RunAbortedError,
} from "./mod.ts";
import { denseReluModel, denseReluReference, loopMatMulModel, matMulModel, writeTempModel } from "./test_models.ts";
import { othersSettled } from "./_threads.ts";

const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));
const libraryPath = ortLibraryPath(nodeModules);
const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));
const providerDir = fileURLToPath(
  new URL("../../node_modules/onnxruntime-node/bin/napi-v6/linux/x64", import.meta.url),
);

const env = OrtEnv.open({ libraryPath });
// Each test leaves the process-wide environment as it found it; the file's last test closes it.

const loopPath = await writeTempModel(loopMatMulModel(256), "loop.onnx");

/** Feeds of the loop model: `n` iterations of a row of 1..256 (which the identity keeps). */
function loopFeeds(n: number) {
  return {
    n: new Tensor("int64", BigInt64Array.of(BigInt(n)), []),
    x: new Tensor("float32", Float32Array.from({ length: 256 }, (_, i) => i + 1), [1, 256]),
  };
}

/**
 * A Worker with permissions of its own: a Worker that inherits its parent's shares them, and its revoke of ffi would
 * be this process's too (measured on Deno 2.9.6).
 */
function afterDropWorker(): Worker {
  return new Worker(new URL("./_after_drop_worker.ts", import.meta.url), {
    type: "module",
    deno: { permissions: { read: true, ffi: true, env: true, sys: true } },
  });
}

function mlpFeeds(rows: number) {
  const data = Float32Array.from({ length: rows * 4 }, (_, i) => Math.sin(i * 1.3) * 3);
  return { data, tensor: new Tensor("float32", data, [rows, 4]) };
}

Deno.test("the library is ORT 1.29.0 and answers through the API 29 table", () => {
  assert.equal(env.version, "1.29.0");
  assert.equal(env.library.apiVersion, 29);
  // Called through libffi, the path that keeps working after an isolate drops ffi.
  assert.equal(env.library.caller, "libffi");
  // CreateStatus (0), GetErrorCode (1) and GetErrorMessage (2) round-trip a status.
  const error = env.statusRoundTrip(3, "no such thing");
  assert.ok(error instanceof OrtError);
  assert.equal(error.code, 3);
  assert.equal(error.codeName, "ORT_NO_SUCHFILE");
  assert.equal(error.ortMessage, "no such thing");
  // GetBuildInfoString (254) and GetAvailableProviders (125) answer what only they answer.
  assert.match(env.buildInfo(), /^ORT Build Info: /);
  assert.ok(env.availableProviders().includes("CPUExecutionProvider"));
  assert.equal(apiMembers.RunWithBinding.index, 133);
});

Deno.test("CreateEnv returns the one process-wide environment, shared with onnxruntime-node", async () => {
  const session = await ortNode.InferenceSession.create(mlpPath);
  using again = OrtEnv.open({ libraryPath });
  assert.equal(again.handle, env.handle);
  await session.release();
});

Deno.test("mlp.onnx loaded by path through the C API equals onnxruntime-node exactly", async () => {
  const { data, tensor } = mlpFeeds(5);
  const reference = await ortNode.InferenceSession.create(mlpPath, { graphOptimizationLevel: "all" });
  const expected = (await reference.run({ x: new ortNode.Tensor("float32", data, [5, 4]) })).y;
  await reference.release();
  const session = NativeSession.create(env, mlpPath, { provider: "cpu" });
  try {
    assert.deepEqual(session.inputNames, ["x"]);
    assert.deepEqual(session.outputNames, ["y"]);
    assert.deepEqual(session.inputMetadata, [{ name: "x", isTensor: true, type: "float32", shape: ["batch", 4] }]);
    assert.deepEqual(session.outputMetadata, [{ name: "y", isTensor: true, type: "float32", shape: ["batch", 3] }]);
    const { y } = await session.run({ x: tensor });
    assert.deepEqual(y.dims, [5, 3]);
    assert.equal(y.type, "float32");
    assert.deepEqual(Array.from(y.data as Float32Array), Array.from(expected.data as Float32Array));
    // The same run on the handles: GetTensorTypeAndShape and GetTensorSizeInBytes of ORT's output.
    using input = env.tensor("float32", data, [5, 4]);
    const outputs = session.session.run({ x: input });
    using out = outputs.y;
    assert.deepEqual(out.shape(), { type: "float32", dims: [5, 3] });
    assert.equal(out.byteLength(), 5 * 3 * 4);
  } finally {
    await session.release();
  }
});

Deno.test("IO binding gives the same outputs as a plain Run", async () => {
  const { tensor } = mlpFeeds(7);
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false });
  const bound = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: true });
  try {
    // Batch sizes change between runs: each run's outputs get their own shape.
    for (const rows of [7, 7, 1, 12, 3]) {
      const x = rows === 7 ? tensor : mlpFeeds(rows).tensor;
      const a = (await plain.run({ x })).y;
      const b = (await bound.run({ x })).y;
      assert.deepEqual(b.dims, [rows, 3]);
      assert.deepEqual(Array.from(b.data as Float32Array), Array.from(a.data as Float32Array));
    }
  } finally {
    await bound.release();
    await plain.release();
  }
});

Deno.test("nonblocking runs (Deno's blocking-thread pool) give the same outputs, also when started together", async () => {
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false });
  const bound = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: true, nonblocking: true });
  const unbound = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false, nonblocking: true });
  try {
    const feeds = [1, 2, 3, 4, 5].map((rows) => mlpFeeds(rows).tensor);
    const expected = await Promise.all(
      feeds.map(async (x) => Array.from((await plain.run({ x })).y.data as Float32Array)),
    );
    for (const session of [bound, unbound]) {
      const got = await Promise.all(
        feeds.map(async (x) => Array.from((await session.run({ x })).y.data as Float32Array)),
      );
      assert.deepEqual(got, expected);
    }
  } finally {
    await unbound.release();
    await bound.release();
    await plain.release();
  }
});

Deno.test("a missing model file is ORT_NO_SUCHFILE; a bad input name or shape is ORT_INVALID_ARGUMENT", async () => {
  const missing = assert.throws(
    () => NativeSession.create(env, "/nonexistent/isolane/model.onnx", { provider: "cpu" }),
    (error: unknown) => {
      assert.ok(error instanceof OrtError);
      assert.equal(error.codeName, "ORT_NO_SUCHFILE");
      assert.match(error.message, /\/nonexistent\/isolane\/model\.onnx/);
      return true;
    },
  );
  void missing;
  const session = NativeSession.create(env, mlpPath, { provider: "cpu" });
  try {
    await assert.rejects(() => session.run({ z: mlpFeeds(1).tensor }), (error: unknown) => {
      assert.ok(error instanceof OrtError);
      assert.equal(error.codeName, "ORT_INVALID_ARGUMENT");
      assert.match(error.message, /'z'/);
      return true;
    });
    await assert.rejects(
      () => session.run({ x: new Tensor("float32", new Float32Array(6), [2, 3]) }),
      (error: unknown) => {
        assert.ok(error instanceof OrtError);
        assert.equal(error.codeName, "ORT_INVALID_ARGUMENT");
        assert.match(error.ortMessage, /invalid dimensions for input: x/);
        return true;
      },
    );
    // The session still answers after refusing bad input.
    assert.deepEqual((await session.run({ x: mlpFeeds(2).tensor })).y.dims, [2, 3]);
  } finally {
    await session.release();
  }
});

Deno.test("RunOptionsSetTerminate fails a run with ORT's cancel error, before it starts or while it runs", async () => {
  const options = { layers: 24, width: 512 };
  const path = await writeTempModel(denseReluModel(options));
  using so = env.sessionOptions({ intraOpThreads: 1 });
  using session = env.session(path, so);
  using runOptions = env.runOptions();
  const x = Float32Array.from({ length: 64 * 512 }, (_, i) => Math.sin(i));
  using input = env.tensor("float32", x, [64, 512]);
  try {
    runOptions.terminate();
    assert.throws(() => session.run({ x: input }, { runOptions }), /terminate flag/);
    runOptions.resume();
    // Started on Deno's blocking-thread pool, then terminated from the isolate's thread while ORT works.
    const running = session.runAsync({ x: input }, { runOptions });
    runOptions.terminate();
    await assert.rejects(running, (error: unknown) => {
      assert.ok(error instanceof OrtError);
      assert.equal(error.codeName, "ORT_FAIL");
      assert.match(error.ortMessage, /Exiting due to terminate flag being set to true/);
      return true;
    });
    runOptions.resume();
    const outputs = await session.runAsync({ x: input }, { runOptions });
    const y = outputs.y.read() as Float32Array;
    outputs.y.close();
    const expected = denseReluReference(x.subarray(0, 512), 1, options);
    const worst = Math.max(...Array.from(expected, (v, i) => Math.abs(v - y[i])));
    assert.ok(worst < 1e-3, `first row differs from the JS reference by ${worst}`);
  } finally {
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("a nonblocking run stops when its signal aborts: its own run options, the session's other runs go on", async () => {
  const session = NativeSession.create(env, loopPath, { provider: "cpu", nonblocking: true, intraOpThreads: 1 });
  try {
    const controller = new AbortController();
    const started = performance.now();
    const long = session.run(loopFeeds(100_000_000), { signal: controller.signal });
    const short = session.run(loopFeeds(20_000));
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(long, (error: unknown) => {
      assert.ok(isTerminatedRun(error), String(error));
      return true;
    });
    const stoppedMs = performance.now() - started;
    // 10^8 iterations take minutes; stopped, the run ends within an iteration of the abort.
    assert.ok(stoppedMs < 5000, `stopped after ${stoppedMs} ms`);
    const { y } = await short;
    assert.deepEqual(Array.from(y.data as Float32Array).slice(0, 3), [1, 2, 3]);
    // A signal aborted already: the run is not started.
    await assert.rejects(session.run(loopFeeds(1), { signal: controller.signal }), RunAbortedError);
    // The session still runs, and only the outputs asked for come back.
    assert.deepEqual(Object.keys(await session.run(loopFeeds(3), { outputs: ["y"] })), ["y"]);
  } finally {
    await session.release();
  }
});

Deno.test("release() terminates nonblocking runs in flight and waits for them before releasing the session", async () => {
  const session = NativeSession.create(env, loopPath, { provider: "cpu", nonblocking: true, intraOpThreads: 1 });
  const running = session.run(loopFeeds(100_000_000));
  const order: string[] = [];
  running.catch((error) => order.push(isTerminatedRun(error) ? "run terminated" : String(error)));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await session.release();
  order.push("released");
  assert.deepEqual(order, ["run terminated", "released"]);
});

Deno.test("tensorCopy holds its own copy in ORT's memory; data that does not fill the shape is refused", async () => {
  const data = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  using value = env.tensorCopy("float32", data, [2, 4]);
  data.fill(0);
  assert.deepEqual(Array.from(value.read() as Float32Array), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.notEqual(value.dataAddress(), 0n);
  assert.throws(() => env.tensorCopy("float32", new Float32Array(3), [2, 2]), (error: unknown) => {
    assert.ok(error instanceof OrtError);
    assert.equal(error.codeName, "ORT_INVALID_ARGUMENT");
    return true;
  });
  using empty = env.tensorCopy("int64", new BigInt64Array(0), [0, 3]);
  assert.deepEqual(empty.shape(), { type: "int64", dims: [0, 3] });
  // A nonblocking run over copies gives what a plain run gives.
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu" });
  const detached = NativeSession.create(env, mlpPath, { provider: "cpu", nonblocking: true });
  try {
    const { tensor } = mlpFeeds(3);
    assert.deepEqual((await detached.run({ x: tensor })).y.data, (await plain.run({ x: tensor })).y.data);
  } finally {
    await detached.release();
    await plain.release();
  }
});

Deno.test("AddInitializer replaces a weight with the caller's OrtValue without copying it", async () => {
  const w1 = new Float32Array(4 * 16); // zero weights: y = relu(b1) W2 + b2 for every row
  using value = env.tensor("float32", w1, [4, 16]);
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu" });
  const shared = NativeSession.create(env, mlpPath, { provider: "cpu", initializers: { w1: value } });
  try {
    const { tensor } = mlpFeeds(3);
    const a = Array.from((await plain.run({ x: tensor })).y.data as Float32Array);
    const b = Array.from((await shared.run({ x: tensor })).y.data as Float32Array);
    assert.notDeepEqual(b, a);
    assert.deepEqual(b.slice(0, 3), b.slice(3, 6));
    assert.deepEqual(b.slice(0, 3), b.slice(6, 9));
  } finally {
    await shared.release();
    await plain.release();
  }
});

Deno.test("every handle is released: RSS stays flat over create/run/release cycles of a 16 MiB model", async () => {
  const path = await writeTempModel(denseReluModel({ layers: 4, width: 1024 }));
  const cycle = async () => {
    const session = NativeSession.create(env, path, { provider: "cpu", ioBinding: true });
    await session.run({ x: new Tensor("float32", new Float32Array(1024), [1, 1024]) });
    await session.release();
  };
  try {
    for (let i = 0; i < 3; i++) await cycle();
    const before = Deno.memoryUsage().rss;
    for (let i = 0; i < 25; i++) await cycle();
    const grown = Deno.memoryUsage().rss - before;
    // 25 leaked sessions would hold 25 × 16 MiB = 400 MiB of weights.
    assert.ok(grown < 100 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB over 25 cycles`);
  } finally {
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("placement: ORT's own log, read from a probe session; compute nodes on the CPU are named", () => {
  const placement = probePlacement(env, mlpPath, () => env.sessionOptions());
  assert.ok(placement.CPUExecutionProvider.count > 0, JSON.stringify(placement));
  assert.deepEqual(Object.keys(placement), ["CPUExecutionProvider"]);
  const parsed = parsePlacement([
    "Node placements",
    " Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 2",
    "  MatMul (fc1)",
    "  Relu (act)",
    " Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2",
    "  Shape (shape0)",
    "  Gemm (head)",
  ]);
  assert.equal(parsed.CUDAExecutionProvider.count, 2);
  assert.deepEqual(cpuComputeNodes(parsed), ["Gemm (head)"]);
});

Deno.test("profiling: the profile of a run names the provider of every node that ran", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-ort-profile-" });
  const session = NativeSession.create(env, mlpPath, { provider: "cpu", profilingPrefix: `${dir}/mlp` });
  try {
    await session.run({ x: mlpFeeds(2).tensor });
    const path = session.session.endProfiling();
    assert.ok(path.startsWith(`${dir}/mlp`), path);
    const placement = placementFromProfile(JSON.parse(await Deno.readTextFile(path)));
    assert.deepEqual(Object.keys(placement), ["CPUExecutionProvider"]);
    const ops = placement.CPUExecutionProvider.nodes.map((n) => n.opType);
    assert.ok(ops.some((op) => op === "Gemm" || op === "MatMul" || op === "FusedMatMul"), ops.join(", "));
  } finally {
    await session.release();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CUDA and TensorRT providers fail with a typed error where they cannot load", () => {
  const cudaInstalled = (() => {
    try {
      return Deno.statSync(`${providerDir}/libonnxruntime_providers_cuda.so`).isFile;
    } catch {
      return false;
    }
  })();
  if (!cudaInstalled) {
    assert.throws(() => env.cudaProviderOptions({ deviceId: 0, useTf32: false }), (error: unknown) => {
      assert.ok(error instanceof OrtError);
      assert.equal(error.codeName, "ORT_FAIL");
      assert.match(error.ortMessage, /libonnxruntime_providers_shared\.so/);
      return true;
    });
    assert.throws(
      () => NativeSession.create(env, mlpPath, { provider: "cuda" }),
      (error: unknown) => error instanceof OrtError && /Failed to load library/.test(error.message),
    );
  }
  // No machine here has TensorRT (libnvinfer): the provider never silently becomes CUDA or CPU.
  assert.throws(
    () => NativeSession.create(env, mlpPath, { provider: "tensorrt" }),
    (error: unknown) => error instanceof OrtError && error.code !== 0,
  );
});

Deno.test("after the ffi permission is dropped, sessions are still created and run (a Worker, as isolates do)", async () => {
  const worker = afterDropWorker();
  try {
    const { data: x } = mlpFeeds(2);
    const answer = new Promise<Record<string, unknown>>((resolve) => {
      worker.onmessage = (event) => resolve(event.data);
    });
    worker.postMessage({ libraryPath, modelPath: mlpPath, x: Array.from(x), dims: [2, 4], loopPath });
    const result = await answer;
    assert.equal(result.ok, true, String(result.error));
    assert.equal(result.pointerOpsRefused, true);
    assert.equal(result.stopped, true, "a nonblocking run was stopped by its signal after the drop");
    const reference = await ortNode.InferenceSession.create(mlpPath);
    const expected = (await reference.run({ x: new ortNode.Tensor("float32", x, [2, 4]) })).y.data as Float32Array;
    await reference.release();
    assert.deepEqual(result.y1, Array.from(expected));
    assert.deepEqual(result.y2, Array.from(expected));
    assert.deepEqual(result.y3, Array.from(expected), "a nonblocking run after the drop");
    assert.deepEqual(result.y4, Array.from(expected), "runStaged in an arena mapped before the drop");
  } finally {
    worker.terminate();
  }
});

Deno.test("a Worker that ends during a nonblocking run leaves the process sound: the run works on native memory", async () => {
  // The run's arguments, names, inputs and result words live outside the Worker's heap, which terminate() frees
  // while ORT still works on another thread; the run then finishes into memory that is still valid.
  const worker = afterDropWorker();
  const started = new Promise<Record<string, unknown>>((
    resolve,
  ) => (worker.onmessage = (event) => resolve(event.data)));
  worker.postMessage({ libraryPath, modelPath: mlpPath, x: [], dims: [], loopPath, leaveRunning: 60_000 });
  const answer = await started;
  assert.equal(answer.running, true, String(answer.error));
  worker.terminate();
  // The run (about 0.3 s on an idle machine) ends after its Worker; this process goes on using ORT. Waited for, so
  // that it does not outlive this file's test module (a loaded machine ran it for seconds).
  assert.ok(await othersSettled(), "the orphaned run ended");
  const session = NativeSession.create(env, loopPath, { provider: "cpu", nonblocking: true });
  try {
    const { y } = await session.run(loopFeeds(10));
    assert.equal((y.data as Float32Array)[255], 256);
  } finally {
    await session.release();
    await Deno.remove(loopPath.slice(0, loopPath.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("a run whose inputs hold no more elements than recent short runs, but in larger dimensions, goes to the pool", async () => {
  // [1, k]·[k, 1] is a dot product; [k, 1]·[1, k] has as many input elements and k² outputs (here 16 M): a run that
  // must stay stoppable by its signal, so not on the calling thread.
  const k = 4096;
  const path = await writeTempModel(matMulModel(), "matmul.onnx");
  const session = NativeSession.create(env, path, { provider: "cpu", nonblocking: true, inlineRunsUnderMs: 60_000 });
  try {
    const ones = new Float32Array(k).fill(1);
    const row = new Tensor("float32", ones, [1, k]);
    const column = new Tensor("float32", ones, [k, 1]);
    for (let i = 0; i < inlineWindow; i++) assert.deepEqual((await session.run({ a: row, b: column })).y.dims, [1, 1]);
    assert.equal((await session.run({ a: row, b: column })).y.data[0], k);
    assert.equal(session.inlineRuns, 1, "a run of the shapes the window saw goes inline");
    // Smaller in every dimension: inline too.
    const half = new Tensor("float32", ones.subarray(0, k / 2), [1, k / 2]);
    const halfColumn = new Tensor("float32", ones.subarray(0, k / 2), [k / 2, 1]);
    assert.equal((await session.run({ a: half, b: halfColumn })).y.data[0], k / 2);
    assert.equal(session.inlineRuns, 2);
    const { y } = await session.run({ a: column, b: row });
    assert.deepEqual(y.dims, [k, k]);
    assert.equal(session.inlineRuns, 2, "the outer product went to the pool");
  } finally {
    await session.release();
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("one slow run in the window sends to the pool only the runs no short run bounds", async () => {
  // The loop's count is a value, not a shape: a run of many iterations stands in for a run that took long for reasons
  // its shapes do not tell (a preempted thread, a wait for the pool's thread), with the same shapes as the short ones.
  // 100,000 iterations of a 256×256 product take hundreds of milliseconds, one well under the bound of 20 ms.
  const path = await writeTempModel(loopMatMulModel(256), "loop.onnx");
  const session = NativeSession.create(env, path, { provider: "cpu", nonblocking: true, inlineRunsUnderMs: 20 });
  try {
    for (let i = 0; i < inlineWindow - 1; i++) await session.run(loopFeeds(1));
    await session.run(loopFeeds(100_000));
    assert.equal(session.inlineRuns, 0, "no run goes inline before the window is full");
    const { y } = await session.run(loopFeeds(1));
    assert.equal((y.data as Float32Array)[255], 256);
    assert.equal(session.inlineRuns, 1, "short runs of the same shapes are in the window: inline");
  } finally {
    await session.release();
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("a nonblocking session runs inline once its recent runs were short, and only inputs no larger than theirs", async () => {
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu" });
  // A bound no run reaches, and one every run passes: what goes inline then follows the window and the sizes alone.
  const roomy = NativeSession.create(env, mlpPath, { provider: "cpu", nonblocking: true, inlineRunsUnderMs: 60_000 });
  const strict = NativeSession.create(env, mlpPath, { provider: "cpu", nonblocking: true, inlineRunsUnderMs: 1e-9 });
  const never = NativeSession.create(env, mlpPath, { provider: "cpu", nonblocking: true });
  try {
    const { tensor } = mlpFeeds(3);
    const { y: expected } = await plain.run({ x: tensor });
    for (let i = 0; i < inlineWindow; i++) {
      for (const session of [roomy, strict, never]) await session.run({ x: tensor });
    }
    assert.equal(roomy.inlineRuns, 0, "no run goes inline before the window is full");
    const { y } = await roomy.run({ x: tensor });
    assert.equal(roomy.inlineRuns, 1);
    assert.deepEqual(y.data, expected.data);
    assert.deepEqual(y.dims, [3, 3]);
    // More rows than any recent run: to the pool, and then that size too goes inline.
    await roomy.run({ x: mlpFeeds(5).tensor });
    assert.equal(roomy.inlineRuns, 1);
    const { y: five } = await roomy.run({ x: mlpFeeds(5).tensor });
    assert.equal(roomy.inlineRuns, 2);
    assert.deepEqual(five.data, (await plain.run({ x: mlpFeeds(5).tensor })).y.data);
    // A signal aborted already stops an inline run before it starts, as any other.
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(roomy.run({ x: tensor }, { signal: controller.signal }), RunAbortedError);
    for (const session of [strict, never]) await session.run({ x: tensor });
    assert.equal(strict.inlineRuns, 0, "runs that took longer than the bound stay on the pool");
    assert.equal(never.inlineRuns, 0, "without the option every run goes to the pool");
  } finally {
    for (const session of [plain, roomy, strict, never]) await session.release();
  }
});
