/**
 * The native ORT path (native/ort/) on a real GPU: sessions on a lane's
 * stream through the C API, IO binding from pinned host memory, CUDA graphs,
 * placement read from ORT's own log, and no silent CPU fallback. Skipped,
 * with one line saying why, where no GPU (or no ORT CUDA provider) is usable.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as ortNode from "onnxruntime-node";
import { Tensor } from "onnxruntime-common";
import onnxProto from "onnx-proto";
import { Lane, openCudaDriver } from "../../native/mod.ts";
import {
  cpuComputeNodes,
  NativeSession,
  type NativeSessionOptions,
  OrtEnv,
  OrtError,
  ortLibraryPath,
  PinnedArena,
  placementFromProfile,
} from "../../native/ort/mod.ts";
import { denseReluModel, writeTempModel } from "../../native/ort/test_models.ts";
import { gpus, skipReason } from "./gpu_support.ts";

const ignore = skipReason !== null;
/** ORT's CUDA provider computes MatMul in TF32 when asked (use_tf32): compare with a tolerance. */
const tf32 = 5e-3;
const libraryPath = ortLibraryPath(fileURLToPath(new URL("../../node_modules", import.meta.url)));
const MiB = 1024 * 1024;

/** Opens a lane on device 0 and the ORT environment, runs `fn`, and closes both in reverse order. */
async function withLane(fn: (lane: Lane, env: OrtEnv) => Promise<void>): Promise<void> {
  const opened = openCudaDriver();
  if (!opened.ok) throw new Error(opened.reason);
  using lane = Lane.open(opened.driver, gpus[0].index);
  using env = OrtEnv.open({ libraryPath });
  await fn(lane, env);
}

function laneOptions(lane: Lane, extra: Partial<NativeSessionOptions> = {}): NativeSessionOptions {
  return {
    provider: "cuda",
    deviceId: lane.device,
    stream: lane.stream,
    pinned: lane.pinnedMemory(),
    device: lane.deviceMemory(),
    ...extra,
    cuda: {
      useTf32: true,
      gpuMemLimit: 512 * MiB,
      arenaExtendStrategy: "kSameAsRequested",
      cudnnConvAlgoSearch: "HEURISTIC",
      ...extra.cuda,
    },
  };
}

async function cpuReference(path: string, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ortNode.InferenceSession.create(path, { executionProviders: ["cpu"] });
  try {
    return (await session.run({ x: new ortNode.Tensor("float32", x, dims) })).y.data as Float32Array;
  } finally {
    await session.release();
  }
}

function assertCloseArrays(actual: Float32Array, expected: Float32Array, label: string): void {
  assert.equal(actual.length, expected.length, label);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i])));
  }
  assert.ok(worst <= tf32, `${label}: differs from the CPU by ${worst} (TF32 tolerance ${tf32})`);
}

function input(rows: number, width: number, seed: number): Float32Array {
  return Float32Array.from({ length: rows * width }, (_, i) => Math.sin(seed * 3.3 + i * 0.17));
}

Deno.test({
  name: "gpu ort 1: a session on the lane's stream, inputs from pinned memory, equals the CPU within TF32",
  ignore,
  fn: () =>
    withLane(async (lane, env) => {
      const path = await writeTempModel(denseReluModel({ layers: 4, width: 256 }));
      const folder = path.slice(0, path.lastIndexOf("/"));
      const session = NativeSession.create(env, path, laneOptions(lane, { profilingPrefix: `${folder}/profile` }));
      try {
        // Placement, observed in ORT's log: the MatMuls run on CUDA, no compute node on the CPU.
        const cuda = session.placement?.CUDAExecutionProvider;
        assert.ok(cuda && cuda.count > 0, JSON.stringify(session.placement));
        assert.deepEqual(cpuComputeNodes(session.placement!), []);
        for (const rows of [1, 7, 64]) {
          const x = input(rows, 256, rows);
          const { y } = await session.run({ x: new Tensor("float32", x, [rows, 256]) });
          assert.deepEqual(y.dims, [rows, 256]);
          assertCloseArrays(y.data as Float32Array, await cpuReference(path, x, [rows, 256]), `batch ${rows}`);
        }
        // ORT ran on the lane's stream in the lane's context: the thread still has the lane's primary context.
        assert.equal(lane.binding().primary, true);
        // What really ran, from ORT's profile: the MatMuls on CUDA, none on the CPU.
        const ran = placementFromProfile(JSON.parse(await Deno.readTextFile(session.session.endProfiling())));
        const onCuda = ran.CUDAExecutionProvider?.nodes.map((n) => n.opType) ?? [];
        assert.ok(onCuda.some((op) => /MatMul|Gemm/.test(op)), JSON.stringify(ran));
        assert.deepEqual(cpuComputeNodes(ran), []);
      } finally {
        await session.release();
        await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      }
    }),
});

