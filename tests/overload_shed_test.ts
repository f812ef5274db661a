/**
 * The refusal of queued requests that cannot finish in time (`#shedLate`) must not refuse one that would have been
 * served: a function whose run time depends on its input (400 ms runs, then 5 ms ones) queued a 5 ms request behind a
 * 400 ms one with a 1000 ms limit; the pool's admission had taken it (expected wait 800 ms), and the 429 at the end of
 * the 400 ms run went by "the fastest of the last 8 runs" (400 ms each), though it would have finished 10 ms later.
 * Real runtime, real HTTP, with and without HTTP threads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "./support/server.ts";

const source = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Waits ms",
  input: z.object({ ms: z.number().int().min(0), tag: z.string() }),
  output: z.object({ ms: z.number() }),
  instances: 1,
  timeoutMs: 1000,
  async handler({ ms, tag }) {
    console.log("start", tag);
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { ms };
  },
});
`;

for (const threads of [undefined, "2"]) {
  const how = threads ? "with HTTP threads" : "without HTTP threads";
  Deno.test(`a short request queued behind long ones that its admission took is served, not refused (${how})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-shed-" });
    try {
      await Deno.mkdir(join(dir, "sized"));
      await Deno.writeTextFile(join(dir, "sized", "mod.ts"), source);
      await using server = await startServer({
        functionsDir: dir,
        env: threads ? { ISOLANE_HTTP_THREADS: threads } : {},
      });
      await server.waitForLog((l) => l.msg === "function loaded" && l.function === "sized");
      const call = async (ms: number, tag: string) => {
        const response = await server.invoke("sized", { ms, tag });
        return { tag, status: response.status, body: await response.json() };
      };
      // Eight long runs, one at a time: the recent runs are all 400 ms.
      for (let i = 0; i < 8; i++) assert.equal((await call(400, `warm${i}`)).status, 200);
      const long = call(400, "long");
      await server.waitForLog((l) => l.msg === "function log" && l.text === "start long");
      // Queued behind it while it runs: expected to answer in about 800 ms, within the 1000 ms limit.
      const answers = await Promise.all([long, call(5, "short1"), call(5, "short2")]);
      assert.deepEqual(answers.map((a) => [a.tag, a.status]), [["long", 200], ["short1", 200], ["short2", 200]]);
      assert.deepEqual(answers.map((a) => a.body), [{ ms: 400 }, { ms: 5 }, { ms: 5 }]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const hanging = (isolation: string) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Answers at once, or never when asked to hang",
  isolation: "${isolation}",
  input: z.object({ hang: z.boolean() }),
  output: z.object({ ok: z.boolean() }),
  instances: 1,
  timeoutMs: 300,
  abortGraceMs: 0,
  handler({ hang }) {
    if (hang) return new Promise<{ ok: boolean }>(() => {});
    return { ok: true };
  },
});
`;

Deno.test("the call after a run that timed out waits for the respawned isolate, not refused by that run's time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-shed-" });
  try {
    for (const isolation of ["worker", "process"]) {
      await Deno.mkdir(join(dir, isolation));
      await Deno.writeTextFile(join(dir, isolation, "mod.ts"), hanging(isolation));
    }
    await using server = await startServer({ functionsDir: dir });
    await server.waitForLog((l) => l.msg === "function loaded" && l.function === "worker");
    await server.waitForLog((l) => l.msg === "function loaded" && l.function === "process");
    for (let round = 0; round < 16; round++) {
      const name = round % 2 ? "process" : "worker";
      const hung = await server.invoke(name, { hang: true });
      await hung.body?.cancel();
      assert.equal(hung.status, 504);
      // The ended run's 300 ms is no run time of the function: the next call was refused 429 by it (bench scenario D's
      // respawn row had no sample). A call may still time out while the isolate restarts on a loaded machine.
      const statuses: number[] = [];
      while (statuses.at(-1) !== 200 && statuses.length < 20) {
        const next = await server.invoke(name, { hang: false });
        await next.body?.cancel();
        statuses.push(next.status);
      }
      assert.deepEqual(statuses.filter((s) => s !== 504), [200], `${name} round ${round}: ${statuses}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
