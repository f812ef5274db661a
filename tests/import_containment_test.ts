/**
 * A module that allocates without bound while it is imported: the runtime reads every module's manifest before it
 * serves it, and read in a Worker, such a module ran the Worker out of heap, which aborts the whole runtime (Deno
 * 2.9.6: "Fatal JavaScript out of memory"). On CPU lanes the manifest is read in a child process: the deploy gets 422,
 * and every other function keeps answering.
 */
import assert from "node:assert/strict";
import { errorOf, startServer, type TestServer } from "./support/server.ts";
import { adminToken, bundleOf, deploy, echoModule } from "./support/bundles.ts";

/** Top-level code that keeps what it allocates: JS arrays (the heap) or ArrayBuffers (outside it). */
function runaway(kind: "heap" | "buffers"): string {
  const grow = kind === "heap"
    ? "for (;;) kept.push(new Array(1_000_000).fill(1.5));"
    : "for (let i = 0; ; i++) { kept.push(new Uint8Array(64 * 2 ** 20).fill(1)); if (i % 4 === 0) await new Promise((r) => setTimeout(r, 1)); }";
  return `const kept: unknown[] = [];\n${grow}\n${echoModule}`;
}

/** Calls echo until `done` settles; counts answers that were not 200 (a dead runtime fails them all). */
async function keepCalling(server: TestServer, done: Promise<unknown>): Promise<{ ok: number; failed: number }> {
  let settled = false;
  const settle = () => void (settled = true);
  done.then(settle, settle);
  const tally = { ok: 0, failed: 0 };
  while (!settled) {
    const status = await server.invoke("echo", { message: "alive" }).then(async (r) => {
      await r.body?.cancel();
      return r.status;
    }, () => 0);
    status === 200 ? tally.ok++ : tally.failed++;
  }
  return tally;
}

Deno.test("a module that allocates without bound at import is refused (422); the runtime and other functions go on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-import-" });
  try {
    await Deno.mkdir(`${dir}/echo`);
    await Deno.writeTextFile(`${dir}/echo/mod.ts`, echoModule);
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_ADMIN_TOKEN: adminToken } });
    for (const kind of ["heap", "buffers"] as const) {
      const deployed = deploy(server, `hog-${kind}`, await bundleOf({ "mod.ts": runaway(kind) }));
      const tally = await keepCalling(server, deployed);
      const e = await errorOf(await deployed);
      assert.equal(e.status, 422, `${kind}: ${e.message}`);
      assert.equal(e.code, "invalid_bundle");
      assert.match(e.message, /exceeded its memory limit of 2048 MB/, kind);
      assert.equal(tally.failed, 0, `${kind}: echo failed ${tally.failed} times while the module was read`);
      assert.ok(tally.ok > 0, kind);
      assert.equal((await errorOf(await server.invoke(`hog-${kind}`, {}))).status, 404, kind);
    }
    // The runtime is the same process, still serving, and a good deploy goes through.
    assert.deepEqual(await (await server.invoke("echo", { message: "after" })).json(), { message: "after" });
    const good = await deploy(server, "good", await bundleOf({ "mod.ts": echoModule }));
    assert.equal(good.status, 201, await good.text());
    assert.deepEqual(await (await server.invoke("good", { message: "hi" })).json(), { message: "hi" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