Deno.test({
  name: "gpu ort 2: CUDA graph (one per gpu_graph_id) replays with new inputs, fixed device inputs and outputs",
  ignore,
  fn: () =>
    withLane(async (lane, env) => {
      const path = await writeTempModel(denseReluModel({ layers: 4, width: 256, batch: 16 }));
      const session = NativeSession.create(
        env,
        path,
        laneOptions(lane, { cuda: { enableCudaGraph: true }, gpuGraphId: 1 }),
      );
      try {
        for (let seed = 0; seed < 4; seed++) {
          const x = input(16, 256, seed);
          const { y } = await session.run({ x: new Tensor("float32", x, [16, 256]) });
          assertCloseArrays(y.data as Float32Array, await cpuReference(path, x, [16, 256]), `replay ${seed}`);
        }
      } finally {
        await session.release();
        await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      }
    }),
});

/** A MatMul on int32, which the CUDA provider has no kernel for: ORT would place it on the CPU. */
function int32MatMulModel(): Uint8Array {
  const { onnx } = onnxProto;
  const INT32 = onnx.TensorProto.DataType.INT32;
  const info = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: INT32, shape: { dim: [{ dimValue: 2 }, { dimValue: 2 }] } } },
    });
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "int32_matmul",
      node: [{ opType: "MatMul", input: ["x", "w"], output: ["y"], name: "mm_int32" }],
      initializer: [onnx.TensorProto.create({ name: "w", dims: [2, 2], dataType: INT32, int32Data: [1, 2, 3, 4] })],
      input: [info("x")],
      output: [info("y")],
    },
  })).finish();
}

Deno.test({
  name: "gpu ort 3: a compute node that CUDA cannot run fails the load, naming the node, instead of running on the CPU",
  ignore,
  fn: () =>
    withLane(async (lane, env) => {
      const path = await writeTempModel(int32MatMulModel());
      try {
        assert.throws(() => NativeSession.create(env, path, laneOptions(lane)), (error: unknown) => {
          assert.ok(error instanceof OrtError);
          assert.equal(error.codeName, "ORT_EP_FAIL");
          assert.match(error.message, /placed on CPUExecutionProvider.*MatMul \(mm_int32\)/);
          return true;
        });
      } finally {
        await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      }
    }),
});

Deno.test({
  name: "gpu ort 4: a CUDA provider that cannot start (no such device) fails the session; TensorRT fails typed",
  ignore,
  fn: () =>
    withLane(async (lane, env) => {
      const path = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));
      assert.throws(
        () => NativeSession.create(env, path, { ...laneOptions(lane), deviceId: gpus.length + 8 }),
        (error: unknown) => error instanceof OrtError && error.code !== 0,
      );
      // TensorRT (libnvinfer) is on no machine here: a typed error, never a silent CUDA or CPU session.
      assert.throws(
        () => NativeSession.create(env, path, { ...laneOptions(lane), provider: "tensorrt" }),
        (error: unknown) => error instanceof OrtError && /tensorrt|nvinfer/i.test(error.message),
      );
      // The lane is unharmed: a good session still loads and runs.
      const session = NativeSession.create(env, path, laneOptions(lane));
      try {
        const { y } = await session.run({ x: new Tensor("float32", new Float32Array(8), [2, 4]) });
        assert.deepEqual(y.dims, [2, 3]);
      } finally {
        await session.release();
      }
    }),
});

