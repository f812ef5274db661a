/**
 * Where a runtime's CPU time goes per answer with HTTP threads, thread by thread: it serves the 8×1024 MLP (batched,
 * Worker isolates, `ISOLANE_HTTP_THREADS=2`) while `wrk` posts batch-1 requests (v2 binary, `/v1` JSON), and every
 * thread's time on a CPU is read from `/proc/<pid>/task/<tid>/schedstat` before and after, grouped by the thread's
 * name (`comm`: the main thread, Deno's Worker threads, V8's and tokio's helpers), in µs per answer. Deno names its
 * Worker threads `worker-<n>` in the order they start: the isolate's comes first, the HTTP threads' after it (with 2
 * threads and one isolate, `worker-4` and `worker-5` were the HTTP threads), so of the Worker threads that took
 * CPU time the highest-numbered `--threads` are summed as "(HTTP threads)" and the others as "(isolates)"; `tokio-runtime-w` is where ONNX Runtime runs on
 * the CPU, `V8 DefaultWorke` V8's helpers (garbage collection, compilation).
 *
 * With `--against <other runtime's main.ts>` (another checkout, say), the two runtimes are measured in turn for
 * `--rounds` rounds (alternating which goes first, so that a busy machine slows both alike), and the medians per
 * thread name are printed at the end.
 *
 *   deno run -A bench/thread_cpu.ts [<runtime's main.ts>] [--against <other main.ts>] [--rounds 1] [--seconds 5]
 *     [--connections 64] [--threads 2]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startServer } from "../tests/support/server.ts";
import { wideRequests, writeBenchFunctions } from "./functions.ts";
import { ensureWideMlp } from "./make_mlp8x1024.ts";
import { findWrk, runLoad, type WrkBinary } from "./wrk.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
    threads: { type: "string", default: "2" },
    against: { type: "string" },
    rounds: { type: "string", default: "1" },
  },
});
const entries: Record<string, string> = {
  this: positionals[0] ?? fileURLToPath(new URL("../main.ts", import.meta.url)),
  ...(values.against ? { other: values.against } : {}),
};
const wrk = await findWrk();
if (!wrk) throw new Error("wrk is not installed");
const dir = await Deno.makeTempDir({ prefix: "isolane-threadcpu-" });
await writeBenchFunctions(dir, {
  instances: 1,
  wideMlp: await ensureWideMlp(),
  batching: { maxBatchSize: 64, maxQueueDelayMs: 0 },
});
const variants = wideRequests();
for (const v of variants) await Deno.writeFile(`${dir}/${v.key}.body`, v.body);

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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** µs per answer by thread name ("all": the process), and answers per second, per variant key. */
type Measured = Record<string, { rps: number; us: Map<string, number> }>;

/** Serves the bench functions with the runtime at `entry`, loads each variant, and reads the threads' CPU time. */
async function measure(entry: string, label: string, wrk: WrkBinary): Promise<Measured> {
  const server = await startServer({
    functionsDir: dir,
    entry,
    env: { ISOLANE_HTTP_THREADS: values.threads!, ISOLANE_ISOLATION: "worker" },
  });
  const out: Measured = {};
  try {
    const port = new URL(server.url).port;
    const ss = await new Deno.Command("ss", { args: ["-Hltnp", `sport = :${port}`] }).output();
    const pid = Number(/pid=(\d+)/.exec(new TextDecoder().decode(ss.stdout))?.[1]);
    for (const v of variants) {
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
      if (ok === 0) throw new Error(`${label} answered no 200 to ${v.key}: ${JSON.stringify(result.statuses)}`);
      const byName = new Map<string, number>();
      for (const [tid, t] of after) {
        const ns = t.ns - (before.get(tid)?.ns ?? 0);
        byName.set(t.name, (byName.get(t.name) ?? 0) + ns);
      }
      const total = [...byName.values()].reduce((a, b) => a + b, 0);
      const us = new Map([...byName].map(([name, ns]) => [name, ns / 1000 / ok]));
      // Deno numbers its Worker threads in the order they start, and the HTTP threads start after the isolates: of
      // those that worked (idle ones start later too), the highest-numbered are the HTTP threads (a respawned isolate
      // would break this; none is in a steady run).
      const workers = [...us.keys()].filter((n) => /^worker-\d+$/.test(n) && us.get(n)! >= 1).sort((a, b) =>
        Number(a.slice(7)) - Number(b.slice(7))
      );
      const http = workers.slice(-Number(values.threads));
      us.set("(HTTP threads)", http.reduce((sum, n) => sum + us.get(n)!, 0));
      us.set("(isolates)", workers.slice(0, -Number(values.threads)).reduce((sum, n) => sum + us.get(n)!, 0));
      us.set("all", total / 1000 / ok);
      out[v.key] = { rps: result.rps, us };
      const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
      console.log(`${label} ${v.key}: ${result.rps.toFixed(0)} rps, ${ok} answers, load ${loadavg}`);
      for (const [name, x] of [...us].sort((a, b) => b[1] - a[1])) {
        if (x >= 0.5 && name !== "all") console.log(`  ${name.padEnd(18)} ${x.toFixed(1)} µs/answer`);
      }
      console.log(`  ${"all".padEnd(18)} ${us.get("all")!.toFixed(1)} µs/answer`);
    }
  } finally {
    await server.stop();
  }
  return out;
}

try {
  const runs: Record<string, Measured[]> = {};
  const names = Object.keys(entries);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const name of round % 2 ? [...names].reverse() : names) {
      (runs[name] ??= []).push(await measure(entries[name], names.length > 1 ? `round ${round} ${name}` : name, wrk));
    }
  }
  if (names.length > 1 || Number(values.rounds) > 1) {
    const loadavg = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
    console.log(`\nmedians over ${values.rounds} rounds (load average at the end: ${loadavg}), µs per answer:`);
    for (const v of variants) {
      for (const name of names) {
        const measured = runs[name].map((m) => m[v.key]);
        // Worker threads by name are not comparable across runs (their numbers shift): by role instead.
        const threadNames = new Set(
          measured.flatMap((m) => [...m.us].filter(([n, x]) => x >= 0.5 && !n.startsWith("worker-")).map(([n]) => n)),
        );
        const parts = [...threadNames].sort().map((n) =>
          `${n} ${median(measured.map((m) => m.us.get(n) ?? 0)).toFixed(1)}`
        );
        console.log(
          `${v.key.padEnd(10)} ${name.padEnd(6)} ${median(measured.map((m) => m.rps)).toFixed(0)} rps; ${
            parts.join("; ")
          }`,
        );
      }
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
