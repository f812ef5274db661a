/**
 * The main thread's CPU time per request with HTTP threads, this tree's runtime against another's (an older commit,
 * say): each serves the 8×1024 MLP (batched, Worker isolates, `ISOLANE_HTTP_THREADS=2`) while `wrk` posts batch-1
 * requests, v2 binary tensor extension and `/v1` JSON. The main thread's CPU time is read from
 * `/proc/<pid>/task/<pid>/schedstat` (ns on a CPU) before and after each run and divided by the answers; rounds
 * alternate between the two runtimes, so that a busy machine slows both alike. Medians are reported.
 *
 *   git archive <rev> | tar -x -C /tmp/isolane-old && ln -s "$PWD/node_modules" /tmp/isolane-old/
 *   deno run -A bench/ab_main_cpu.ts /tmp/isolane-old/main.ts [--seconds 5] [--connections 16] [--rounds 3]
 *     [--model wide|small] [--delay-ms 2]
 *
 * `--model small` serves the 4→16→3 `mlp` instead (one row of 4): its run costs next to nothing, so the main thread's
 * share stands out as it does on a GPU host; `--delay-ms` is the batcher's `maxQueueDelayMs`.
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "../tests/support/server.ts";
import { v2BinaryBody, type WideRequest, wideRequests, writeBenchFunctions } from "./functions.ts";
import { defaultWideMlpPath } from "./make_mlp8x1024.ts";
import { findWrk, runLoad } from "./wrk.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    model: { type: "string", default: "wide" },
    "delay-ms": { type: "string", default: "2" },
  },
});
if (positionals.length !== 1) throw new Error("Usage: deno run -A bench/ab_main_cpu.ts <other runtime's main.ts>");
const entries = { other: positionals[0], this: fileURLToPath(new URL("../main.ts", import.meta.url)) };
const wrk = await findWrk();
if (!wrk) throw new Error("wrk is not installed");

try {
  await Deno.stat(defaultWideMlpPath);
} catch {
  const make = fileURLToPath(new URL("./make_mlp8x1024.ts", import.meta.url));
  const { success } = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", make] }).output();
  if (!success) throw new Error("Cannot generate the 8×1024 MLP");
}
const dir = await Deno.makeTempDir({ prefix: "isolane-abcpu-" });
const small = values.model === "small";
await writeBenchFunctions(dir, {
  instances: 1,
  ...(small ? { mlp: true } : { wideMlp: defaultWideMlpPath }),
  batching: { maxBatchSize: 64, maxQueueDelayMs: Number(values["delay-ms"]) },
});

const variants = small ? smallRequests() : wideRequests();

/** {@link wideRequests} for `mlp_batched`: one row of 4. */
function smallRequests(): WideRequest[] {
  const row = [0.1, 0.2, 0.3, 0.4];
  const { body, headerLength } = v2BinaryBody(row);
  return wideRequests().map((v) =>
    v.key === "v1_json"
      ? { ...v, path: "/v1/functions/mlp_batched", body: new TextEncoder().encode(JSON.stringify({ x: [row] })) }
      : {
        ...v,
        path: "/v2/models/mlp_batched/infer",
        body,
        headers: { "Inference-Header-Content-Length": String(headerLength) },
      }
  );
}
for (const v of variants) await Deno.writeFile(`${dir}/${v.key}.body`, v.body);

/** The pid of the process listening on the server's port. */
async function pidOf(server: TestServer): Promise<number> {
  const port = new URL(server.url).port;
  const out = await new Deno.Command("ss", { args: ["-Hltnp", `sport = :${port}`] }).output();
  const pid = /pid=(\d+)/.exec(new TextDecoder().decode(out.stdout))?.[1];
  if (!pid) throw new Error(`No process listens on port ${port}`);
  return Number(pid);
}

/** Nanoseconds the process's main thread has spent on a CPU. */
async function mainThreadNs(pid: number): Promise<number> {
  return Number((await Deno.readTextFile(`/proc/${pid}/task/${pid}/schedstat`)).split(" ")[0]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const servers: Record<string, { server: TestServer; pid: number }> = {};
try {
  for (const [name, entry] of Object.entries(entries)) {
    const server = await startServer({
      functionsDir: dir,
      entry,
      env: { ISOLANE_HTTP_THREADS: values.threads!, ISOLANE_ISOLATION: "worker" },
    });
    servers[name] = { server, pid: await pidOf(server) };
  }
  const results: Record<string, Record<string, { usPerRequest: number[]; rps: number[] }>> = {};
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const v of variants) {
      for (const name of round % 2 ? ["this", "other"] : ["other", "this"]) {
        const { server, pid } = servers[name];
        const before = await mainThreadNs(pid);
        const load = await runLoad(wrk, {
          url: `${server.url}${v.path}`,
          bodyFile: `${dir}/${v.key}.body`,
          contentType: v.contentType,
          headers: v.headers,
          connections: Number(values.connections),
          durationS: Number(values.seconds),
        });
        const ns = (await mainThreadNs(pid)) - before;
        const ok = load.statuses["200"] ?? 0;
        if (ok === 0) throw new Error(`${name} answered no 200 to ${v.key}: ${JSON.stringify(load.statuses)}`);
        const r = ((results[v.key] ??= {})[name] ??= { usPerRequest: [], rps: [] });
        r.usPerRequest.push(ns / 1000 / ok);
        r.rps.push(load.rps);
        console.log(
          `round ${round} ${v.key} ${name}: ${(ns / 1000 / ok).toFixed(1)} µs main-thread CPU per answer, ${
            load.rps.toFixed(0)
          } rps (${ok} answers, ${load.errors} errors)`,
        );
      }
    }
  }
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(`\nmedians (load average at the end: ${load}):`);
  for (const [key, byName] of Object.entries(results)) {
    for (const [name, r] of Object.entries(byName)) {
      console.log(
        `${key.padEnd(10)} ${name.padEnd(6)} main thread ${median(r.usPerRequest).toFixed(1)} µs/answer, ${
          median(r.rps).toFixed(0)
        } rps`,
      );
    }
  }
} finally {
  for (const { server } of Object.values(servers)) await server.stop();
  await Deno.remove(dir, { recursive: true });
}
