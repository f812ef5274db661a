/**
 * Where a runtime's CPU time goes per answer with HTTP threads, thread by thread: it serves the 8×1024 MLP (batched,
 * Worker isolates, `ISOLANE_HTTP_THREADS=2`) while `wrk` posts batch-1 requests (v2 binary, `/v1` JSON), and every
 * thread's time on a CPU is read from `/proc/<pid>/task/<tid>/schedstat` before and after, grouped by the thread's
 * name (`comm`: the main thread, Deno's Worker threads, V8's and tokio's helpers), in µs per answer.
 *
 *   deno run -A bench/thread_cpu.ts [<runtime's main.ts>] [--seconds 5] [--connections 64]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startServer } from "../tests/support/server.ts";
import { wideRequests, writeBenchFunctions } from "./functions.ts";
import { ensureWideMlp } from "./make_mlp8x1024.ts";
import { findWrk, runLoad } from "./wrk.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
    threads: { type: "string", default: "2" },
  },
});
const entry = positionals[0] ?? fileURLToPath(new URL("../main.ts", import.meta.url));
const wrk = await findWrk();
if (!wrk) throw new Error("wrk is not installed");
const dir = await Deno.makeTempDir({ prefix: "isolane-threadcpu-" });
await writeBenchFunctions(dir, {
  instances: 1,
  wideMlp: await ensureWideMlp(),
  batching: { maxBatchSize: 64, maxQueueDelayMs: 0 },
});
const variants = wideRequests();

/** Nanoseconds on a CPU of every thread of `pid`, by tid, with the thread's name. */
async function threads(pid: number): Promise<Map<number, { name: string; ns: number }>> {
  const out = new Map<number, { name: string; ns: number }>();
  for await (const t of Deno.readDir(`/proc/${pid}/task`)) {
    try {
      const ns = Number((await Deno.readTextFile(`/proc/${pid}/task/${t.name}/schedstat`)).split(" ")[0]);
      const name = (await Deno.readTextFile(`/proc/${pid}/task/${t.name}/comm`)).trim();
      out.set(Number(t.name), { name: Number(t.name) === pid ? "main" : name, ns });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

const server = await startServer({
  functionsDir: dir,
  entry,
  env: { ISOLANE_HTTP_THREADS: values.threads!, ISOLANE_ISOLATION: "worker" },
});
try {
  const port = new URL(server.url).port;
  const ss = await new Deno.Command("ss", { args: ["-Hltnp", `sport = :${port}`] }).output();
  const pid = Number(/pid=(\d+)/.exec(new TextDecoder().decode(ss.stdout))?.[1]);
  for (const v of variants) {
    await Deno.writeFile(`${dir}/${v.key}.body`, v.body);
    const load = {
      url: `${server.url}${v.path}`,
      bodyFile: `${dir}/${v.key}.body`,
      contentType: v.contentType,
      headers: v.headers,
      connections: Number(values.connections),
    };
    await runLoad(wrk, { ...load, durationS: 1 });
    const before = await threads(pid);
    const result = await runLoad(wrk, { ...load, durationS: Number(values.seconds) });
    const after = await threads(pid);
    const ok = result.statuses["200"] ?? 0;
    const byName = new Map<string, number>();
    for (const [tid, t] of after) {
      const ns = t.ns - (before.get(tid)?.ns ?? 0);
      byName.set(t.name, (byName.get(t.name) ?? 0) + ns);
    }
    const total = [...byName.values()].reduce((a, b) => a + b, 0);
    const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
    console.log(`${v.key}: ${result.rps.toFixed(0)} rps, ${ok} answers, load ${loadavg}`);
    for (const [name, ns] of [...byName].sort((a, b) => b[1] - a[1])) {
      if (ns / 1000 / ok >= 0.5) console.log(`  ${name.padEnd(18)} ${(ns / 1000 / ok).toFixed(1)} µs/answer`);
    }
    console.log(`  ${"all".padEnd(18)} ${(total / 1000 / ok).toFixed(1)} µs/answer`);
  }
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
