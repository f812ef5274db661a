/**
 * The per-request hop, A against B: this tree's runtime and another's (an
 * older commit, say), each a child process on 127.0.0.1 with the suite's bench
 * functions (`bench/functions.ts`: `echo`, and `mlp_batched` with dynamic
 * batching), driven by `wrk` in rounds that alternate between the two, so that
 * a busy machine slows both alike. Per isolation (Worker host, process host):
 * the sequential echo (`wrk -c1`, p50) and `mlp_batched` at `--concurrency`
 * (answers per second). Beside them, in the same run: a plain Hono JSON echo
 * (`bench/baselines/hono_echo.ts`, the baseline) and the floors of
 * the hop itself, a bare Deno Worker's and a bare child process's (pipes)
 * message round trip. Medians over the rounds; the load average is printed
 * before and after.
 *
 *   git archive <rev> | tar -x -C /tmp/isolane-old && ln -s "$PWD/node_modules" /tmp/isolane-old/
 *   deno run -A bench/ab_echo.ts /tmp/isolane-old/main.ts [--rounds 5] [--seconds 2] [--concurrency 32]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { type Child, startChild } from "./child.ts";
import { writeBenchFunctions } from "./functions.ts";
import { findWrk, runLoad } from "./wrk.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "2" },
    concurrency: { type: "string", default: "32" },
    isolation: { type: "string", default: "worker,process" },
  },
});
if (positionals.length !== 1) throw new Error("Usage: deno run -A bench/ab_echo.ts <other runtime's main.ts>");
const entries = { other: positionals[0], this: fileURLToPath(new URL("../main.ts", import.meta.url)) };
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const wrk = await findWrk();
if (!wrk) throw new Error("wrk is not installed (apt-get install wrk)");

const scratch = await Deno.makeTempDir({ prefix: "isolane-ab-echo-" });
const functionsDir = `${scratch}/functions`;
await Deno.mkdir(functionsDir);
await writeBenchFunctions(functionsDir, {
  instances: 2,
  echo: true,
  mlp: true,
  batching: { maxBatchSize: 64, maxQueueDelayMs: 2 },
});
const echoBody = `${scratch}/echo.json`;
const mlpBody = `${scratch}/mlp.json`;
await Deno.writeTextFile(echoBody, JSON.stringify({ message: "hi" }));
await Deno.writeTextFile(mlpBody, JSON.stringify({ x: [[0.5, -1, 2, 0.25]] }));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function loadAverage(): string {
  return Deno.loadavg().map((x) => x.toFixed(2)).join(", ");
}

async function ready(server: Child, name: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const info = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
    if (info.status === "ready") return;
    if (info.status === "failed") throw new Error(`Function '${name}' failed: ${JSON.stringify(info.error)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`Function '${name}' did not become ready`);
}

/** Round trips of a small message to a bare Worker that answers at once: the floor of the Worker host's hop, in µs. */
async function workerFloor(count: number): Promise<number> {
  const source = "self.onmessage = (e) => self.postMessage(e.data);";
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), { type: "module" });
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        worker.onmessage = () => resolve();
        worker.postMessage({ type: "run", jobs: [{ id: i, body: new ArrayBuffer(16) }] });
      });
      if (i >= 200) times.push((performance.now() - t0) * 1000);
    }
  } finally {
    worker.terminate();
  }
  return median(times);
}

/** Round trips of a small frame to a bare child Deno process over its stdin and stdout: the process host's floor, in µs. */
async function processFloor(count: number): Promise<number> {
  const source = "for await (const chunk of Deno.stdin.readable) await Deno.stdout.write(chunk);";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", source],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  const frame = new TextEncoder().encode(JSON.stringify({ type: "run", jobs: [{ id: 1, body: "0123456789abcdef" }] }));
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await writer.write(frame);
      let got = 0;
      while (got < frame.byteLength) {
        const { value, done } = await reader.read();
        if (done) throw new Error("The echo process ended");
        got += value.byteLength;
      }
      if (i >= 200) times.push((performance.now() - t0) * 1000);
    }
  } finally {
    await writer.close();
    reader.releaseLock();
    await child.status;
  }
  return median(times);
}

