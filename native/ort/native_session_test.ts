import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tensor } from "onnxruntime-common";
import onnxProto from "onnx-proto";
import {
  type DeviceMemory,
  NativeSession,
  OrtEnv,
  OrtError,
  ortLibraryPath,
  PinnedArena,
  type PinnedHostMemory,
  type StagedOutput,
} from "./mod.ts";
import {
  denseReluInitializers,
  denseReluModel,
  denseReluReference,
  identityModel,
  toHalf,
  writeTempModel,
} from "./test_models.ts";
import { DeviceTensor, DeviceTensorError } from "./device_tensor.ts";

const libraryPath = ortLibraryPath(fileURLToPath(new URL("../../node_modules", import.meta.url)));
const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));
const env = OrtEnv.open({ libraryPath });

const libc = Deno.dlopen("libc.so.6", {
  malloc: { parameters: ["usize"], result: "u64" },
  free: { parameters: ["u64"], result: "void" },
  copy: { name: "memcpy", parameters: ["u64", "u64", "usize"], result: "u64" },
  copyIn: { name: "memcpy", parameters: ["u64", "buffer", "usize"], result: "u64" },
  copyOut: { name: "memcpy", parameters: ["buffer", "u64", "usize"], result: "u64" },
});

/**
 * Pinned and device memory stood in for by `malloc` on the CPU, counting what
 * is live: `staging: "lane"` on the CPU provider runs the same bookkeeping as
 * on a lane, with "device" buffers described as CPU memory.
 */
function hostMemory(): { pinned: PinnedHostMemory; device: Required<DeviceMemory>; live: Set<bigint> } {
  const live = new Set<bigint>();
  const alloc = (bytes: number) => {
    const address = BigInt(libc.symbols.malloc(BigInt(bytes)));
    live.add(address);
    return address;
  };
  const free = (address: bigint) => {
    assert.ok(live.delete(address), `free of ${address} that is not live`);
    libc.symbols.free(address);
  };
  const bytesOf = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return {
    live,
    pinned: { alloc, free },
    device: {
      alloc,
      free,
      upload: (dst, src) => void libc.symbols.copyIn(dst, bytesOf(src), BigInt(src.byteLength)),
      download: (dst, src) => void libc.symbols.copyOut(bytesOf(dst), src, BigInt(dst.byteLength)),
      uploadFrom: (dst, src, bytes) => void libc.symbols.copy(dst, src, BigInt(bytes)),
      downloadTo: (dst, src, bytes) => void libc.symbols.copy(dst, src, BigInt(bytes)),
      copyOnDevice: (dst, src, bytes) => void libc.symbols.copy(dst, src, BigInt(bytes)),
      synchronize: () => {},
    },
  };
}

function rows(n: number, width: number, seed: number): Tensor {
  return new Tensor("float32", Float32Array.from({ length: n * width }, (_, i) => Math.sin(seed + i * 1.3) * 3), [
    n,
    width,
  ]);
}

Deno.test("staging 'lane': inputs and outputs bound once per shape give the plain run's outputs, and free everything", async () => {
  const memory = hostMemory();
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false });
  const lane = NativeSession.create(env, mlpPath, { provider: "cpu", staging: "lane", ...memory });
  try {
    assert.equal(lane.staging, "lane");
    assert.equal(plain.staging, "ort");
    for (const [i, n] of [1, 3, 3, 3, 7, 1, 1].entries()) {
      const x = rows(n, 4, i);
      const expected = (await plain.run({ x })).y;
      const got = (await lane.run({ x })).y;
      assert.deepEqual(got.dims, expected.dims);
      assert.deepEqual(Array.from(got.data as Float32Array), Array.from(expected.data as Float32Array), `batch ${n}`);
    }
  } finally {
    await lane.release();
    await plain.release();
  }
  assert.equal(memory.live.size, 0, "every staging and device buffer is freed on release");
});

