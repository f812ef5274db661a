/**
 * The CPU models of scenario B through several runtimes side by side (this tree's, an older commit's, the same one
 * with other settings), and optionally the plain Hono + ORT baseline: each a child process on 127.0.0.1 serving the
 * bench functions (`bench/functions.ts`), loaded by wrk. All serve at once, and every case alternates between them,
 * round after round, so that a machine shared with others slows each alike; the medians of the rounds are printed, with every round's figure and the
 * mean batch size the batched functions ran (`recentBatchSizes`), and the load average.
 *
 *   git archive <rev> | tar -x -C /tmp/isolane-old && ln -s "$PWD/node_modules" /tmp/isolane-old/
 *   deno run -A bench/ab_cpu.ts old=/tmp/isolane-old/main.ts new=main.ts new-t1=main.ts,ISOLANE_ORT_THREADS=1 \
 *     [--hono] [--floor] [--rounds 3] [--seconds 3] [--instances 2] [--cases w1,w32,wb1,wb32,s1,sb32]
 *
 * A runtime's `instances=N` pair (`new-i1=main.ts,instances=N`) writes its functions with N isolates instead of
 * `--instances`; its other pairs are its environment.
 * Cases: `w` the 8×1024 MLP, `wb` the same with dynamic batching (max 64, 2 ms), `s` the small mlp, `sb` batched,
 * `e` the suite's echo (with `--hono`, against the plain Hono echo, `bench/baselines/hono_echo.ts`); the number is the
 * concurrency: `--cases e1,w1` is issue 14's sequential latency, echo and the 8×1024 MLP at c=1. Needs `bench/.models/mlp8x1024.onnx` (`deno run -A bench/make_mlp8x1024.ts`).
 * `--floor` adds `bench/baselines/hop_floor.ts`, the floor of a process-isolated runtime (`Deno.serve` and a bare
 * Unix-socket hop to `--instances` child processes, batching whatever is queued for a `_batched` function), as a
 * runtime of its own; name it as a runtime to pass its settings (`floor-spin=bench/baselines/hop_floor.ts,BENCH_FLOOR_SPIN=1`).
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { startChild } from "./child.ts";
import { findWrk, runLoad } from "./wrk.ts";
import { writeBenchFunctions } from "./functions.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    hono: { type: "boolean", default: false },
    floor: { type: "boolean", default: false },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
    instances: { type: "string", default: "2" },
    "max-queue-delay-ms": { type: "string", default: "2" },
    cases: { type: "string", default: "w1,w32,wb1,wb32,s1,sb32" },
  },
});
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const wide = here("./.models/mlp8x1024.onnx");
const small = here("../functions/mlp/mlp.onnx");
type Runtime = { name: string; entry: string; env: Record<string, string>; instances?: number; hono?: boolean };
const runtimes: Runtime[] = positionals.map((arg) => {
  const [name, rest] = arg.split(/=(.*)/s);
  if (!rest) throw new Error(`Expected name=main.ts[,KEY=VALUE...], not '${arg}'`);
  const [entry, ...pairs] = rest.split(",");
  const env = Object.fromEntries(pairs.map((p) => p.split(/=(.*)/s).slice(0, 2)));
  const instances = env.instances === undefined ? undefined : Number(env.instances);
  delete env.instances;
  return { name, entry: resolve(entry), env, ...(instances ? { instances } : {}) };
});
if (values.hono) {
  const models = { mlp8x1024: wide, mlp8x1024_batched: wide, mlp: small, mlp_batched: small };
  runtimes.unshift({
    name: "hono+ort",
    entry: here("./baselines/hono_ort.ts"),
    env: { BENCH_MODELS: JSON.stringify(models) },
    hono: true,
  });
}
if (values.floor) runtimes.push({ name: "floor", entry: here("./baselines/hop_floor.ts"), env: {} });
for (const runtime of runtimes.filter((r) => r.entry.endsWith("hop_floor.ts"))) {
  runtime.env = {
    BENCH_MODELS: JSON.stringify({ mlp8x1024: wide, mlp8x1024_batched: wide, mlp: small, mlp_batched: small }),
    BENCH_CHILDREN: String(runtime.instances ?? values.instances),
    ...runtime.env,
  };
}
if (runtimes.length === 0) throw new Error("Name at least one runtime: name=path/to/main.ts");
const wrk = await findWrk();
if (!wrk) throw new Error("wrk is not installed");
const functionsOf = { w: "mlp8x1024", wb: "mlp8x1024_batched", s: "mlp", sb: "mlp_batched", e: "echo" } as const;
const cases = values.cases.split(",").map((c) => {
  const m = c.match(/^(wb|w|sb|s|e)(\d+)$/);
  if (!m) throw new Error(`Unknown case '${c}'`);
  return { key: c, fn: functionsOf[m[1] as keyof typeof functionsOf], connections: Number(m[2]) };
});
const row = Array.from({ length: 1024 }, (_, i) => Math.round(Math.sin(i * 0.37) * 5000) / 10_000);
const wideBody = await Deno.makeTempFile();
await Deno.writeTextFile(wideBody, JSON.stringify({ x: [row] }));
const smallBody = await Deno.makeTempFile();
await Deno.writeTextFile(smallBody, JSON.stringify({ x: [[1, 2, 3, 4]] }));
const echoBody = await Deno.makeTempFile();
await Deno.writeTextFile(echoBody, JSON.stringify({ message: "hi" }));
const bodyOf = (fn: string) => fn === "echo" ? echoBody : fn.startsWith("mlp8") ? wideBody : smallBody;

const figures = new Map<string, number[]>();
const add = (key: string, value: number) => figures.set(key, [...figures.get(key) ?? [], value]);
const loadBefore = Deno.loadavg()[0];
// Every runtime serves at once (an idle one takes no core: its ORT threads sleep or there are none), and each case
// alternates between them round after round.
await using stack = new AsyncDisposableStack();
const urls = new Map<string, string>();
for (const runtime of runtimes) {
  const dir = await Deno.makeTempDir({ prefix: "isolane-ab-cpu-" });
  await writeBenchFunctions(dir, {
    instances: runtime.instances ?? Number(values.instances),
    mlp: true,
    wideMlp: wide,
    echo: true,
    batching: { maxBatchSize: 64, maxQueueDelayMs: Number(values["max-queue-delay-ms"]) },
  });
  const env = runtime.hono ? runtime.env : {
    ISOLANE_FUNCTIONS: dir,
    ISOLANE_DATA: await Deno.makeTempDir({ prefix: "isolane-ab-cpu-data-" }),
    CUDA_VISIBLE_DEVICES: "",
    ...runtime.env,
  };
  const child = stack.use(await startChild({ entry: runtime.entry, env }));
  for (const { fn } of cases) {
    while (!runtime.hono) {
      const info = await (await fetch(`${child.url}/v1/functions/${fn}`)).json();
      if (info.status === "ready") break;
      if (info.status === "failed") throw new Error(`${runtime.name}: ${fn} failed to load`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  urls.set(runtime.name, child.url);
  if (runtime.hono && cases.some((c) => c.fn === "echo")) {
    urls.set(`${runtime.name}:echo`, stack.use(await startChild({ entry: here("./baselines/hono_echo.ts") })).url);
  }
}
for (let round = 0; round < Number(values.rounds); round++) {
  for (const c of cases) {
    for (const runtime of runtimes) {
      const url = urls.get(runtime.hono && c.fn === "echo" ? `${runtime.name}:echo` : runtime.name)!;
      const options = {
        url: `${url}/v1/functions/${c.fn}`,
        bodyFile: bodyOf(c.fn),
        connections: c.connections,
      };
      await runLoad(wrk, { ...options, durationS: 1 });
      const result = await runLoad(wrk, { ...options, durationS: Number(values.seconds) });
      const name = runtime.hono && c.fn === "echo" ? "hono" : runtime.name;
      add(`${name}\t${c.key}\t2xx/s`, Math.round(result.goodput));
      add(`${name}\t${c.key}\tp50 µs`, Math.round(result.p50Us));
      if (result.errors > 0) console.log(`${runtime.name} ${c.key}: ${result.errors} errors`, result.statuses);
      if (!runtime.hono && c.fn.endsWith("_batched")) {
        const info = await (await fetch(`${url}/v1/functions/${c.fn}`)).json();
        const sizes: number[] = info.recentBatchSizes ?? [];
        add(`${runtime.name}\t${c.key}\tmean batch`, sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length));
      }
    }
  }
  console.error(`round ${round + 1} done (load ${Deno.loadavg()[0].toFixed(2)})`);
}
const order = [...figures.keys()].sort((a, b) => {
  const [ra, ca] = a.split("\t");
  const [rb, cb] = b.split("\t");
  return cases.findIndex((c) => c.key === ca) - cases.findIndex((c) => c.key === cb) ||
    runtimes.findIndex((r) => r.name === ra) - runtimes.findIndex((r) => r.name === rb);
});
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log("runtime\tcase\tfigure\tmedian\trounds");
for (const key of order) {
  const xs = figures.get(key)!;
  console.log(`${key}\t${Math.round(median(xs) * 10) / 10}\t${xs.map((x) => Math.round(x * 10) / 10).join(" ")}`);
}
console.log(`load average (1 min): ${loadBefore.toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after`);
