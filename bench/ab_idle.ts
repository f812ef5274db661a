/**
 * What an idle runtime costs, this tree's against another's (an older commit,
 * say): both serve one direct function (`mlp`, auth none) through HTTP
 * threads; after one request each, they are left idle, and for `--seconds`
 * windows that alternate between them this reads, from `/proc`, the CPU time
 * of the whole runtime process and the wake-ups (context switches) of its main
 * thread. Medians of the rounds are printed as JSON.
 *
 *   git archive <rev> | tar -x -C /tmp/isolane-old && ln -s "$PWD/node_modules" /tmp/isolane-old/
 *   deno run -A bench/ab_idle.ts /tmp/isolane-old/main.ts [--seconds 3] [--rounds 4]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "../tests/support/server.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { seconds: { type: "string", default: "3" }, rounds: { type: "string", default: "4" } },
});
if (positionals.length !== 1) throw new Error("Usage: deno run -A bench/ab_idle.ts <other runtime's main.ts>");
const entries = { other: positionals[0], this: fileURLToPath(new URL("../main.ts", import.meta.url)) };
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);

/** CPU ticks (USER_HZ) of the process, and context switches of its main thread. */
function sample(pid: number): { ticks: number; switches: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/status`);
  const count = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1]);
  return {
    ticks: Number(fields[11]) + Number(fields[12]),
    switches: count("voluntary_ctxt_switches") + count("nonvoluntary_ctxt_switches"),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const dir = await Deno.makeTempDir({ prefix: "isolane-idle-" });
await Deno.mkdir(`${dir}/mlp`);
for (const file of ["mod.ts", "mlp.onnx"]) {
  await Deno.copyFile(new URL(`../functions/mlp/${file}`, import.meta.url), `${dir}/mlp/${file}`);
}
const servers: Record<string, TestServer> = {};
try {
  for (const [name, entry] of Object.entries(entries)) {
    servers[name] = await startServer({ functionsDir: dir, entry, env: { ISOLANE_HTTP_THREADS: "2" } });
    const response = await fetch(`${servers[name].url}/v1/functions/mlp`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x: [[1, 2, 3, 4]] }),
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`mlp answered ${response.status} on ${name}`);
  }
  const pids = Object.fromEntries(
    Object.entries(servers).map(([name, s]) => [name, Number(s.logs.find((l) => l.msg === "starting")?.pid)]),
  );
  const perSecond: Record<string, { cpuMs: number[]; wakeups: number[] }> = {
    other: { cpuMs: [], wakeups: [] },
    this: { cpuMs: [], wakeups: [] },
  };
  for (let round = 0; round < rounds; round++) {
    for (const name of Object.keys(entries)) {
      const before = sample(pids[name]);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      const after = sample(pids[name]);
      perSecond[name].cpuMs.push(((after.ticks - before.ticks) * 10) / seconds);
      perSecond[name].wakeups.push((after.switches - before.switches) / seconds);
    }
  }
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  console.log(JSON.stringify(
    {
      load,
      seconds,
      rounds,
      idle: Object.fromEntries(
        Object.entries(perSecond).map((
          [name, v],
        ) => [name, { cpuMsPerSecond: median(v.cpuMs), mainThreadWakeupsPerSecond: median(v.wakeups) }]),
      ),
    },
    null,
    2,
  ));
} finally {
  for (const server of Object.values(servers)) await server.stop();
  await Deno.remove(dir, { recursive: true });
}
