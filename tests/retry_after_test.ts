/**
 * `Retry-After` says something true before any batch has finished: a function whose first request is still running
 * has no service time yet, so the pool takes the longest-running batch's age as the least a batch takes. Before, such
 * a refusal always said 1 s. Real runtime, real HTTP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { errorOf, startServer, until } from "./support/server.ts";

const sdk = fileURLToPath(new URL("../src/sdk.ts", import.meta.url));

const source = `import { defineFunction, z } from "${sdk}";
export default defineFunction({
  description: "Waits ms, and says so once it has run 1.5 s",
  input: z.object({ ms: z.number().int().min(0) }),
  output: z.object({ ms: z.number() }),
  instances: 1,
  queueDepth: 1,
  timeoutMs: 60_000,
  async handler({ ms }) {
    const tick = ms > 1500 ? setTimeout(() => console.log("running for 1.5 s"), 1500) : undefined;
    await new Promise((resolve) => setTimeout(resolve, ms));
    clearTimeout(tick);
    return { ms };
  },
});
`;

Deno.test("Retry-After before the first batch has finished counts the running batch's age", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-retry-after-" });
  try {
    await Deno.mkdir(join(dir, "slow"));
    await Deno.writeTextFile(join(dir, "slow", "mod.ts"), source);
    await using server = await startServer({ functionsDir: dir });
    const first = server.invoke("slow", { ms: 4000 });
    await server.waitForLog((l) => l.msg === "function log" && l.text === "running for 1.5 s");
    const waiting = server.invoke("slow", { ms: 10 });
    await until(server, "slow", (info) => info.queued === 1);
    // The queue is full (queueDepth 1): refused. Ahead of it, two runs of at least 1.5 s each on one isolate.
    const refused = await server.invoke("slow", { ms: 10 });
    const retryAfter = Number(refused.headers.get("retry-after"));
    const e = await errorOf(refused);
    assert.deepEqual([e.status, e.code], [429, "queue_full"]);
    assert.ok(retryAfter >= 3, `Retry-After ${retryAfter}`);
    assert.equal((await first).status, 200);
    assert.equal((await waiting).status, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Retry-After is at most timeoutMs: by then every request waiting has been answered or timed out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-retry-after-" });
  try {
    await Deno.mkdir(join(dir, "slow"));
    await Deno.writeTextFile(
      join(dir, "slow", "mod.ts"),
      source.replace("queueDepth: 1,", "queueDepth: 100,").replace("timeoutMs: 60_000,", "timeoutMs: 2_000,"),
    );
    await using server = await startServer({ functionsDir: dir });
    // A run of 1.5 s sets the service time; two of them ahead of a new request make an expected wait of 3 s.
    assert.equal((await server.invoke("slow", { ms: 1500 })).status, 200);
    const running = server.invoke("slow", { ms: 1500 });
    await until(server, "slow", (info) => info.isolates[0].status === "busy");
    const waiting = server.invoke("slow", { ms: 10 });
    await until(server, "slow", (info) => info.queued === 1);
    const refused = await server.invoke("slow", { ms: 10 });
    const e = await errorOf(refused);
    assert.deepEqual([e.status, e.code], [429, "queue_full"]);
    assert.match(e.message, /past its 2000 ms limit/);
    assert.equal(refused.headers.get("retry-after"), "2");
    assert.equal((await running).status, 200);
    assert.equal((await waiting).status, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a request that timed out is no run time: Retry-After after it goes by the runs that finished", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-retry-after-" });
  try {
    await Deno.mkdir(join(dir, "slow"));
    await Deno.writeTextFile(join(dir, "slow", "mod.ts"), source.replace("timeoutMs: 60_000,", "timeoutMs: 3_000,"));
    await using server = await startServer({ functionsDir: dir });
    // One run hangs past timeoutMs (its isolate is ended and started again); the runs after it take about 10 ms.
    const hung = await errorOf(await server.invoke("slow", { ms: 600_000 }));
    assert.deepEqual([hung.status, hung.code], [504, "timeout"]);
    for (let i = 0; i < 2; i++) assert.equal((await server.invoke("slow", { ms: 10 })).status, 200);
    // One runs, one waits (queueDepth 1): the next is refused, with a Retry-After for two runs of about 10 ms ahead.
    // The 3 s the hung run was given counted as a run time: the estimate said 3 s (and refused past timeoutMs).
    const running = server.invoke("slow", { ms: 1000 });
    await until(server, "slow", (info) => info.isolates[0].status === "busy");
    const waiting = server.invoke("slow", { ms: 10 });
    await until(server, "slow", (info) => info.queued === 1);
    const refused = await server.invoke("slow", { ms: 10 });
    const retryAfter = refused.headers.get("retry-after");
    const e = await errorOf(refused);
    assert.deepEqual([e.status, e.code], [429, "queue_full"]);
    assert.match(e.message, /has 1 requests waiting, its limit/);
    assert.equal(retryAfter, "1");
    assert.equal((await running).status, 200);
    assert.equal((await waiting).status, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