Deno.test({
  name: "gpu ort 5: staging 'lane' (bound once, lane copies, one wait) equals the CPU, with and without a CUDA graph",
  ignore,
  fn: () =>
    withLane(async (lane, env) => {
      const dynamic = await writeTempModel(denseReluModel({ layers: 4, width: 256 }));
      const fixed = await writeTempModel(denseReluModel({ layers: 4, width: 256, batch: 16 }));
      const plain = NativeSession.create(env, dynamic, laneOptions(lane, { staging: "lane" }));
      const graphed = NativeSession.create(
        env,
        fixed,
        laneOptions(lane, { staging: "lane", cuda: { enableCudaGraph: true }, gpuGraphId: 1 }),
      );
      try {
        assert.equal(plain.staging, "lane");
        for (const [seed, rows] of [1, 7, 7, 64, 1].entries()) {
          const x = input(rows, 256, seed);
          const { y } = await plain.run({ x: new Tensor("float32", x, [rows, 256]) });
          assert.deepEqual(y.dims, [rows, 256]);
          assertCloseArrays(y.data as Float32Array, await cpuReference(dynamic, x, [rows, 256]), `batch ${rows}`);
        }
        for (let seed = 0; seed < 4; seed++) {
          const x = input(16, 256, seed);
          const { y } = await graphed.run({ x: new Tensor("float32", x, [16, 256]) });
          assertCloseArrays(y.data as Float32Array, await cpuReference(fixed, x, [16, 256]), `replay ${seed}`);
        }
        // Everything the runs queued was waited for: the lane's stream is idle between runs.
        assert.equal(lane.driver.streamIdle(lane.stream), true);
      } finally {
        await graphed.release();
        await plain.release();
        for (const path of [dynamic, fixed]) {
          await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
        }
      }
    }),
});

/** A run through `runStaged`: the input copied in by `fill`, the output copied out by `consume`, and where each was. */
async function stagedRun(session: NativeSession, x: Float32Array, dims: number[]) {
  let into: ArrayBufferLike | undefined;
  let out: ArrayBufferLike | undefined;
  const y = await session.runStaged({
    inputs: [{ name: "x", type: "float32", dims }],
    fill: (_name, bytes) => {
      into = bytes.buffer;
      bytes.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    },
    consume: ({ y }) => {
      out = y.bytes.buffer;
      return new Float32Array(y.bytes.slice().buffer);
    },
  });
  return { y, into, out };
}

Deno.test({
  name:
    "gpu ort 6: runStaged fills and reads the lane's pinned arena in place and equals the CPU, with and without a graph",
  ignore,
  fn: () =>
    withLane(async (lane, env) => {
      const width = 256;
      const dynamic = await writeTempModel(denseReluModel({ layers: 4, width }));
      const fixed = await writeTempModel(denseReluModel({ layers: 4, width, batch: 16 }));
      // Slots for 64 rows each way; mapped while this process holds ffi, as an isolate maps them before the drop.
      const layout = { inputs: { x: 64 * width * 4 }, outputs: { y: 64 * width * 4 } };
      const arenas = [PinnedArena.map(lane.pinnedMemory(), layout), PinnedArena.map(lane.pinnedMemory(), layout)];
      const plain = NativeSession.create(env, dynamic, laneOptions(lane, { staging: "lane", arena: arenas[0] }));
      const graphed = NativeSession.create(
        env,
        fixed,
        laneOptions(lane, { staging: "lane", arena: arenas[1], cuda: { enableCudaGraph: true }, gpuGraphId: 1 }),
      );
      try {
        const inArena = arenas.map((a) => a.bytes(0, 0).buffer);
        for (const [seed, rows] of [1, 7, 64, 100, 3].entries()) {
          const x = input(rows, width, seed);
          const got = await stagedRun(plain, x, [rows, width]);
          assertCloseArrays(got.y, await cpuReference(dynamic, x, [rows, width]), `batch ${rows}`);
          // 100 rows fit no slot: staged through JS arrays and the session's own pinned buffers instead.
          assert.equal(got.into === inArena[0], rows <= 64, `batch ${rows}: input in the arena`);
          assert.equal(got.out === inArena[0], rows <= 64, `batch ${rows}: output in the arena`);
        }
        for (let seed = 0; seed < 4; seed++) {
          const x = input(16, width, seed);
          const got = await stagedRun(graphed, x, [16, width]);
          assertCloseArrays(got.y, await cpuReference(fixed, x, [16, width]), `replay ${seed}`);
          assert.equal(got.out, inArena[1]);
          // run and runStaged share the graph's fixed buffers.
          const { y } = await graphed.run({ x: new Tensor("float32", x, [16, width]) });
          assertCloseArrays(y.data as Float32Array, got.y, `run after runStaged ${seed}`);
        }
        assert.equal(lane.driver.streamIdle(lane.stream), true);
      } finally {
        await graphed.release();
        await plain.release();
        for (const arena of arenas) arena.close();
        for (const path of [dynamic, fixed]) {
          await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
        }
      }
    }),
});

