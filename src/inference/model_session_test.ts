/**
 * The models handlers get (`ctx.models.<name>`, typed `ModelSession` by the SDK) take a `DeviceTensor` as a feed with
 * no cast. On the CPU, both kinds of CPU lane model refuse it with `DeviceTensorError` naming the input: the C API's
 * session behind `sessionFacade`, and onnxruntime-node's behind `hostFeedsOnly` (which alone would say only
 * "Tensor.location is not supported"). A device tensor's memory is stood in for by a counted free: nothing reads it.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";
import { Tensor } from "onnxruntime-common";
import type { ModelSession } from "../sdk.ts";
import { NativeSession, OrtEnv, ortLibraryPath } from "../../native/ort/mod.ts";
import { DeviceTensor, DeviceTensorError } from "../../native/ort/device_tensor.ts";
import { hostFeedsOnly, sessionFacade } from "./native.ts";

const libraryPath = ortLibraryPath(fileURLToPath(new URL("../../node_modules", import.meta.url)));
const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));

Deno.test("ModelSession: a DeviceTensor feeds run with no cast; CPU lanes' models refuse it naming the input", async () => {
  const env = OrtEnv.open({ libraryPath });
  const native = NativeSession.create(env, mlpPath, { provider: "cpu" });
  const node = await ort.InferenceSession.create(mlpPath);
  let freed = 0;
  try {
    const models: Record<string, ModelSession> = { c: sessionFacade(native), node: hostFeedsOnly(node) };
    const x = new Tensor("float32", Float32Array.from({ length: 8 }, (_, i) => i / 8), [2, 4]);
    for (const [api, model] of Object.entries(models)) {
      using device = new DeviceTensor("float32", [2, 4], 0, {
        address: 0x1000n,
        bytes: 32,
        stream: 1n,
        free: () => void freed++,
      });
      await assert.rejects(
        model.run({ x: device }),
        (e: unknown) =>
          e instanceof DeviceTensorError &&
          /^Input 'x': a device tensor can only feed a model on a CUDA lane/.test(e.message),
        api,
      );
      // The same model still runs host tensors, with or without fetches.
      const { y } = await model.run({ x });
      assert.deepEqual(y.dims, [2, 3], api);
      assert.deepEqual((await model.run({ x }, ["y"])).y.data, y.data, api);
    }
    assert.equal(freed, 2, "each device tensor was freed once, by `using`");
  } finally {
    await native.release();
    await node.release();
    env.close();
  }
});
