/**
 * `mlp` through two runtimes side by side, this tree's and another's (an older
 * commit, say), each a child process on 127.0.0.1 serving only `mlp`:
 * sequential requests (p50, p90, p99 per isolation) and then `--concurrency`
 * clients (answers per second). Rounds alternate between the two, so that a
 * busy machine slows both alike.
 *
 *   git archive <rev> | tar -x -C /tmp/isolane-old && ln -s "$PWD/node_modules" /tmp/isolane-old/
 *   deno run -A bench/ab_mlp.ts /tmp/isolane-old/main.ts [--requests 2000] [--concurrency 8]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "../tests/support/server.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { requests: { type: "string", default: "2000" }, concurrency: { type: "string", default: "8" } },
});
if (positionals.length !== 1) throw new Error("Usage: deno run -A bench/ab_mlp.ts <other runtime's main.ts>");
const entries = { other: positionals[0], this: fileURLToPath(new URL("../main.ts", import.meta.url)) };
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const body = JSON.stringify({ x: [[1, 2, 3, 4]] });
const rounds = 4;

const dir = await Deno.makeTempDir({ prefix: "isolane-ab-" });
await Deno.mkdir(`${dir}/mlp`);
for (const file of ["mod.ts", "mlp.onnx"]) {
  await Deno.copyFile(new URL(`../functions/mlp/${file}`, import.meta.url), `${dir}/mlp/${file}`);
}

async function call(server: TestServer): Promise<void> {
  const response = await fetch(`${server.url}/v1/functions/mlp`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`mlp answered ${response.status}`);
}

function quantile(sorted: number[], q: number): string {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))].toFixed(0);
}

try {
  for (const isolation of ["process", "worker"]) {
    const servers: Record<string, TestServer> = {};
    for (const [name, entry] of Object.entries(entries)) {
      servers[name] = await startServer({ functionsDir: dir, entry, env: { ISOLANE_ISOLATION: isolation } });
    }
    const latencies: Record<string, number[]> = { other: [], this: [] };
    const rates: Record<string, number[]> = { other: [], this: [] };
    try {
      for (let round = 0; round < rounds; round++) {
        for (const name of Object.keys(entries)) {
          for (let i = 0; i < requests / rounds; i++) {
            const t0 = performance.now();
            await call(servers[name]);
            // The first round's first 100 requests warm up.
            if (round > 0 || i >= 100) latencies[name].push((performance.now() - t0) * 1000);
          }
          let left = requests / rounds;
          const t0 = performance.now();
          await Promise.all(Array.from({ length: concurrency }, async () => {
            while (left-- > 0) await call(servers[name]);
          }));
          if (round > 0) rates[name].push(requests / rounds / ((performance.now() - t0) / 1000));
        }
      }
    } finally {
      for (const server of Object.values(servers)) await server.stop();
    }
    for (const name of Object.keys(entries)) {
      const sorted = latencies[name].sort((a, b) => a - b);
      console.log(
        `${isolation} ${name}: sequential p50 ${quantile(sorted, 0.5)} µs, p90 ${quantile(sorted, 0.9)} µs, p99 ${
          quantile(sorted, 0.99)
        } µs; c=${concurrency}: ${rates[name].map((r) => r.toFixed(0)).join(", ")} answers/s`,
      );
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
