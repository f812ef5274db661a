/**
 * Test helper (ort_test.ts): a Worker that opens ORT, drops the ffi
 * permission the way isolates do, and only then creates sessions and runs them.
 * @module
 */
import { Tensor } from "onnxruntime-common";
import { NativeSession, OrtEnv } from "./mod.ts";

interface Request {
  libraryPath: string;
  modelPath: string;
  x: number[];
  dims: number[];
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<Request>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = async ({ data }) => {
  try {
    const env = OrtEnv.open({ libraryPath: data.libraryPath });
    await Deno.permissions.revoke({ name: "ffi" });
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
    const y1 = Array.from((await plain.run({ x })).y.data as Float32Array);
    const y2 = Array.from((await bound.run({ x })).y.data as Float32Array);
    await bound.release();
    await plain.release();
    env.close();
    scope.postMessage({ ok: true, pointerOpsRefused, y1, y2 });
  } catch (error) {
    scope.postMessage({ ok: false, error: String(error) });
  }
};
