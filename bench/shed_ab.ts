/**
 * Overload refusals at steady load below capacity: one isolate, `timeoutMs` 300, run times that depend on the input
 * (a seeded sequence: mostly 5-40 ms, runs of 150 ms), open-loop arrivals at about 60% of capacity. Counts each
 * status per checkout, alternating checkouts (`main.ts` of each folder given) for `rounds` rounds.
 *
 * `deno run -A bench/shed_ab.ts /tmp/old . [rounds]`
 * @module
 */
import { join, resolve } from "node:path";
import { startServer } from "../tests/support/server.ts";

const checkouts = Deno.args.filter((a) => !/^\d+$/.test(a)).map((a) => resolve(a));
const rounds = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 2);
const source = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Waits ms",
  input: z.object({ ms: z.number().int().min(0) }),
  output: z.object({ ms: z.number() }),
  instances: 1,
  timeoutMs: 300,
  async handler({ ms }) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { ms };
  },
});
`;

function plan(n: number): { at: number; ms: number }[] {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const out = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    // A run of six 150 ms requests every 40, else 5-40 ms: mean about 40 ms, so about 25/s capacity.
    const ms = i % 40 < 6 ? 150 : 5 + Math.floor(random() * 35);
    at += -Math.log(1 - random()) * (1000 / 15);
    out.push({ at, ms });
  }
  return out;
}

const dir = await Deno.makeTempDir({ prefix: "isolane-shed-ab-" });
await Deno.mkdir(join(dir, "sized"));
await Deno.writeTextFile(join(dir, "sized", "mod.ts"), source);
const requests = plan(300);
const totals = new Map<string, Record<string, number>>();
for (let round = 0; round < rounds; round++) {
  for (const checkout of checkouts) {
    await using server = await startServer({ functionsDir: dir, entry: join(checkout, "main.ts") });
    await server.waitForLog((l) => l.msg === "function loaded");
    for (let i = 0; i < 3; i++) await (await server.invoke("sized", { ms: 5 })).body?.cancel();
    const started = performance.now();
    const statuses = await Promise.all(requests.map(async ({ at, ms }) => {
      const wait = at - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const response = await server.invoke("sized", { ms });
      await response.body?.cancel();
      return response.status;
    }));
    const tally = totals.get(checkout) ?? {};
    for (const s of statuses) tally[s] = (tally[s] ?? 0) + 1;
    totals.set(checkout, tally);
    const one: Record<string, number> = {};
    for (const s of statuses) one[s] = (one[s] ?? 0) + 1;
    console.log(JSON.stringify({ round, checkout, statuses: one }));
  }
}
console.log(JSON.stringify(Object.fromEntries(totals)));
await Deno.remove(dir, { recursive: true });
