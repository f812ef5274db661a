/**
 * The benchmark suite in its quickest form, for correctness only (no timing assertion): wrk's Lua reporter counts
 * answers by status against a server whose answers the test knows, and a run of scenarios A and D against the real
 * runtime writes a report whose structure, counts and ratios hold together. Skipped, saying so, without `wrk`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { findWrk, runLoad } from "../bench/wrk.ts";
import { parseSuiteArgs, type Report, runSuite } from "../bench/suite.ts";
import { startChild } from "../bench/child.ts";
import { fileURLToPath } from "node:url";

const wrk = await findWrk();
if (!wrk) console.log("Bench smoke test skipped: wrk not found (apt-get install wrk)");

Deno.test({
  name: "bench: wrk's reporter counts answers by status, 429s apart, and stops at the request bound",
  ignore: !wrk,
  fn: async () => {
    let served = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
      const body = await request.text();
      served++;
      // Every third answer is a 429; a body that is not the one sent is a 400, so the count of 200s proves it arrived.
      if (served % 3 === 0) return new Response("busy", { status: 429 });
      return new Response("ok", { status: body === '{"probe":1}' ? 200 : 400 });
    });
    const dir = await Deno.makeTempDir();
    try {
      const bodyFile = join(dir, "body.json");
      await Deno.writeTextFile(bodyFile, '{"probe":1}');
      const result = await runLoad(wrk!, {
        url: `http://127.0.0.1:${server.addr.port}/`,
        bodyFile,
        connections: 2,
        durationS: 30,
        maxRequests: 600,
      });
      const total = Object.values(result.statuses).reduce((a, b) => a + b, 0);
      assert.equal(result.requests, total, "every answer is counted under its status");
      // At the stop, each connection may have had one request served whose answer wrk no longer read.
      assert.ok(
        served - result.requests >= 0 && served - result.requests <= 2,
        `${served} served, ${result.requests} read`,
      );
      assert.ok(result.requests >= 600, `the run reached its bound of 600 answers (${result.requests})`);
      assert.ok(result.seconds < 30, `the request bound ended the run before its time bound (${result.seconds} s)`);
      assert.deepEqual(Object.keys(result.statuses).sort(), ["200", "429"]);
      assert.equal(result.status429, result.statuses["429"]);
      assert.equal(result.errors, result.statuses["429"], "429s are errors; no socket errors");
      assert.ok(Math.abs(result.goodput * result.seconds - result.statuses["200"]) < 1);
      assert.ok(result.p50Us > 0 && result.p50Us <= result.p90Us && result.p90Us <= result.p99Us);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "bench: a quick run of scenarios A and D writes a consistent report (JSON, Markdown, SVG)",
  ignore: !wrk,
  fn: async () => {
    const out = await Deno.makeTempDir();
    try {
      const options = parseSuiteArgs([
        "--quick",
        "--scenarios",
        "A,D",
        "--levels",
        "1,2",
        "--max-requests",
        "400",
        "--repeats",
        "1",
        "--out",
        out,
      ]);
      const { report, markdown, files } = await runSuite({ ...options, log: () => {} });
      assert.deepEqual(files.map((f) => f.slice(out.length + 1).replace(/^.*\./, "")), ["json", "md", "svg"]);
      const written: Report = JSON.parse(await Deno.readTextFile(files[0]));
      assert.deepEqual(written, JSON.parse(JSON.stringify(report)));
      assert.equal(await Deno.readTextFile(files[1]), markdown);
      const svg = await Deno.readTextFile(files[2]);
      assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assert.match(svg, /isolane echo/, "the chart's legend names the systems");

      assert.deepEqual(report.scenarios.map((s) => s.id), ["A", "D"]);
      const [a, d] = report.scenarios;
      assert.deepEqual(a.series.map((s) => s.key), ["hono:echo", "floor:echo", "isolane:echo"]);
      for (const s of a.series) {
        assert.deepEqual(s.points.map((p) => p.connections), [1, 2]);
        for (const p of s.points) {
          assert.ok(p.requests > 0 && p.rps > 0, `${s.key} c=${p.connections} answered`);
          assert.equal(p.statuses["200"], p.requests, `${s.key} c=${p.connections}: every answer a 200`);
          assert.equal(p.errors, 0);
        }
      }
      const [hono, floor, isolane] = a.series;
      for (const [i, p] of [...isolane.points, ...floor.points].entries()) {
        assert.equal(p.ratio, p.goodput / hono.points[i % 2].goodput);
        assert.equal(p.p50Ratio, p.p50Us / hono.points[i % 2].p50Us);
      }
      assert.equal(hono.points[0].ratio, null, "the baseline has no ratio");

      assert.deepEqual(d.timings.map((t) => t.key), [
        "cold-start:mlp",
        "deploy-ready:mlp",
        "respawn",
        "cold-start:mlp:process",
        "deploy-ready:mlp:process",
        "respawn:process",
      ]);
      for (const t of d.timings) {
        assert.equal(t.samplesMs.length, 1);
        assert.ok(t.medianMs! > 0);
      }
      const cold = d.timings[0].medianMs!, ready = d.timings[1].medianMs!;
      assert.ok(cold >= ready, "the first answer comes after the deploy's own answer");

      const byId = Object.fromEntries(report.targets.map((t) => [t.id, t]));
      const sequential = isolane.points[0].p50Us / hono.points[0].p50Us;
      assert.equal(byId["sequential-echo"].met, sequential <= 2.5);
      assert.match(byId["sequential-echo"].figures, new RegExp(`^${sequential.toFixed(2)}×`));
      const floorRatio = (floor.points[0].p50Us / hono.points[0].p50Us).toFixed(2);
      assert.match(
        byId["sequential-echo"].figures,
        new RegExp(`the floor of the design \\(hop_floor.ts\\) ${floorRatio}×$`),
      );
      assert.equal(byId["cold-start"].met, cold <= 120);
      assert.equal(byId["respawn"].met, d.timings[2].medianMs! <= 100);
      assert.equal(byId["wide-c1-latency"].met, null, "scenario B did not run");

      assert.match(markdown, /^# isolane benchmarks/);
      assert.match(markdown, /## A\. Echo through isolates vs\. plain Hono\n\n\| system +\| c +\| rps +\| 2xx\/s +\|/);
      assert.match(markdown, /## Targets of issues 14 and 17/);
      assert.equal(
        markdown.match(/^\| isolane echo [^|]*\| [12] +\| /gm)?.length,
        2,
        "one table row per measured point",
      );
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("the binary echo baseline answers each thread's requests with the body's exact bytes", async () => {
  await using child = await startChild({
    entry: fileURLToPath(new URL("../bench/baselines/hono_binary_echo.ts", import.meta.url)),
    env: { BENCH_THREADS: "3" },
  });
  // reusePort spreads connections over the threads; each fresh connection may land on any of them.
  for (let i = 0; i < 12; i++) {
    const body = crypto.getRandomValues(new Uint8Array(4096 + i));
    const res = await fetch(`${child.url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", connection: "close" },
      body,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/octet-stream");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), body);
  }
});