Deno.test("staging 'lane' rebinds outputs every run once the same input shape gives a new output shape", async () => {
  const { onnx } = onnxProto;
  const graph = onnx.GraphProto.create({
    name: "nonzero",
    node: [
      { opType: "Constant", output: ["zero"], attribute: [{ name: "value_float", type: 1, f: 0 }] },
      { opType: "Greater", input: ["x", "zero"], output: ["positive"] },
      { opType: "NonZero", input: ["positive"], output: ["y"] },
    ],
    input: [{ name: "x", type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 4 }] } } } }],
    output: [{ name: "y", type: { tensorType: { elemType: 7 } } }],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph });
  const path = await writeTempModel(onnx.ModelProto.encode(model).finish());
  const memory = hostMemory();
  const session = NativeSession.create(env, path, { provider: "cpu", staging: "lane", ...memory });
  try {
    const run = async (x: number[]) => (await session.run({ x: new Tensor("float32", Float32Array.from(x), [4]) })).y;
    assert.deepEqual((await run([1, -1, 1, -1])).dims, [1, 2]);
    assert.deepEqual((await run([1, -1, 2, -1])).dims, [1, 2]);
    const three = await run([1, 1, 1, -1]);
    assert.deepEqual(three.dims, [1, 3]);
    assert.deepEqual(Array.from(three.data as BigInt64Array), [0n, 1n, 2n]);
    assert.deepEqual((await run([-1, -1, -1, 5])).dims, [1, 1]);
  } finally {
    await session.release();
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
  assert.equal(memory.live.size, 0);
});

/** A run of `x` through `runStaged`: the fill target's and the output's buffers, and the output copied out. */
async function staged(session: NativeSession, x: Tensor) {
  const seen: { into?: ArrayBufferLike; out?: ArrayBufferLike } = {};
  const y = await session.runStaged({
    inputs: [{ name: "x", type: "float32", dims: x.dims }],
    fill: (name, into) => {
      assert.equal(name, "x");
      const data = x.data as Float32Array;
      assert.equal(into.byteLength, data.byteLength);
      into.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      seen.into = into.buffer;
    },
    consume: (outputs: Record<string, StagedOutput>) => {
      const { y } = outputs;
      seen.out = y.bytes.buffer;
      return { dims: [...y.dims], data: Array.from(new Float32Array(y.bytes.slice().buffer)) };
    },
  });
  return { y, ...seen };
}

Deno.test("runStaged with an arena: inputs filled and outputs read in the pinned staging itself, equal to run", async () => {
  const memory = hostMemory();
  // Slots for 16 rows: x is 4 floats a row, y 3.
  const arena = PinnedArena.map(memory.pinned, { inputs: { x: 16 * 16 }, outputs: { y: 16 * 12 } });
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false });
  const lane = NativeSession.create(env, mlpPath, { provider: "cpu", staging: "lane", ...memory, arena });
  const inArena = arena.bytes(0, 0).buffer;
  try {
    const live = memory.live.size;
    for (const [i, n] of [2, 2, 5, 1, 64].entries()) {
      const x = rows(n, 4, i);
      const expected = (await plain.run({ x })).y;
      const got = await staged(lane, x);
      assert.deepEqual(got.y.dims, expected.dims);
      assert.deepEqual(got.y.data, Array.from(expected.data as Float32Array), `batch ${n}`);
      // 64 rows fit no slot: JS arrays, copied to and from the session's own staging as run does.
      assert.equal(got.into === inArena, n <= 16, `batch ${n}: the input is written into the arena`);
      assert.equal(got.out === inArena, n <= 16, `batch ${n}: the output is read from the arena`);
      // run and runStaged share the session's bindings.
      assert.deepEqual(
        Array.from((await lane.run({ x })).y.data as Float32Array),
        Array.from(expected.data as Float32Array),
      );
    }
    assert.ok(memory.live.size > live, "the arena's overflow staged through the session's own pinned buffers");
  } finally {
    await lane.release();
    await plain.release();
  }
  arena.close();
  assert.equal(memory.live.size, 0);
});

