/**
 * What isolane costs on top of its baselines, in one run:
 * - the mlp model: a bare ONNX Runtime `session.run` loop vs. the same call through isolane over HTTP;
 * - HTTP: a plain Hono server answering JSON vs. isolane's echo function, both child processes on loopback;
 * - with a usable GPU: OCR through isolane on CPU lanes vs. on CUDA lanes.
 * The bare ONNX Runtime loop uses the provider the runtime's lanes use (CUDA where usable).
 * `deno task bench` prints each group's percentiles and the ratio to its baseline.
 */
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { Buffer } from "node:buffer";
import { startServer } from "../tests/support/server.ts";
import { renderTextPng } from "../tests/support/render_text.ts";
import { discoverDevices } from "../native/mod.ts";
import { cudaProviderStatus } from "../src/inference/providers.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));
const fixtures = fileURLToPath(new URL("../tests/fixtures/functions", import.meta.url));
const x = [[0.5, -1, 2, 0.25]];

const gpu = discoverDevices().devices.length > 0 &&
  cudaProviderStatus(fileURLToPath(new URL("../node_modules", import.meta.url))).ok;
const session = await ort.InferenceSession.create(
  fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url)),
  { intraOpNumThreads: 1, executionProviders: gpu ? [{ name: "cuda", deviceId: 0 }, "cpu"] : ["cpu"] },
);
const runtime = await startServer({ functionsDir });
const fixtureRuntime = await startServer({ functionsDir: fixtures });

const plain = await startServer({
  functionsDir: fixtures,
  entry: fileURLToPath(new URL("./baselines/hono_echo.ts", import.meta.url)),
});

async function post(url: string, body: unknown): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  await response.arrayBuffer();
}

const cpuRuntime = gpu ? await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } }) : undefined;
const image = Buffer.from(await renderTextPng(["Hello World", "isolane serves 42 models"], { width: 640 })).toString(
  "base64",
);

Deno.bench(
  `mlp: bare ONNX Runtime session.run (${gpu ? "cuda" : "cpu"})`,
  { group: "mlp", baseline: true },
  async () => {
    await session.run({ x: new ort.Tensor("float32", Float32Array.from(x.flat()), [1, 4]) });
  },
);
Deno.bench(`mlp: isolane POST /v1/functions/mlp (${gpu ? "cuda" : "cpu"} lane)`, { group: "mlp" }, async () => {
  await post(`${runtime.url}/v1/functions/mlp`, { x });
});
Deno.bench("http: plain Hono JSON echo", { group: "http", baseline: true }, async () => {
  await post(`${plain.url}/v1/functions/echo`, { message: "hi" });
});
Deno.bench("http: isolane echo function", { group: "http" }, async () => {
  await post(`${fixtureRuntime.url}/v1/functions/echo`, { message: "hi" });
});

Deno.bench("ocr: isolane on CPU lanes", { group: "ocr", baseline: true, ignore: !gpu }, async () => {
  await post(`${cpuRuntime?.url}/v1/functions/ocr`, { image });
});
Deno.bench("ocr: isolane on CUDA lanes", { group: "ocr", ignore: !gpu }, async () => {
  await post(`${runtime.url}/v1/functions/ocr`, { image });
});

globalThis.addEventListener("unload", () => {
  // Deno.bench has no after-all hook; stop the child runtimes when the bench process ends.
  void runtime.stop();
  void fixtureRuntime.stop();
  void plain.stop();
  void cpuRuntime?.stop();
});
