/**
 * Cold start and respawn (scenario D of `bench/suite.ts`) through two runtimes
 * side by side, this tree's and another's (an older commit, say), each a child
 * process on 127.0.0.1: a deploy of the `mlp` folder as a `.tar.gz` to its
 * first 200, and the 504 of a call past `timeoutMs` to the next 200. Rounds
 * alternate between the two runtimes, so that a busy machine slows both
 * alike; medians per runtime and isolation, with the load phases the runtime
 * logs ("function load phases") and the 1-minute load average.
 *
 *   git archive <rev> | tar -x -C /tmp/isolane-old && ln -s "$PWD/node_modules" /tmp/isolane-old/
 *   deno run -A bench/ab_cold.ts /tmp/isolane-old/main.ts [--rounds 10] [--isolation worker,process]
 *     [--this-env ISOLANE_SPARE_ISOLATES=all]   (settings of this tree's runtime only: A/B of a setting)
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "../tests/support/server.ts";
import { packFolder } from "../src/registry/bundle.ts";
import { mlpFolder, writeBenchFunctions } from "./functions.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    rounds: { type: "string", default: "10" },
    isolation: { type: "string", default: "worker,process" },
    "this-env": { type: "string", multiple: true, default: [] },
  },
});
if (positionals.length !== 1) throw new Error("Usage: deno run -A bench/ab_cold.ts <other runtime's main.ts>");
const entries = { other: positionals[0], this: fileURLToPath(new URL("../main.ts", import.meta.url)) };
const rounds = Number(values.rounds);
const thisEnv = Object.fromEntries(values["this-env"].map((pair) => pair.split(/=(.*)/s, 2)));
const token = crypto.randomUUID();
const hangTimeoutMs = 300;

const dir = await Deno.makeTempDir({ prefix: "isolane-ab-cold-" });
await writeBenchFunctions(dir, {
  instances: 1,
  hang: { timeoutMs: hangTimeoutMs },
  batching: { maxBatchSize: 64, maxQueueDelayMs: 2 },
});
const bundle = await packFolder(mlpFolder);

function post(server: TestServer, name: string, body: unknown): Promise<Response> {
  return fetch(`${server.url}/v1/functions/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The deploy's upload to the first 200 of the deployed function, in ms. */
async function coldStart(server: TestServer, name: string): Promise<number> {
  const start = performance.now();
  const put = await fetch(`${server.url}/v1/functions/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/gzip", authorization: `Bearer ${token}` },
    body: bundle,
  });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`Deploy of ${name} answered ${put.status}: ${text}`);
  for (let tries = 0; tries < 1000; tries++) {
    const response = await post(server, name, { x: [[0.5, -1, 2, 0.25]] });
    await response.arrayBuffer();
    if (response.status === 200) {
      const ms = performance.now() - start;
      await (await fetch(`${server.url}/v1/functions/${name}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      })).arrayBuffer();
      return ms;
    }
  }
  throw new Error(`Deployed ${name} never answered 200`);
}

/** The 504 of a call past `timeoutMs` to the next 200, in ms. */
async function respawn(server: TestServer): Promise<number> {
  const hung = await post(server, "hang", { hang: true });
  await hung.arrayBuffer();
  if (hung.status !== 504) throw new Error(`The hanging call answered ${hung.status}, not 504`);
  const start = performance.now();
  const next = await post(server, "hang", { hang: false });
  await next.arrayBuffer();
  // On a loaded machine a respawn can take longer than the deadline of the call that waits for it: counted apart.
  if (next.status === 504) return Number.NaN;
  if (next.status !== 200) throw new Error(`The call after the timeout answered ${next.status}, not 200`);
  return performance.now() - start;
}

function median(all: number[]): string {
  const values = all.filter(Number.isFinite);
  if (values.length === 0) return "n/a";
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return (sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2).toFixed(1);
}

function phases(server: TestServer, from: number): Record<string, string> {
  const lines = server.logs.slice(from).filter((l) => l.msg === "function load phases" && l.function !== "hang");
  const keys = [...new Set(lines.flatMap((l) => Object.keys(l).filter((k) => k.endsWith("Ms"))))];
  return Object.fromEntries(keys.map((k) => [k, median(lines.map((l) => Number(l[k])).filter(Number.isFinite))]));
}

console.log(`load average before: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
try {
  for (const isolation of values.isolation.split(",")) {
    const servers: Record<string, TestServer> = {};
    for (const [name, entry] of Object.entries(entries)) {
      servers[name] = await startServer({
        functionsDir: dir,
        entry,
        env: { ISOLANE_ISOLATION: isolation, ISOLANE_ADMIN_TOKEN: token, ...(name === "this" ? thisEnv : {}) },
      });
    }
    const cold: Record<string, number[]> = { other: [], this: [] };
    const again: Record<string, number[]> = { other: [], this: [] };
    const logStart = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.logs.length]));
    try {
      for (const server of Object.values(servers)) {
        await server.waitForLog((l) => l.msg === "function loaded" && l.function === "hang");
      }
      for (let round = 0; round < rounds; round++) {
        // Alternate which runtime goes first, so neither always follows the other's work.
        const order = round % 2 === 0 ? ["other", "this"] : ["this", "other"];
        for (const name of order) cold[name].push(await coldStart(servers[name], `cold${round}`));
        for (const name of order) again[name].push(await respawn(servers[name]));
      }
    } finally {
      for (const server of Object.values(servers)) await server.stop();
    }
    for (const name of Object.keys(entries)) {
      console.log(
        `${isolation} ${name}: cold start median ${median(cold[name])} ms [${
          cold[name].map((v) => v.toFixed(0)).join(" ")
        }], respawn median ${median(again[name])} ms [${
          again[name].map((v) => Number.isFinite(v) ? v.toFixed(0) : `>${hangTimeoutMs} (504)`).join(" ")
        }], phases ${JSON.stringify(phases(servers[name], logStart[name]))}`,
      );
    }
  }
} finally {
  console.log(`load average after: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  await Deno.remove(dir, { recursive: true });
}