Deno.test("runStaged without lane staging or arena fills and reads JS arrays, equal to run", async () => {
  const memory = hostMemory();
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false });
  const lane = NativeSession.create(env, mlpPath, { provider: "cpu", staging: "lane", ...memory });
  try {
    const x = rows(3, 4, 9);
    const expected = Array.from((await plain.run({ x })).y.data as Float32Array);
    for (const session of [plain, lane]) assert.deepEqual((await staged(session, x)).y.data, expected);
    await assert.rejects(
      () => lane.runStaged({ inputs: [{ name: "x", type: "string", dims: [1] }], fill: () => {}, consume: () => 0 }),
      (error: unknown) => error instanceof OrtError && /not supported/.test(error.message),
    );
  } finally {
    await lane.release();
    await plain.release();
  }
  assert.equal(memory.live.size, 0);
});

Deno.test("blocking runs of one lane session started together do not share staging: each gets its own answer", async () => {
  const memory = hostMemory();
  const arena = PinnedArena.map(memory.pinned, { inputs: { x: 1024 }, outputs: { y: 1024 } });
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false });
  const lane = NativeSession.create(env, mlpPath, { provider: "cpu", staging: "lane", ...memory, arena });
  try {
    const xs = Array.from({ length: 8 }, (_, i) => rows(3, 4, 100 + i));
    const expected = await Promise.all(
      xs.map(async (x) => Array.from((await plain.run({ x })).y.data as Float32Array)),
    );
    const got = await Promise.all(
      xs.map(async (x, i) =>
        i % 2 ? (await staged(lane, x)).y.data : Array.from((await lane.run({ x })).y.data as Float32Array)
      ),
    );
    assert.deepEqual(got, expected);
  } finally {
    await lane.release();
    await plain.release();
    arena.close();
  }
  assert.equal(memory.live.size, 0);
});

Deno.test("staging 'lane' without pinned and device memory that copies on a stream is refused when created", () => {
  assert.throws(
    () => NativeSession.create(env, mlpPath, { provider: "cpu", staging: "lane" }),
    (error: unknown) => error instanceof OrtError && error.codeName === "ORT_INVALID_ARGUMENT",
  );
});

