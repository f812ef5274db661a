/**
 * Metrics are counted within 10 ms, off the request's path (`src/server/metrics.ts`); the HTTP threads keep theirs up
 * to 25 ms more. Every reader must count them first: `/metrics`, the status page's last minute (`/?part=status`) and
 * its series (`/status/series`), read at once after the last answer of a burst, must count exactly what the clients
 * saw. With no HTTP threads (the direct path and Hono) and with two. Real runtime, real HTTP.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "./support/server.ts";

const functionsDir = fileURLToPath(new URL("./fixtures/functions", import.meta.url));

/** A burst of `n` good and `n` refused (400) invocations of `echo`, all at once; resolves once all are answered. */
async function burst(server: TestServer, n: number): Promise<void> {
  const answers = await Promise.all(
    Array.from({ length: 2 * n }, async (_, i) => {
      const response = await fetch(`${server.url}/v1/functions/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ message: i % 2 === 0 ? `hi ${i}` : i }),
      });
      await response.body?.cancel();
      return response.status;
    }),
  );
  assert.equal(answers.filter((s) => s === 200).length, n);
  assert.equal(answers.filter((s) => s === 400).length, n);
}

/** What each reader counts for `echo`: the series' 4xx, the status page's last minute, `/metrics` by status. */
async function counted(server: TestServer) {
  const series = await (await fetch(`${server.url}/status/series`)).json();
  const errors4xx = (series.functions.echo?.errors4xx as number[] | undefined ?? []).reduce((a, b) => a + b, 0);
  const page = await (await fetch(`${server.url}/?part=status`)).text();
  const row = page.slice(page.indexOf('data-function="echo"'));
  const lastMinute = Number(row.match(/data-requests="(\d+)"/)?.[1]);
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const total = (status: number) =>
    Number(
      text.split("\n").find((l) => l.startsWith(`isolane_requests_total{function="echo",status="${status}"}`))
        ?.split(" ").at(-1) ?? 0,
    );
  return { errors4xx, lastMinute, ok: total(200), refused: total(400) };
}

for (const threads of ["0", "2"]) {
  Deno.test(`metrics read at once after a burst count every answer (HTTP threads: ${threads})`, async () => {
    await using server = await startServer({ functionsDir, env: { ISOLANE_HTTP_THREADS: threads } });
    let expected = { errors4xx: 0, lastMinute: 0, ok: 0, refused: 0 };
    for (const n of [1, 24, 3]) {
      await burst(server, n);
      expected = {
        errors4xx: expected.errors4xx + n,
        lastMinute: expected.lastMinute + 2 * n,
        ok: expected.ok + n,
        refused: expected.refused + n,
      };
      assert.deepEqual(await counted(server), expected);
    }
  });
}
