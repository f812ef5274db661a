/**
 * Where the CPU goes while the runtime serves one of scenario B's functions under load: this tree's runtime (a
 * child process, its isolates in child processes of their own) is loaded by wrk for `--seconds`, and the CPU time of
 * every thread of the runtime's process tree (from `/proc/<pid>/task/<tid>/stat`) and of wrk is printed, per thread
 * grouped by role, as a share of one core and per answered request, with the batch sizes the function ran.
 *
 *   deno run -A bench/cpu_threads.ts [--function mlp8x1024_batched] [--connections 32] [--seconds 5] [--instances 2]
 *
 * Roles: the runtime's main thread (HTTP, pool, dispatch, framing to the isolates), each isolate's first thread (its
 * JavaScript: JSON decode and encode, batch assembly and split, framing), an isolate's other threads but V8's (Deno's
 * blocking pool, where its nonblocking ORT calls run as ORT's calling thread, and ORT's intra-op threads), and V8's
 * workers (`V8 DefaultWorke`: garbage collection, compilation).
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startChild } from "./child.ts";
import { findWrk, runLoad } from "./wrk.ts";
import { writeBenchFunctions } from "./functions.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    function: { type: "string", default: "mlp8x1024_batched" },
    connections: { type: "string", default: "32" },
    seconds: { type: "string", default: "5" },
    instances: { type: "string", default: "2" },
    "max-queue-delay-ms": { type: "string", default: "2" },
  },
});
const fn = values.function;
const wide = fileURLToPath(new URL("./.models/mlp8x1024.onnx", import.meta.url));
const dir = await Deno.makeTempDir({ prefix: "isolane-cpu-threads-" });
await writeBenchFunctions(dir, {
  instances: Number(values.instances),
  mlp: true,
  wideMlp: wide,
  batching: { maxBatchSize: 64, maxQueueDelayMs: Number(values["max-queue-delay-ms"]) },
});
await using child = await startChild({
  env: {
    ISOLANE_FUNCTIONS: dir,
    ISOLANE_DATA: await Deno.makeTempDir({ prefix: "isolane-cpu-threads-data-" }),
    CUDA_VISIBLE_DEVICES: "",
  },
});
while (true) {
  const info = await (await fetch(`${child.url}/v1/functions/${fn}`)).json();
  if (info.status === "ready") break;
  if (info.status === "failed" || info.error) throw new Error(`${fn} did not load: ${JSON.stringify(info)}`);
  await new Promise((r) => setTimeout(r, 100));
}

/** `/proc/<pid>/stat` fields after the command name (field 3 onwards). */
function statFields(path: string): { comm: string; fields: string[] } {
  const text = Deno.readTextFileSync(path);
  return {
    comm: text.slice(text.indexOf("(") + 1, text.lastIndexOf(")")),
    fields: text.slice(text.lastIndexOf(")") + 2).split(" "),
  };
}
const processes = () =>
  [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name)).flatMap((e) => {
    try {
      const { comm, fields } = statFields(`/proc/${e.name}/stat`);
      return [{ pid: Number(e.name), ppid: Number(fields[1]), comm, ticks: Number(fields[11]) + Number(fields[12]) }];
    } catch {
      return [];
    }
  });
const port = new URL(child.url).port;
// The runtime: the process that listens on the port (the child is `deno run`, the same process).
const sockets = new TextDecoder().decode(
  (await new Deno.Command("ss", { args: ["-ltnp"], stdout: "piped" }).output())
    .stdout,
);
const root = Number(sockets.split("\n").find((l) => l.includes(`:${port} `))?.match(/pid=(\d+)/)?.[1]);
if (!root) throw new Error(`No process listens on port ${port}`);
const tree = [root];
for (let grew = true; grew;) {
  grew = false;
  for (const p of processes()) {
    if (!tree.includes(p.pid) && tree.includes(p.ppid)) (tree.push(p.pid), grew = true);
  }
}
function threadTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const pid of tree) {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const { comm, fields } = statFields(`/proc/${pid}/task/${task.name}/stat`);
        ticks.set(
          `${pid === root ? "runtime" : "isolate"} ${pid} ${task.name} ${comm}`,
          Number(fields[11]) + Number(fields[12]),
        );
      } catch { /* the thread ended */ }
    }
  }
  return ticks;
}

const row = Array.from({ length: 1024 }, (_, i) => Math.round(Math.sin(i * 0.37) * 5000) / 10_000);
const bodyFile = await Deno.makeTempFile();
await Deno.writeTextFile(bodyFile, JSON.stringify({ x: fn.startsWith("mlp8") ? [row] : [[1, 2, 3, 4]] }));
const wrk = await findWrk();
if (!wrk) throw new Error("wrk is not installed");
const load = { url: `${child.url}/v1/functions/${fn}`, bodyFile, connections: Number(values.connections) };
await runLoad(wrk, { ...load, durationS: 1 });
let wrkTicks = 0;
// wrk is a child of this process; its CPU time is read until it exits.
const watch = setInterval(() => {
  for (const p of processes()) if (p.comm === "wrk" && p.ppid === Deno.pid) wrkTicks = Math.max(wrkTicks, p.ticks);
}, 100);
const before = threadTicks();
const loadBefore = Deno.loadavg()[0];
const result = await runLoad(wrk, { ...load, durationS: Number(values.seconds) });
const after = threadTicks();
clearInterval(watch);
const hz = 100;
const share = (ticks: number) => `${(ticks / hz / result.seconds * 100).toFixed(0)} % of a core`;
const perRequest = (ticks: number) => `${(ticks / hz / result.requests * 1e6).toFixed(0)} µs/request`;
console.log(
  `${fn} at c=${values.connections}: ${result.goodput.toFixed(0)} 2xx/s, p50 ${(result.p50Us / 1000).toFixed(2)} ms`,
);
let total = 0;
const rows = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, d]) => d > 0);
const roles = new Map<string, number>();
for (const [thread, ticks] of rows) {
  const [where, pid, tid, ...name] = thread.split(" ");
  const comm = name.join(" ");
  const role = where === "runtime"
    ? (tid === String(root)
      ? "runtime main thread"
      : comm.startsWith("V8")
      ? "runtime V8 workers (GC)"
      : "runtime other")
    : tid === pid
    ? "isolates' JavaScript threads"
    : comm.startsWith("V8")
    ? "isolates' V8 workers (GC)"
    : "isolates' ORT (blocking pool and intra-op threads)";
  roles.set(role, (roles.get(role) ?? 0) + ticks);
  total += ticks;
}
for (const [role, ticks] of [...roles].sort((a, b) => b[1] - a[1])) {
  console.log(`  ${role.padEnd(52)} ${share(ticks).padStart(14)}  ${perRequest(ticks)}`);
}
console.log(`  ${"runtime and isolates, all threads".padEnd(52)} ${share(total).padStart(14)}  ${perRequest(total)}`);
console.log(`  ${"wrk (at least)".padEnd(52)} ${share(wrkTicks).padStart(14)}  ${perRequest(wrkTicks)}`);
const info = await (await fetch(`${child.url}/v1/functions/${fn}`)).json();
console.log(`recent batch sizes: ${(info.recentBatchSizes ?? []).join(",")}`);
console.log(`load average (1 min): ${loadBefore.toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after`);