Deno.test("test models: Gemm and float16 variants compute the MatMul + Add model's function; Identity returns its input", async () => {
  const shape = { layers: 3, width: 16 };
  const x = rows(5, 16, 2);
  const reference = denseReluReference(x.data as Float32Array, 5, shape);
  const cases = [
    { op: "matmul" as const, float16: false, tolerance: 1e-5 },
    { op: "gemm" as const, float16: false, tolerance: 1e-5 },
    { op: "matmul" as const, float16: true, tolerance: 3e-2 },
  ];
  for (const c of cases) {
    const path = await writeTempModel(denseReluModel({ ...shape, op: c.op, float16: c.float16 }));
    const session = NativeSession.create(env, path, { provider: "cpu" });
    try {
      const y = (await session.run({ x })).y.data as Float32Array;
      const worst = Math.max(...Array.from(y, (v, i) => Math.abs(v - reference[i]) / (1 + Math.abs(reference[i]))));
      assert.ok(worst <= c.tolerance, `${c.op}${c.float16 ? " fp16" : ""}: off by ${worst}`);
    } finally {
      await session.release();
      await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    }
  }
  assert.deepEqual([...denseReluInitializers(shape).keys()], ["w0", "b0", "w1", "b1", "w2", "b2"]);
  const path = await writeTempModel(identityModel({ width: 16 }));
  const identity = NativeSession.create(env, path, { provider: "cpu", ioBinding: true });
  try {
    assert.deepEqual(
      Array.from((await identity.run({ x })).y.data as Float32Array),
      Array.from(x.data as Float32Array),
    );
  } finally {
    await identity.release();
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("toHalf rounds float32 to IEEE half bits", () => {
  const half = toHalf(Float32Array.from([1, -2, 65504, 70000, 0.1, 5.960464477539063e-8, 1e-9, -0, Infinity, NaN]));
  assert.deepEqual(Array.from(half.slice(0, 9)), [0x3c00, 0xc000, 0x7bff, 0x7c00, 0x2e66, 0x0001, 0, 0x8000, 0x7c00]);
  assert.equal(half[9] & 0x7c00, 0x7c00);
  assert.notEqual(half[9] & 0x3ff, 0);
});

Deno.test("sessions created with one prepacked-weights container run like sessions without it", async () => {
  const path = await writeTempModel(denseReluModel({ layers: 2, width: 64 }));
  using container = env.prepackedWeights();
  using options = env.sessionOptions({ intraOpThreads: 1 });
  using a = env.session(path, options, { prepackedWeights: container });
  using b = env.session(path, options, { prepackedWeights: container });
  using plain = env.session(path, options);
  try {
    const data = rows(3, 64, 1).data as Float32Array;
    const outputs = [a, b, plain].map((s) => {
      using x = env.tensor("float32", data, [3, 64]);
      const { y } = s.run({ x });
      try {
        return Array.from(y.read() as Float32Array);
      } finally {
        y.close();
      }
    });
    assert.deepEqual(outputs[0], outputs[2]);
    assert.deepEqual(outputs[1], outputs[2]);
  } finally {
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("freeDimensions: ORT plans the session for the given size of a symbolic dimension, and refuses others", async () => {
  const options = { layers: 2, width: 16 };
  const path = await writeTempModel(denseReluModel(options));
  const session = NativeSession.create(env, path, { provider: "cpu", freeDimensions: { batch: 3 } });
  try {
    const x = rows(3, 16, 1);
    const { y } = await session.run({ x });
    const expected = denseReluReference(x.data as Float32Array, 3, options);
    (y.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-4, `element ${i}`));
    await assert.rejects(() => session.run({ x: rows(2, 16, 2) }), (error: unknown) => {
      assert.ok(error instanceof OrtError);
      assert.match(error.message, /dimensions|Expected: 3/i);
      return true;
    });
  } finally {
    await session.release();
    await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("a device tensor feeds a lane-staged run by a copy on the device, and is refused where it cannot be read", async () => {
  const memory = hostMemory();
  const stream = 7n;
  let copiesOnDevice = 0;
  const copy = memory.device.copyOnDevice;
  memory.device.copyOnDevice = (dst, src, bytes) => {
    copiesOnDevice++;
    copy(dst, src, bytes);
  };
  const plain = NativeSession.create(env, mlpPath, { provider: "cpu", ioBinding: false });
  const lane = NativeSession.create(env, mlpPath, { provider: "cpu", staging: "lane", stream, ...memory });
  // A "device" tensor over the stand-in device memory, as a lane's kernels make one.
  const onDevice = (x: Tensor, on = stream) => {
    const bytes = (x.data as Float32Array).byteLength;
    const address = memory.device.alloc(bytes);
    memory.device.upload(address, x.data as Float32Array);
    return new DeviceTensor("float32", x.dims, 0, { address, bytes, stream: on, free: memory.device.free });
  };
  try {
    for (const [i, n] of [3, 3, 5].entries()) {
      const x = rows(n, 4, i);
      using input = onDevice(x);
      const expected = (await plain.run({ x })).y;
      const got = (await lane.run({ x: input })).y;
      assert.deepEqual(got.dims, expected.dims);
      assert.deepEqual(Array.from(got.data as Float32Array), Array.from(expected.data as Float32Array), `batch ${n}`);
    }
    assert.equal(copiesOnDevice, 3, "each run copied its input on the device");
    const disposed = onDevice(rows(2, 4, 9));
    disposed.dispose();
    assert.equal(disposed.disposed, true);
    await assert.rejects(
      lane.run({ x: disposed }),
      (e: Error) => e instanceof DeviceTensorError && /disposed before this run/.test(e.message),
    );
    using other = onDevice(rows(2, 4, 9), 8n);
    await assert.rejects(
      lane.run({ x: other }),
      (e: Error) => e instanceof DeviceTensorError && /lane that made it/.test(e.message),
    );
    using any = onDevice(rows(2, 4, 9));
    await assert.rejects(
      plain.run({ x: any }),
      (e: Error) => e instanceof DeviceTensorError && /reads host memory/.test(e.message),
    );
  } finally {
    await lane.release();
    await plain.release();
  }
  assert.equal(memory.live.size, 0, "every device tensor, staging and device buffer is freed");
});

Deno.test("native_session_test: the environment reference of this file is released", () => {
  env.close();
  libc.close();
});
