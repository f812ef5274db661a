/**
 * `oneRunAtATime` over a real CPU session (ORT's C API, nonblocking, as CPU isolates run it): a run asked for while
 * another goes on starts as that one ends, in order, and a run that fails does not hold up the next.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { NativeSession, OrtEnv, ortLibraryPath } from "../../native/ort/mod.ts";
import { oneRunAtATime, stagedModel } from "./staged_model.ts";

const libraryPath = ortLibraryPath(fileURLToPath(new URL("../../node_modules", import.meta.url)));
const mlpPath = fileURLToPath(new URL("../../functions/mlp/mlp.onnx", import.meta.url));

Deno.test("oneRunAtATime: runs asked for together run one after another, in order; a failed run frees the next", async () => {
  const env = OrtEnv.open({ libraryPath });
  const session = NativeSession.create(env, mlpPath, { provider: "cpu", nonblocking: true });
  try {
    const model = oneRunAtATime(stagedModel(session));
    const events: string[] = [];
    const run = (tag: string, fail = false) =>
      model.run({
        inputs: [{ name: "x", type: "float32", dims: [1, 4] }],
        fill(_name, into) {
          events.push(`fill ${tag}`);
          new Float32Array(into.buffer, into.byteOffset, 4).set([1, 2, 3, 4]);
        },
        consume(outputs) {
          events.push(`consume ${tag}`);
          if (fail) throw new Error(`run ${tag} failed`);
          return Object.values(outputs)[0].dims;
        },
      });
    const [a, b, c] = [run("a"), run("b", true), run("c")];
    assert.deepEqual(await a, [1, 3]);
    await assert.rejects(b, /run b failed/);
    assert.deepEqual(await c, [1, 3]);
    // Without the gate every fill comes first: each run stages its inputs before the first one's outputs are read.
    assert.deepEqual(events, ["fill a", "consume a", "fill b", "consume b", "fill c", "consume c"]);
  } finally {
    await session.release();
    env.close();
  }
});
