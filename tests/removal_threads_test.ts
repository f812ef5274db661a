/**
 * Removals under HTTP threads, now that `Registry.remove` tells the threads at once (no 250 ms poll): a DELETE of a
 * function that never served, a DELETE while requests run on it, a DELETE racing its own deploy, and a folder
 * function's folder deleted: each answers, the requests in flight are answered, and no thread serves the function
 * after (every thread answers 404, as the main thread does). Real runtime, real HTTP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, type TestServer } from "./support/server.ts";
import { adminToken, bundleOf, deploy, deployOk } from "./support/bundles.ts";

const identity = `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Identity on FP32, after ms",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 2] }],
  },
  async handler({ x }) {
    if (x.data[0] > 0) {
      console.log("running");
      await new Promise((resolve) => setTimeout(resolve, x.data[0]));
    }
    return { y: x };
  },
});
`;

/** Infers through a fresh connection each time, so that each thread gets its share. */
async function infer(server: TestServer, name: string, ms = 0) {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const response = await fetch(`${server.url}/v2/models/${name}/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [ms, 4] }] }),
      client,
    });
    return { status: response.status, text: await response.text() };
  } finally {
    client.close();
  }
}

function remove(server: TestServer, name: string): Promise<Response> {
  return fetch(`${server.url}/v1/functions/${name}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${adminToken}` },
  });
}

/** Eight requests, over fresh connections: every one is 404 (no thread kept the function). */
async function goneEverywhere(server: TestServer, name: string): Promise<void> {
  const answers = await Promise.all(Array.from({ length: 8 }, () => infer(server, name)));
  assert.deepEqual(answers.map((a) => a.status), Array(8).fill(404), JSON.stringify(answers));
}

Deno.test("removals under HTTP threads answer, and no thread serves a removed function", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-removal-" });
  try {
    await Deno.mkdir(join(dir, "folder"));
    await Deno.writeTextFile(join(dir, "folder", "mod.ts"), identity);
    await using server = await startServer({
      functionsDir: dir,
      watch: true,
      env: { ISOLANE_HTTP_THREADS: "2", ISOLANE_ADMIN_TOKEN: adminToken },
    });
    await server.waitForLog((l) => l.msg === "function loaded" && l.function === "folder");
    // Deployed, never served, deleted.
    await deployOk(server, "never", { "mod.ts": identity });
    assert.deepEqual(await (await remove(server, "never")).json(), { name: "never", deleted: true });
    await goneEverywhere(server, "never");
    // Deleted while four requests run on it: they are answered, and the DELETE answers.
    await deployOk(server, "busy", { "mod.ts": identity });
    assert.equal((await infer(server, "busy")).status, 200);
    const running = Promise.all(Array.from({ length: 4 }, () => infer(server, "busy", 300)));
    await server.waitForLog((l) => l.msg === "function log" && l.function === "busy" && l.text === "running");
    const deleted = await remove(server, "busy");
    assert.deepEqual(await deleted.json(), { name: "busy", deleted: true });
    // The one running finishes (200); those the main thread had not yet taken from a thread's ring when the DELETE
    // came meet it as any request after it does (404), as on e36462f.
    const statuses = (await running).map((a) => a.status);
    assert.ok(statuses.includes(200), JSON.stringify(statuses));
    assert.ok(statuses.every((s) => [200, 404, 503].includes(s)), JSON.stringify(statuses));
    await goneEverywhere(server, "busy");
    // A DELETE racing a deploy of the same name: both answer, and the threads agree with the main thread.
    const bundle = await bundleOf({ "mod.ts": identity });
    const [deployed, raced] = await Promise.all([deploy(server, "raced", bundle), remove(server, "raced")]);
    await deployed.body?.cancel();
    await raced.body?.cancel();
    const main = await fetch(`${server.url}/v1/functions/raced`);
    await main.body?.cancel();
    if (main.status === 404) await goneEverywhere(server, "raced");
    else {
      const answers = await Promise.all(Array.from({ length: 8 }, () => infer(server, "raced")));
      assert.deepEqual(answers.map((a) => a.status), Array(8).fill(200), JSON.stringify(answers));
    }
    // A folder function's folder deleted (watch mode): removed, and gone on every thread.
    assert.equal((await infer(server, "folder")).status, 200);
    await Deno.remove(join(dir, "folder"), { recursive: true });
    await server.waitForLog((l) => l.msg === "function removed" && l.function === "folder");
    await goneEverywhere(server, "folder");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
