/**
 * While every isolate of a function is busy, HTTP threads write its requests in their rings without waking the main
 * thread (`http_threads.ts`, "quiet rings"); a finished batch, a free isolate or 5 ms take them. None may be lost or
 * answered wrongly, and the request metrics must count each answer once, by status.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startServer } from "./support/server.ts";
import { infer } from "./support/triton_client.ts";

const mlpModel = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));

/** One Worker isolate, batches of at most 4 rows: with 48 requests in flight it is busy nearly all the time. */
const source = `import { defineFunction } from "isolane";
export default defineFunction({
  description: "4→16→3 MLP, one Worker isolate, small batches",
  models: { mlp: "mlp.onnx" },
  device: "cpu",
  isolation: "worker",
  instances: 1,
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  dynamicBatching: { maxBatchSize: 4, maxQueueDelayMs: 0 },
  handler: ({ x }, { models }) => models.mlp.run({ x }),
});
`;

function sample(text: string, line: RegExp): number {
  const match = line.exec(text);
  return match ? Number(match[1]) : 0;
}

Deno.test("requests that arrive while every isolate is busy are all answered, once, and counted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-quiet-" });
  await Deno.mkdir(join(dir, "busy"));
  await Deno.writeTextFile(join(dir, "busy", "mod.ts"), source);
  await Deno.copyFile(mlpModel, join(dir, "busy", "mlp.onnx"));
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: "2" } });
    const row = (i: number) => [i / 7, -i / 11, 0.25, i % 5];
    // The reference answers, one request at a time (the isolate is idle for each).
    const alone: number[][] = [];
    for (let i = 0; i < 8; i++) {
      const answer = await infer(server.url, "busy", [{
        name: "x",
        shape: [1, 4],
        datatype: "FP32",
        data: new Float32Array(row(i)),
      }]);
      assert.equal(answer.status, 200, answer.error ?? "");
      alone.push([...new Float32Array(answer.result!.outputs.get("y")!.bytes!.slice().buffer)]);
    }
    // 48 clients, 10 requests each, each sent as soon as the last one is answered.
    const clients = 48;
    const each = 10;
    const answers = await Promise.all(Array.from({ length: clients }, async (_, c) => {
      const got: { i: number; status: number; y: number[] }[] = [];
      for (let k = 0; k < each; k++) {
        const i = (c + k) % 8;
        const answer = await infer(server.url, "busy", [{
          name: "x",
          shape: [1, 4],
          datatype: "FP32",
          data: new Float32Array(row(i)),
        }]);
        const bytes = answer.result?.outputs.get("y")?.bytes;
        got.push({ i, status: answer.status, y: bytes ? [...new Float32Array(bytes.slice().buffer)] : [] });
      }
      return got;
    }));
    for (const { i, status, y } of answers.flat()) {
      assert.equal(status, 200);
      assert.deepEqual(y, alone[i]);
    }
    // The path under test was taken: the isolate was busy with requests waiting in the rings.
    const quiet = server.logs.find((l) =>
      l.msg === "requests wait in the HTTP threads' rings while every isolate is busy"
    );
    assert.ok(quiet, "the isolate was never busy with requests waiting: the test did not exercise the quiet rings");
    assert.equal(quiet.function, "busy");
    const total = 8 + clients * each;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(sample(metrics, /^isolane_requests_total\{function="busy",status="200"\} (\d+)$/m), total);
    assert.equal(sample(metrics, /^isolane_request_duration_seconds_count\{function="busy"\} (\d+)$/m), total);
    assert.equal(sample(metrics, /^isolane_batch_size_sum\{function="busy"\} (\d+)$/m), total);
    assert.doesNotMatch(metrics, /^isolane_requests_total\{function="busy",status="(?!200)/m);
    const info = await (await fetch(`${server.url}/v1/functions/busy`)).json();
    assert.equal(info.sharedAnswers.direct, total, JSON.stringify(info.sharedAnswers));
    assert.equal(info.queued, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
