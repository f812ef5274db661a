/**
 * The KServe v2 paths beside each other on the mlp model, one request at a
 * time: `/v1` JSON, `/v2` JSON, and `/v2` with the binary tensor data
 * extension in and out (as Triton's client sends by default), for 1 row and
 * for 256 rows. `deno task bench bench/kserve_bench.ts` prints percentiles and
 * the ratio to `/v1` JSON. (Throughput under concurrency is the throughput
 * benchmarks' job.)
 */
import { fileURLToPath } from "node:url";
import { startServer } from "../tests/support/server.ts";
import { buildInferRequest } from "../tests/support/triton_client.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));
const runtime = await startServer({ functionsDir });

async function post(path: string, body: Uint8Array | string, headers: Record<string, string>): Promise<void> {
  const response = await fetch(`${runtime.url}${path}`, {
    method: "POST",
    headers,
    body: body as Uint8Array<ArrayBuffer> | string,
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

for (const rows of [1, 256]) {
  const x = Array.from({ length: rows }, (_, r) => [0.5 + r, -1, 2, 0.25]);
  const v1 = JSON.stringify({ x });
  const v2Json = JSON.stringify({
    inputs: [{ name: "x", shape: [rows, 4], datatype: "FP32", data: x.flat() }],
    outputs: [{ name: "y" }],
  });
  const binary = await buildInferRequest([{
    name: "x",
    shape: [rows, 4],
    datatype: "FP32",
    data: Float32Array.from(x.flat()),
  }]);
  const group = `mlp ${rows} row${rows > 1 ? "s" : ""}`;
  Deno.bench(`${group}: POST /v1/functions/mlp (JSON)`, { group, baseline: true }, async () => {
    await post("/v1/functions/mlp", v1, { "content-type": "application/json" });
  });
  Deno.bench(`${group}: POST /v2/models/mlp/infer (JSON)`, { group }, async () => {
    await post("/v2/models/mlp/infer", v2Json, { "content-type": "application/json" });
  });
  Deno.bench(`${group}: POST /v2/models/mlp/infer (binary in and out)`, { group }, async () => {
    await post("/v2/models/mlp/infer", binary.body, binary.headers);
  });
}

globalThis.addEventListener("unload", () => {
  // Deno.bench has no after-all hook; stop the child runtime when the bench process ends.
  void runtime.stop();
});
