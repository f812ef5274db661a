/**
 * Cancelling a model run on a CPU lane (issue 13): a run still in flight when
 * its request aborts (past its deadline, or its client gone) is stopped by
 * ONNX Runtime (`RunOptionsSetTerminate` on that run's own run options,
 * through the C API), the job is answered and the isolate serves on: no
 * respawn, no model reload. On both hosts. The model is a `Loop` of identity
 * MatMuls whose length the request chooses, so one run can last minutes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { errorOf, startServer, type TestServer, until } from "./support/server.ts";
import { loopMatMulModel } from "../native/ort/test_models.ts";

const timeoutMs = 300;
const abortGraceMs = 5000;
/** Iterations of the long run: about 5 µs each on this 2-core machine, so some 15 minutes. */
const longRun = 200_000_000;

function loopFunction(options: { isolation: "worker" | "process"; timeoutMs: number }): string {
  return `import { defineFunction, Tensor, z } from "isolane";
export default defineFunction({
  description: "Multiplies a row by the identity n times, in one model run",
  input: z.object({ n: z.number().int().min(0) }),
  output: z.object({ y0: z.number(), runMs: z.number() }),
  models: { loop: "loop.onnx" },
  isolation: "${options.isolation}",
  timeoutMs: ${options.timeoutMs},
  abortGraceMs: ${abortGraceMs},
  async handler({ n }, { models }) {
    const x = new Tensor("float32", Float32Array.from({ length: 256 }, (_, i) => i + 1), [1, 256]);
    const started = performance.now();
    const { y } = await models.loop.run({ n: new Tensor("int64", BigInt64Array.of(BigInt(n)), []), x });
    return { y0: (y.data as Float32Array)[0], runMs: performance.now() - started };
  },
});
`;
}

async function functionsDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-cancel-" });
  const model = loopMatMulModel(256);
  const functions = {
    loop_worker: loopFunction({ isolation: "worker", timeoutMs }),
    loop_process: loopFunction({ isolation: "process", timeoutMs }),
    loop_patient: loopFunction({ isolation: "process", timeoutMs: 120_000 }),
  };
  for (const [name, source] of Object.entries(functions)) {
    await Deno.mkdir(join(dir, name));
    await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
    await Deno.writeFile(join(dir, name, "loop.onnx"), model);
  }
  return dir;
}

// deno-lint-ignore no-explicit-any
async function isolateOf(server: TestServer, name: string): Promise<any> {
  const info = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
  assert.equal(info.models[0].api, "c", "the model runs through the C API");
  return info.isolates[0];
}

/** The time one loop iteration takes here, in ms, from a short run that fits the deadline. */
async function msPerIteration(server: TestServer, name: string): Promise<number> {
  const n = 2000;
  const response = await server.invoke(name, { n });
  assert.equal(response.status, 200);
  const { y0, runMs } = await response.json();
  assert.equal(y0, 1, "the identity keeps the row");
  return runMs / n;
}

function terminatedLine(server: TestServer, name: string, requestId: string) {
  return server.waitForLog((l) =>
    l.msg === "run terminated" && l.function === name && (l.requests as string[] | undefined)?.includes(requestId) ===
      true
  );
}

Deno.test("run cancel: a CPU run past its deadline is stopped by ORT and its isolate kept, on both hosts", async () => {
  const dir = await functionsDir();
  try {
    await using server = await startServer({ functionsDir: dir });
    for (const [name, isolation] of [["loop_worker", "worker"], ["loop_process", "process"]] as const) {
      const before = await isolateOf(server, name);
      assert.equal(before.isolation, isolation);
      const wouldTakeMs = (await msPerIteration(server, name)) * longRun;

      const started = performance.now();
      const long = await server.invoke(name, { n: longRun });
      const answeredMs = performance.now() - started;
      const e = await errorOf(long);
      assert.equal(e.status, 504);
      assert.equal(e.code, "timeout");
      assert.ok(
        answeredMs < timeoutMs + 2000,
        `504 after ${Math.round(answeredMs)} ms, near the ${timeoutMs} ms deadline`,
      );

      // The isolate is free again as soon as ORT has stopped: the next request is served long before the long run
      // would have ended (it would have waited for it, and got 504 itself).
      const next = await server.invoke(name, { n: 10 });
      const nextMs = performance.now() - started;
      assert.equal(next.status, 200, `the next request got ${next.status}`);
      assert.equal((await next.json()).y0, 1);
      assert.ok(nextMs < wouldTakeMs / 10, `next answer after ${nextMs} ms; the long run would take ${wouldTakeMs} ms`);

      // ORT's terminate error, surfaced by the isolate with the job it served.
      const line = await terminatedLine(server, name, long.headers.get("x-request-id")!);
      assert.equal(line.model, "loop");
      assert.equal((line.jobs as number[]).length, 1);
      assert.ok((line.ms as number) < wouldTakeMs, `the run stopped after ${line.ms} ms`);

      // Past the grace the isolate is still the same one: not ended, not respawned, model not reloaded.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, timeoutMs + abortGraceMs + 300 - nextMs)));
      const after = await isolateOf(server, name);
      assert.equal(after.id, before.id);
      assert.equal(after.pid, before.pid);
      assert.equal(after.restarts, 0);
      assert.ok(!server.logs.some((l) => l.msg === "isolate stopped" && l.function === name));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run cancel: a CPU run whose client goes away is stopped by ORT; the isolate serves on", async () => {
  const dir = await functionsDir();
  try {
    await using server = await startServer({ functionsDir: dir });
    const name = "loop_patient";
    const before = await isolateOf(server, name);
    const client = new AbortController();
    const long = server.invoke(name, { n: longRun }, { signal: client.signal }).catch((error) => error);
    // The run is in flight once the isolate is busy.
    await until(server, name, (info) => info.isolates[0].status === "busy");
    client.abort();
    assert.ok((await long) instanceof Error);
    const line = await server.waitForLog((l) => l.msg === "run terminated" && l.function === name, 10_000);
    assert.equal(line.model, "loop");
    const next = await server.invoke(name, { n: 10 });
    assert.equal(next.status, 200);
    const after = await isolateOf(server, name);
    assert.equal(after.id, before.id);
    assert.equal(after.pid, before.pid);
    assert.equal(after.restarts, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
