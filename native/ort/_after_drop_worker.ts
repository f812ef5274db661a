/**
 * Test helper (ort_test.ts): a Worker that opens ORT, drops the ffi
 * permission the way isolates do, and only then creates sessions and runs
 * them: plain, IO-bound and nonblocking; with `runForMs`, it also starts a
 * nonblocking run of the loop model and leaves it running (the test ends the
 * Worker mid-run); with `loopPath` alone, it stops such a run by its signal.
 * @module
 */
import { Tensor } from "onnxruntime-common";
import { isTerminatedRun, NativeSession, OrtEnv } from "./mod.ts";

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
    await bound.release();
    await plain.release();
    env.close();
    scope.postMessage({ ok: true, pointerOpsRefused, y1, y2, y3, stopped });
  } catch (error) {
    scope.postMessage({ ok: false, error: String(error) });
  }
};
