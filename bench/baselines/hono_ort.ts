/**
 * The model-serving baseline: a plain Hono server that calls ONNX Runtime inline, one `session.run` per request,
 * on the CPU (all cores as intra-op threads, so a lone request may use every core) or, with `BENCH_DEVICE=cuda`,
 * on GPU 0. It serves what isolane's bench functions serve: `POST /v1/functions/:name` with `{"x": number[][]}` →
 * `{"y": number[][]}`. `BENCH_MODELS` is a JSON object of name → model path. Announces its address like the runtime.
 * @module
 */
import { Hono } from "hono";
import * as ort from "onnxruntime-node";
import { availableParallelism } from "node:os";

const models: Record<string, string> = JSON.parse(Deno.env.get("BENCH_MODELS") ?? "{}");
const cuda = Deno.env.get("BENCH_DEVICE") === "cuda";
const threads = Number(Deno.env.get("BENCH_THREADS") || availableParallelism());

const sessions = new Map<string, { session: ort.InferenceSession; width: number }>();
for (const [name, path] of Object.entries(models)) {
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: threads,
    graphOptimizationLevel: "all",
    executionProviders: cuda ? [{ name: "cuda", deviceId: 0 }, "cpu"] : ["cpu"],
  });
  const meta = session.inputMetadata[0];
  const width = meta.isTensor ? Number(meta.shape[1]) : NaN;
  sessions.set(name, { session, width });
}

const app = new Hono().post("/v1/functions/:name", async (c) => {
  const entry = sessions.get(c.req.param("name"));
  if (!entry) return c.json({ error: "no such model" }, 404);
  const { x } = await c.req.json<{ x: number[][] }>();
  if (!Array.isArray(x) || x.length === 0 || x.some((row) => !Array.isArray(row) || row.length !== entry.width)) {
    return c.json({ error: `x must be rows of ${entry.width} numbers` }, 400);
  }
  const input = new ort.Tensor("float32", Float32Array.from(x.flat()), [x.length, entry.width]);
  const { y } = await entry.session.run({ [entry.session.inputNames[0]]: input });
  const [rows, cols] = y.dims;
  const data = y.data as Float32Array;
  return c.json({ y: Array.from({ length: rows }, (_, r) => Array.from(data.subarray(r * cols, (r + 1) * cols))) });
});
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${server.addr.port}`, threads, cuda }));
