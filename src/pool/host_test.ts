import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { WorkerHost } from "./worker_host.ts";
import { cpuServeSpec } from "../../tests/support/serve_spec.ts";
import { IsolaneError } from "../errors.ts";
import type { JobResult } from "../protocol.ts";

/** A Worker host serving an echo function (a real isolate), in a temporary folder. */
async function echoHost(): Promise<{ host: WorkerHost; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-host-test-" });
  await Deno.writeTextFile(
    `${dir}/mod.ts`,
    `import { defineFunction, z } from "${fileURLToPath(new URL("../sdk.ts", import.meta.url))}";
export default defineFunction({
  description: "Echoes a message, or waits for ever on 'hang'",
  input: z.object({ message: z.string() }),
  output: z.object({ message: z.string() }),
  handler: async ({ message }) => {
    if (message === "hang") await new Promise(() => {});
    return { message };
  },
});
`,
  );
  const spec = cpuServeSpec(dir, "echo", "echo");
  return { host: await WorkerHost.start(spec), dir };
}

const encode = (message: string) => new TextEncoder().encode(JSON.stringify({ message })).buffer;
const decode = (result: JobResult) => result.ok ? JSON.parse(new TextDecoder().decode(result.body)).message : null;

Deno.test("runEach: each job's result once, with its index, after runEach returns; a host that ends answers the rest", async () => {
  const { host, dir } = await echoHost();
  try {
    const seen: { index: number; id: number; message: string | null; code?: string }[] = [];
    let returned = false;
    let early = 0;
    const all = Promise.withResolvers<void>();
    host.runEach(
      [{ id: 101, body: encode("a") }, { id: 102, body: encode("b") }, { id: 103, body: encode("c") }],
      (result, index) => {
        if (!returned) early++;
        seen.push({ index, id: result.id, message: decode(result) });
        if (seen.length === 3) all.resolve();
      },
    );
    returned = true;
    await all.promise;
    assert.equal(early, 0, "no result before runEach returned");
    seen.sort((x, y) => x.index - y.index);
    assert.deepEqual(seen, [
      { index: 0, id: 101, message: "a" },
      { index: 1, id: 102, message: "b" },
      { index: 2, id: 103, message: "c" },
    ]);
    assert.equal(host.inflight, 0);
    assert.equal(host.served, 3);

    // A job still running when the host is terminated gets the error; the listener may run more jobs meanwhile.
    const ended = Promise.withResolvers<{ result: JobResult; index: number; inflight: number }>();
    host.runEach([{ id: 201, body: encode("hang") }], (result, index) => {
      ended.resolve({ result, index, inflight: host.inflight });
    });
    assert.equal(host.holds(201), true);
    host.terminate(new IsolaneError("timeout", "stuck"));
    const { result, index, inflight } = await ended.promise;
    assert.equal(index, 0);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.error.code, "timeout");
    assert.equal(inflight, 0, "the host holds nothing once its jobs are answered");
    assert.equal(host.holds(201), false);

    // A dead host answers every job with an error, but never before runEach returns.
    const dead: { index: number; code: string }[] = [];
    const both = Promise.withResolvers<void>();
    let deadReturned = false;
    let deadEarly = 0;
    host.runEach([{ id: 301, body: encode("x") }, { id: 302, body: encode("y") }], (r, i) => {
      if (!deadReturned) deadEarly++;
      dead.push({ index: i, code: r.ok ? "ok" : r.error.code });
      if (dead.length === 2) both.resolve();
    });
    deadReturned = true;
    await both.promise;
    assert.equal(deadEarly, 0);
    assert.deepEqual(dead, [{ index: 0, code: "isolate_crashed" }, { index: 1, code: "isolate_crashed" }]);
  } finally {
    host.terminate(new IsolaneError("function_unavailable", "test over"));
    await Deno.remove(dir, { recursive: true });
  }
});
