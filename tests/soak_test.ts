/**
 * The fault soak's short form (about 2,000 requests; `deno task soak --short`):
 * a real runtime under healthy calls, faults, bad bodies and deploys. It
 * asserts the invariants, not speeds: the healthy p99 rule of issue 13 is
 * reported by `deno task soak`, not asserted here.
 */
import assert from "node:assert/strict";
import { renderMarkdown, runSoak, shortForm, shortFormBounds, violations } from "../scripts/soak.ts";

/**
 * How far the resident memory of the runtime and its child processes may be
 * above its baseline once every function is ready again, in MiB.
 *
 * What is not a leak but stays: V8 keeps heap pages after a burst of garbage
 * until its memory reducer runs (about 15 s of idle here), and the soak
 * measures after a few seconds. Measured on this machine (2 cores, shared):
 * mlp's host +40–55 MiB after the deep-nesting fuzz bodies it parses, the
 * runtime +20–35 MiB, other hosts +0–5 MiB each; +7 to +101 MiB in all
 * over six short runs, +33 MiB when left idle 20 s. What the bound must
 * catch: issue 13 measured leaks of 47–90 MB per timeout respawn, unload or
 * redeploy, and the short form respawns or activates about 15 hosts, so a
 * leak of a tenth of that per respawn already passes 128 MiB.
 */
const memoryBoundMb = shortFormBounds.overBaselineMb;

Deno.test("soak (short form): one documented response each, no hang, every function back, memory back", async () => {
  const report = await runSoak({ ...shortForm, progress: (line) => console.log(`[soak] ${line}`) });
  console.log(renderMarkdown(report));
  const inv = report.invariants;
  assert.ok(report.requests >= 2000, `${report.requests} requests`);
  assert.deepEqual(violations(report, shortFormBounds), [], JSON.stringify(report.samples, null, 2));
  assert.equal(inv.answered, report.requests);
  assert.equal(inv.hangs + inv.lost + inv.undocumented, 0);
  assert.equal(inv.serverLogMissing + inv.serverLogDuplicate + inv.serverLogStatusMismatch, 0);
  assert.ok(inv.allReady, inv.notReady.join(", "));
  assert.equal(report.memory.processesAfter, report.memory.processesBaseline);
  assert.ok(report.memory.deltaMb <= memoryBoundMb, `memory grew by ${report.memory.deltaMb.toFixed(1)} MiB`);

  // The faults really happened, each answered as documented.
  const seen = (kind: string, status: number, code?: string) =>
    report.counts.filter((c) => c.kind === kind && c.status === status && (code === undefined || c.code === code))
      .reduce((n, c) => n + c.n, 0);
  assert.ok(seen("throw", 500, "handler_error") > 0);
  assert.ok(seen("bad_output", 500, "invalid_output") > 0);
  assert.ok(seen("crash", 500, "isolate_crashed") > 0);
  assert.ok(seen("hog", 500, "isolate_crashed") > 0);
  assert.ok(seen("hang", 504, "timeout") + seen("spin", 504, "timeout") > 0);
  assert.ok(seen("truncated", 400) > 0 && seen("cut_body", 400) > 0 && seen("fuzzed", 400) > 0);
  assert.ok(seen("oversized", 413, "body_too_large") > 0);
  assert.ok(seen("deploy", 201) > 0 && seen("rollback", 200) > 0 && seen("deploy_bad", 422) > 0);
  assert.ok(seen("mlp_ok", 200) > 0 && seen("ocr_ok", 200) > 0);
  // Crashes and runaways respawned their hosts, and those hosts serve again (allReady above).
  for (const fn of ["crash", "hog"]) assert.ok((report.restarts.byFunction[fn] ?? 0) > 0, `${fn} never restarted`);
  // Bad input never got a 500.
  for (const kind of ["malformed", "wrong_schema", "truncated", "cut_body", "oversized", "wrong_type", "fuzzed"]) {
    assert.equal(report.counts.filter((c) => c.kind === kind && c.status >= 500).length, 0, kind);
  }
});
