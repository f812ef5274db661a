/**
 * `ShapeSessions` (a session per set of input shapes, for CUDA lanes' `shapeSessions`) over real ORT sessions of
 * `functions/mlp/mlp.onnx` on the CPU provider: the bookkeeping is the provider's no matter, so it is tested here;
 * what a GPU gains from it is measured in docs/gpu-results.md.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tensor } from "onnxruntime-common";
import { NativeSession, OrtEnv, ortLibraryPath } from "../../native/ort/mod.ts";
import { laneRunError, ShapeSessions } from "./native.ts";
import { IsolaneError, statusOf } from "../errors.ts";

const libraryPath = ortLibraryPath(fileURLToPath(new URL("../../node_modules", import.meta.url)));
const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));
const env = OrtEnv.open({ libraryPath });

function rows(n: number, seed = 1): Tensor {
  return new Tensor("float32", Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(seed + i * 1.3) * 3), [n, 4]);
}

/** Sessions of mlp as `ShapeSessions` makes them, each remembered to check its release. */
function sessions() {
  const made: NativeSession[] = [];
  const create = (freeDimensions?: Record<string, number>) => {
    const session = NativeSession.create(env, mlpPath, {
      provider: "cpu",
      ...(freeDimensions ? { freeDimensions } : {}),
    });
    made.push(session);
    return session;
  };
  return { made, create };
}

Deno.test("ShapeSessions: a session per input shape, the least recently used released, outputs as one session's", async () => {
  const { made, create } = sessions();
  const plain = create();
  const shapes = new ShapeSessions(create(), create, 2);
  const model = shapes.facade();
  try {
    assert.deepEqual(model.inputNames, ["x"]);
    for (const n of [1, 2, 1, 3]) {
      const { y } = await model.run({ x: rows(n, n) });
      const { y: expected } = await plain.run({ x: rows(n, n) });
      assert.deepEqual(y.dims, [n, 3]);
      assert.deepEqual(y.data, expected.data);
    }
    // 1 took a new session planned for one row (the first, planned for none, was released), 2 another, 1 its own
    // again, 3 a new one in place of 2 (used least recently).
    assert.deepEqual(shapes.shapes(), ["x:1x4", "x:3x4"]);
    assert.deepEqual(shapes.stats, { created: 3, evicted: 1 });
    await assert.rejects(made[1].run({ x: rows(2) }), /NativeSession is released/);
    await assert.rejects(made[3].run({ x: rows(2) }), /NativeSession is released/);
    // ORT planned each for its shapes (the batch dimension's override): the session of one row refuses two.
    await assert.rejects(made[2].run({ x: rows(2) }), /dimensions|Expected: 1/i);
  } finally {
    await shapes.release();
    await plain.release();
  }
  await assert.rejects(model.run({ x: rows(1) }), /sessions were released/);
  for (const session of made.slice(1)) await assert.rejects(session.run({ x: rows(1) }), /NativeSession is released/);
});

Deno.test("ShapeSessions: feeds the model cannot take are refused without creating or releasing a session", async () => {
  const { create } = sessions();
  const shapes = new ShapeSessions(create(), create, 2);
  try {
    const model = shapes.facade();
    await model.run({ x: rows(1) });
    await model.run({ x: rows(2) });
    const bad: Record<string, Tensor>[] = [
      { z: rows(1) },
      { x: rows(1), z: rows(1) },
      {},
      { x: new Tensor("float32", new Float32Array(5), [1, 5]) },
      { x: new Tensor("float32", new Float32Array(4), [4]) },
    ];
    for (const feeds of bad) {
      await assert.rejects(model.run(feeds), /input/i, JSON.stringify(Object.keys(feeds)));
    }
    assert.deepEqual(shapes.shapes(), ["x:1x4", "x:2x4"], "the sessions of the good shapes are kept");
    assert.deepEqual(shapes.stats, { created: 2, evicted: 0 });
    // Runs after a refusal still run.
    assert.deepEqual((await model.run({ x: rows(2) })).y.dims, [2, 3]);
  } finally {
    await shapes.release();
  }
});

Deno.test("ShapeSessions: a session that cannot be created fails that run with the shapes named, and the next runs run", async () => {
  const { create } = sessions();
  let failing = false;
  const shapes = new ShapeSessions(create(), () => {
    if (failing) throw new Error("CUDA failure 2: out of memory");
    return create();
  }, 2);
  try {
    const model = shapes.facade();
    await model.run({ x: rows(1) });
    failing = true;
    await assert.rejects(
      model.run({ x: rows(2) }),
      /^Error: Cannot create a session for input shapes x:2x4 \(shapeSessions: 2\): CUDA failure 2: out of memory$/,
    );
    assert.deepEqual((await model.run({ x: rows(1) })).y.dims, [1, 3], "the session of a known shape still runs");
    failing = false;
    assert.deepEqual((await model.run({ x: rows(2) })).y.dims, [2, 3]);
  } finally {
    await shapes.release();
  }
});

Deno.test("ShapeSessions: release lets the runs already asked for finish, then refuses new ones", async () => {
  const { create } = sessions();
  const shapes = new ShapeSessions(create(), create, 3);
  const model = shapes.facade();
  const asked = [1, 2, 3, 2].map((n) => model.run({ x: rows(n) }));
  const released = shapes.release();
  await assert.rejects(model.run({ x: rows(1) }), /sessions were released/);
  const answers = await Promise.all(asked);
  assert.deepEqual(answers.map((a) => a.y.dims[0]), [1, 2, 3, 2]);
  await released;
  assert.deepEqual(shapes.shapes(), []);
});

Deno.test("laneRunError: ORT's arena refusal past gpuMemoryLimitMb is 413 gpu_memory_limit; other errors stay", () => {
  const where = { fn: "f", model: "m", gpuMemoryMb: 8 };
  const arena = new Error(
    "RunWithBinding failed: ORT_FAIL: Non-zero status code returned while running Gemm node. Status Message: " +
      "bfc_arena.cc:359 Available memory of 8387584 is smaller than requested bytes of 25600000",
  );
  const mapped = laneRunError(arena, where);
  assert.ok(mapped instanceof IsolaneError);
  assert.equal(mapped.code, "gpu_memory_limit");
  assert.equal(statusOf(mapped.code), 413);
  assert.match(mapped.message, /gpuMemoryLimitMb \(8\).*25\.6 MB more, with 8\.4 MB free/);
  // Without a limit of the function's, an arena refusal is the device's, not the request's: left as it is.
  assert.equal(laneRunError(arena, { ...where, gpuMemoryMb: 0 }), arena);
  const other = new Error("RunWithBinding failed: ORT_FAIL: something else");
  assert.equal(laneRunError(other, where), other);
});
