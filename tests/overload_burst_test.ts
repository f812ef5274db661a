/**
 * A burst at a function with no run-time history yet (just loaded: no batch has finished) is answered 200 or 429 with
 * a `Retry-After` within `timeoutMs`, never 504: the pool admitted the whole burst before it knew how long a run takes,
 * and all but the first few waited out the deadline for a 504. Now each queued request that a finished batch shows
 * cannot finish in time is refused at once. A burst that a warm isolate serves in time is not refused. Real runtime,
 * real HTTP, with and without HTTP threads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { errorOf, startServer, type TestServer } from "./support/server.ts";

const source = (timeoutMs: number) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Waits ms",
  input: z.object({ ms: z.number().int().min(0) }),
  output: z.object({ ms: z.number() }),
  instances: 1,
  timeoutMs: ${timeoutMs},
  async handler({ ms }) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { ms };
  },
});
`;

/** Sends `n` requests at once; resolves with each one's status, code (errors) and `Retry-After`. */
function burst(server: TestServer, name: string, ms: number, n: number) {
  return Promise.all(Array.from({ length: n }, async () => {
    const response = await server.invoke(name, { ms });
    const retryAfter = response.headers.get("retry-after");
    if (response.status === 200) {
      assert.deepEqual(await response.json(), { ms });
      return { status: 200, code: "", retryAfter };
    }
    const e = await errorOf(response);
    return { status: e.status, code: e.code, retryAfter };
  }));
}

for (const threads of [undefined, "2"]) {
  const how = threads ? "with HTTP threads" : "without HTTP threads";
  Deno.test(`a burst at a function with no run-time history gets 200 or 429, never 504 (${how})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-burst-" });
    try {
      await Deno.mkdir(join(dir, "slow"));
      await Deno.writeTextFile(join(dir, "slow", "mod.ts"), source(2000));
      await Deno.mkdir(join(dir, "fast"));
      await Deno.writeTextFile(join(dir, "fast", "mod.ts"), source(30_000));
      await using server = await startServer({
        functionsDir: dir,
        env: threads ? { ISOLANE_HTTP_THREADS: threads } : {},
      });
      await server.waitForLog((l) => l.msg === "function loaded" && l.function === "slow");
      await server.waitForLog((l) => l.msg === "function loaded" && l.function === "fast");
      // One isolate, 300 ms a run, 2 s to answer: about 6 of 200 can be served.
      const slow = await burst(server, "slow", 300, 200);
      const tally: Record<string, number> = {};
      for (const r of slow) tally[`${r.status} ${r.code}`] = (tally[`${r.status} ${r.code}`] ?? 0) + 1;
      assert.equal(tally["504 timeout"], undefined, JSON.stringify(tally));
      assert.deepEqual(Object.keys(tally).sort(), ["200 ", "429 queue_full"], JSON.stringify(tally));
      assert.ok(tally["200 "] >= 3 && tally["200 "] <= 7, JSON.stringify(tally));
      for (const r of slow.filter((r) => r.status === 429)) {
        // By 2 s every request waiting now has been answered: a longer wait is never true.
        assert.ok(["1", "2"].includes(r.retryAfter ?? ""), `Retry-After ${r.retryAfter}`);
      }
      // Each of 200 requests of 5 ms a run is served within 30 s: none is refused.
      const fast = await burst(server, "fast", 5, 200);
      assert.deepEqual(fast.filter((r) => r.status !== 200), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
