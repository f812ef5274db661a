/**
 * Short CPU runs go inline (on the isolate's thread, where a deadline cannot stop them) only for models whose run
 * time follows their input shapes. A model can hide what its run does in a model-local function
 * (`ModelProto.functions`): its main graph shows one node named like a fixed-cost operator, in a domain of its own,
 * while the function's body is a `Loop` whose count a request's float input sets. After many short runs of the same
 * input dimensions, a long one must still reach ORT's blocking pool: stopped at its deadline (504), the isolate kept.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { errorOf, startServer, type TestServer } from "./support/server.ts";
import { localFunctionLoopModel } from "../native/ort/test_models.ts";

const timeoutMs = 1000;
const abortGraceMs = 2000;
/** Loop iterations of the long run: some 2.5 µs each on the 2-core dev VM, so about 25 s when nothing stops it. */
const longRun = 10_000_000;

const source = `import { defineFunction, Tensor, z } from "isolane";
export default defineFunction({
  description: "Multiplies a row by the identity n times, in one run of a model that hides its Loop in a function",
  input: z.object({ n: z.number().int().min(0) }),
  output: z.object({ y0: z.number() }),
  models: { hidden: "hidden.onnx" },
  isolation: "process",
  timeoutMs: ${timeoutMs},
  abortGraceMs: ${abortGraceMs},
  async handler({ n }, { models }) {
    const x = new Tensor("float32", Float32Array.from({ length: 128 }, (_, i) => i + 1), [1, 128]);
    const { y } = await models.hidden.run({ x, count: new Tensor("float32", Float32Array.of(n), [1]) });
    return { y0: (y.data as Float32Array)[0] };
  },
});
`;

// deno-lint-ignore no-explicit-any
async function isolateOf(server: TestServer, name: string): Promise<any> {
  const info = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
  assert.equal(info.models[0].api, "c", "the model runs through the C API");
  return info.isolates[0];
}

Deno.test("inline runs: a model-local function's Loop is not run inline; its long run stops at the deadline", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-inline-hidden-" });
  try {
    await Deno.mkdir(join(dir, "hidden"));
    await Deno.writeTextFile(join(dir, "hidden", "mod.ts"), source);
    await Deno.writeFile(join(dir, "hidden", "hidden.onnx"), localFunctionLoopModel());
    await using server = await startServer({ functionsDir: dir });
    const before = await isolateOf(server, "hidden");
    // Short runs of the same input dimensions: more than the window of runs the inline rule looks back on.
    for (let i = 0; i < 24; i++) {
      const short = await server.invoke("hidden", { n: 1 });
      assert.equal(short.status, 200);
      assert.equal((await short.json()).y0, 1);
    }
    const long = await server.invoke("hidden", { n: longRun });
    const e = await errorOf(long);
    assert.equal(e.status, 504);
    assert.equal(e.code, "timeout");
    // ORT stops the run (its terminate flag, read before each node of each iteration) and says so; a run on the
    // isolate's thread cannot be stopped, and its process is ended past the grace instead.
    const requestId = long.headers.get("x-request-id")!;
    const line = await server.waitForLog((l) =>
      l.function === "hidden" && (l.msg === "isolate stopped" ||
        (l.msg === "run terminated" && (l.requests as string[] | undefined)?.includes(requestId) === true))
    );
    assert.equal(line.msg, "run terminated", `${line.msg}: ${line.reason}`);
    const next = await server.invoke("hidden", { n: 2 });
    assert.equal(next.status, 200, `the next request got ${next.status}`);
    assert.equal((await next.json()).y0, 1);
    // Past the grace the isolate is the same one: a run on its thread would have been ended with its process.
    await new Promise((resolve) => setTimeout(resolve, abortGraceMs + 500));
    const after = await isolateOf(server, "hidden");
    assert.equal(after.pid, before.pid);
    assert.equal(after.restarts, 0);
    assert.ok(!server.logs.some((l) => l.msg === "isolate stopped" && l.function === "hidden"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