console.log(`load average before: ${loadAverage()}`);
const baseline = await startChild({ entry: fileURLToPath(new URL("./baselines/hono_echo.ts", import.meta.url)) });
const rows: string[] = [];
try {
  for (const isolation of values.isolation.split(",")) {
    const servers: Record<string, Child> = {};
    for (const [name, entry] of Object.entries(entries)) {
      servers[name] = await startChild({
        entry,
        env: {
          ISOLANE_FUNCTIONS: functionsDir,
          ISOLANE_DATA: await Deno.makeTempDir({ dir: scratch, prefix: "data-" }),
          ISOLANE_LOG_LEVEL: "info",
          ISOLANE_ISOLATION: isolation,
          CUDA_VISIBLE_DEVICES: "",
        },
      });
      await ready(servers[name], "echo");
      await ready(servers[name], "mlp_batched");
    }
    const p50: Record<string, number[]> = { hono: [], other: [], this: [], worker: [], process: [] };
    const rps: Record<string, number[]> = { other: [], this: [] };
    try {
      for (let round = 0; round <= rounds; round++) {
        // Round 0 warms every server up and is not counted.
        const keep = round > 0;
        const hono = await runLoad(wrk, {
          url: `${baseline.url}/v1/functions/echo`,
          bodyFile: echoBody,
          connections: 1,
          durationS: seconds,
        });
        if (keep) p50.hono.push(hono.p50Us);
        const order = round % 2 ? ["this", "other"] : ["other", "this"];
        for (const name of order) {
          const echo = await runLoad(wrk, {
            url: `${servers[name].url}/v1/functions/echo`,
            bodyFile: echoBody,
            connections: 1,
            durationS: seconds,
          });
          const mlp = await runLoad(wrk, {
            url: `${servers[name].url}/v1/functions/mlp_batched`,
            bodyFile: mlpBody,
            connections: concurrency,
            durationS: seconds,
          });
          if (echo.errors > 0 || mlp.errors > 0) {
            throw new Error(`${name} answered errors: ${JSON.stringify([echo.statuses, mlp.statuses])}`);
          }
          if (keep) {
            p50[name].push(echo.p50Us);
            rps[name].push(mlp.goodput);
          }
        }
        if (keep) {
          p50.worker.push(await workerFloor(2000));
          p50.process.push(await processFloor(2000));
        }
      }
    } finally {
      for (const server of Object.values(servers)) await server.stop();
    }
    const hono = median(p50.hono);
    for (const name of ["other", "this"]) {
      rows.push(
        `| ${isolation} | ${name} | ${median(p50[name]).toFixed(0)} | ${(median(p50[name]) / hono).toFixed(2)}× | ${
          median(rps[name]).toFixed(0)
        } | ${p50[name].map((x) => x.toFixed(0)).join(" ")} | ${rps[name].map((x) => x.toFixed(0)).join(" ")} |`,
      );
    }
    rows.push(
      `| ${isolation} | plain Hono echo; bare Worker / process round trip | ${
        hono.toFixed(0)
      } | — | — | floors: Worker ${median(p50.worker).toFixed(0)} µs, process ${median(p50.process).toFixed(0)} µs | |`,
    );
  }
} finally {
  await baseline.stop();
  await Deno.remove(scratch, { recursive: true }).catch(() => {});
}
console.log(
  `\nMedians of ${rounds} rounds of ${seconds} s; echo at c=1 (p50 µs, ratio to plain Hono's p50 in the same rounds), ` +
    `mlp_batched (max 64, 2 ms) at c=${concurrency} (2xx/s).\n`,
);
console.log(
  "| isolation | runtime | echo c=1 p50 µs | ÷ Hono | mlp_batched 2xx/s | echo p50 per round | mlp per round |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
console.log(`\nload average after: ${loadAverage()}`);
