/**
 * Test helper (ort_test.ts): a Worker that opens ORT, drops the ffi
 * permission the way isolates do, and only then creates sessions and runs
 * them: plain, IO-bound and nonblocking; with `runForMs`, it also starts a
 * nonblocking run of the loop model and leaves it running (the test ends the
 * Worker mid-run); with `loopPath` alone, it stops such a run by its signal.
 * @module
 */
import { Tensor } from "onnxruntime-common";
import { isTerminatedRun, NativeSession, OrtEnv, PinnedArena } from "./mod.ts";

interface Request {
  libraryPath: string;
  modelPath: string;
  x: number[];
  dims: number[];
  /** The loop model (`loopMatMulModel`). */
  loopPath?: string;
  /** Iterations of a loop run to start and leave running. */
  leaveRunning?: number;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<Request>) => void) | null;
  postMessage(message: unknown): void;
};

function loopFeeds(n: number): Record<string, Tensor> {
  return {
    n: new Tensor("int64", BigInt64Array.of(BigInt(n)), []),
    x: new Tensor("float32", new Float32Array(256).fill(1), [1, 256]),
  };
}

scope.onmessage = async ({ data }) => {
  try {
    const env = OrtEnv.open({ libraryPath: data.libraryPath });
    // Host memory stands in for a lane's pinned and device memory; the arena is mapped while ffi is held.
    const libc = Deno.dlopen("libc.so.6", {
      malloc: { parameters: ["usize"], result: "u64" },
      free: { parameters: ["u64"], result: "void" },
      copy: { name: "memcpy", parameters: ["u64", "u64", "usize"], result: "u64" },
    });
    const alloc = (bytes: number) => BigInt(libc.symbols.malloc(BigInt(bytes)));
    const free = (address: bigint) => libc.symbols.free(address);
    const copy = (dst: bigint, src: bigint, bytes: number) => void libc.symbols.copy(dst, src, BigInt(bytes));
    const arena = PinnedArena.map({ alloc, free }, { inputs: { x: 4096 }, outputs: { y: 4096 } });
    await Deno.permissions.revoke({ name: "ffi" });
    if (data.leaveRunning !== undefined) {
      const loop = NativeSession.create(env, data.loopPath!, { provider: "cpu", nonblocking: true });
      void loop.run(loopFeeds(data.leaveRunning));
      scope.postMessage({ ok: true, running: true });
      return;
    }
    const pointerOpsRefused = (() => {
      try {
        Deno.UnsafePointer.create(1n);
        return false;
      } catch {
        return true;
      }
    })();
    const x = new Tensor("float32", Float32Array.from(data.x), data.dims);
    const plain = NativeSession.create(env, data.modelPath, { provider: "cpu", ioBinding: false });
    const bound = NativeSession.create(env, data.modelPath, { provider: "cpu", ioBinding: true });
    const detached = NativeSession.create(env, data.modelPath, { provider: "cpu", nonblocking: true });
    const y1 = Array.from((await plain.run({ x })).y.data as Float32Array);
    const y2 = Array.from((await bound.run({ x })).y.data as Float32Array);
    const y3 = Array.from((await detached.run({ x })).y.data as Float32Array);
    let stopped = false;
    if (data.loopPath) {
      const loop = NativeSession.create(env, data.loopPath, { provider: "cpu", nonblocking: true });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      stopped = await loop.run(loopFeeds(100_000_000), { signal: controller.signal }).then(
        () => false,
        (error) => isTerminatedRun(error),
      );
      await loop.release();
    }
    await detached.release();
    const staged = NativeSession.create(env, data.modelPath, {
      provider: "cpu",
      staging: "lane",
      pinned: { alloc, free },
      device: {
        alloc,
        free,
        upload: () => {},
        download: () => {},
        uploadFrom: copy,
        downloadTo: copy,
        synchronize: () => {},
      },
      arena,
    });
    const y4 = await staged.runStaged({
      inputs: [{ name: "x", type: "float32", dims: data.dims }],
      fill: (_name, into) => new Float32Array(into.buffer, into.byteOffset, into.byteLength / 4).set(data.x),
      consume: ({ y }) => Array.from(new Float32Array(y.bytes.buffer, y.bytes.byteOffset, y.bytes.byteLength / 4)),
    });
    await staged.release();
    arena.close();
    await bound.release();
    await plain.release();
    env.close();
    scope.postMessage({ ok: true, pointerOpsRefused, y1, y2, y3, y4, stopped });
  } catch (error) {
    scope.postMessage({ ok: false, error: String(error) });
  }
};