Deno.test({
  name:
    "gpu ort 7: a CUDA graph per input shape for a model with a dynamic batch: replays equal the CPU, ORT's profile shows fewer executed runs than runs",
  ignore,
  fn: () =>
    withLane(async (lane, env) => {
      const path = await writeTempModel(denseReluModel({ layers: 4, width: 256 }));
      const folder = path.slice(0, path.lastIndexOf("/"));
      const graphed = NativeSession.create(
        env,
        path,
        laneOptions(lane, { staging: "lane", cuda: { enableCudaGraph: true }, profilingPrefix: `${folder}/graphs` }),
      );
      const capped = NativeSession.create(
        env,
        path,
        laneOptions(lane, { staging: "lane", cuda: { enableCudaGraph: true }, maxGraphs: 1 }),
      );
      try {
        assert.equal(graphed.cudaGraphs, "shapes");
        const batches = [4, 4, 4, 4, 8, 8, 8, 4, 4, 8, 8, 4];
        for (const [seed, rows] of batches.entries()) {
          const x = input(rows, 256, seed);
          const { y } = await graphed.run({ x: new Tensor("float32", x, [rows, 256]) });
          assert.deepEqual(y.dims, [rows, 256]);
          assertCloseArrays(
            y.data as Float32Array,
            await cpuReference(path, x, [rows, 256]),
            `run ${seed}, ${rows} rows`,
          );
        }
        assert.equal(graphed.graphCount, 2);
        // ORT profiles a node each time its executor runs it; a replayed graph runs no executor.
        type Event = { cat?: string; name?: string; args?: { op_name?: string } };
        const events = JSON.parse(await Deno.readTextFile(graphed.session.endProfiling())) as Event[];
        const kernels = events.filter((e) => e.cat === "Node" && e.name?.endsWith("_kernel_time"));
        const first = kernels.find((e) => /MatMul|Gemm/.test(e.args?.op_name ?? ""))?.name;
        const executed = kernels.filter((e) => e.name === first).length;
        console.log(`${first} executed in ${executed} of ${batches.length} runs (2 input shapes)`);
        assert.ok(executed > 0 && executed < batches.length, `executed ${executed} of ${batches.length}`);
        // Past maxGraphs, other shapes run without a graph (gpu_graph_id -1), and still right.
        for (const [seed, rows] of [4, 8, 4, 8, 8, 4].entries()) {
          const x = input(rows, 256, seed + 20);
          const { y } = await capped.run({ x: new Tensor("float32", x, [rows, 256]) });
          assertCloseArrays(y.data as Float32Array, await cpuReference(path, x, [rows, 256]), `capped ${rows} rows`);
        }
        assert.equal(capped.graphCount, 1);
        assert.equal(lane.driver.streamIdle(lane.stream), true);
      } finally {
        await capped.release();
        await graphed.release();
        await Deno.remove(folder, { recursive: true });
      }
    }),
});
