/**
 * What a new user runs into when writing functions from the README: each mistake gets a documented status and a
 * message that says what to do, the isolate and the other functions keep serving.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { adminToken, bundleOf, deploy } from "./support/bundles.ts";
import { errorOf, startServer, until } from "./support/server.ts";

const fixtures = fileURLToPath(new URL("./fixtures/user", import.meta.url));

Deno.test("user mistakes: answers that say what to do", async (t) => {
  await using server = await startServer({
    functionsDir: fixtures,
    env: { CUDA_VISIBLE_DEVICES: "", ISOLANE_ADMIN_TOKEN: adminToken },
  });
  for (const name of ["bigint", "circular", "stream_bigint", "sync_generator"]) {
    await until(server, name, (i) => i.status === "ready");
  }

  await t.step(
    "an output its schema lets through but JSON cannot carry is 500 invalid_output, isolate kept",
    async () => {
      const before = (await (await fetch(`${server.url}/v1/functions/bigint`)).json()).isolates[0];
      const e = await errorOf(await server.invoke("bigint", { n: 7 }));
      assert.equal(e.status, 500);
      assert.equal(e.code, "invalid_output");
      assert.match(e.message, /^Function 'bigint' returned a value that cannot be written as JSON: .*BigInt/);
      const circular = await errorOf(await server.invoke("circular", {}));
      assert.equal(circular.status, 500);
      assert.equal(circular.code, "invalid_output");
      assert.match(
        circular.message,
        /^Function 'circular' returned a value that cannot be written as JSON: .*circular/i,
      );
      const ok = await server.invoke("bigint", { n: 0 });
      assert.equal(ok.status, 200);
      assert.deepEqual(await ok.json(), { ok: true });
      const after = (await (await fetch(`${server.url}/v1/functions/bigint`)).json()).isolates[0];
      assert.equal(after.id, before.id);
      assert.equal(after.restarts, before.restarts);
    },
  );

  await t.step("a streamed item JSON cannot carry ends the stream with invalid_output", async () => {
    const response = await server.invoke("stream_bigint", {});
    assert.equal(response.status, 200);
    const lines = (await response.text()).trim().split("\n").map((line) => JSON.parse(line));
    assert.equal(lines.length, 2);
    assert.deepEqual(lines[0], { n: 1 });
    assert.equal(lines[1].error.code, "invalid_output");
    assert.match(lines[1].error.message, /cannot be written as JSON: .*BigInt/);
  });

  await t.step(
    "a bundle packed with its folder on top says how to pack it, and names the mod.ts it found",
    async () => {
      const echo = await Deno.readTextFile(`${fixtures}/circular/mod.ts`);
      // What `tar czf my-fn.tar.gz my-fn` makes: every path starts with the folder's name.
      const e = await errorOf(await deploy(server, "wrapped", await bundleOf({ "my-fn/mod.ts": echo })));
      assert.equal(e.status, 422);
      assert.equal(e.code, "invalid_bundle");
      assert.equal(
        e.message,
        "The bundle has no mod.ts at its root, but has my-fn/mod.ts: pack the folder's contents rather than the folder " +
          "(tar czf my-fn.tar.gz -C my-fn .), or deploy with deno task deploy my-fn",
      );
      const missing = await errorOf(await deploy(server, "wrapped", await bundleOf({ "main.ts": echo })));
      assert.equal(missing.status, 422);
      assert.equal(
        missing.message,
        "The bundle has no mod.ts at its root: a function's folder holds mod.ts, which default-exports " +
          "defineFunction({...}); pack that folder's contents (tar czf fn.tar.gz -C <folder> .)",
      );
      const gone = await fetch(`${server.url}/v1/functions/wrapped`);
      assert.equal(gone.status, 404);
      await gone.body?.cancel();
    },
  );

  await t.step(
    "a handler written as function* (not async function*) is told to stream with async function*",
    async () => {
      const e = await errorOf(await server.invoke("sync_generator", {}));
      assert.equal(e.status, 500);
      assert.equal(e.code, "invalid_output");
      assert.equal(
        e.message,
        "Function 'sync_generator' returned a synchronous generator: a handler streams as an async generator " +
          "(async *handler), or returns one value",
      );
    },
  );

  await t.step("a module imported from a URL fails to load with what to do instead, no terminal colours", async () => {
    await until(server, "url_import", (info) => info.status === "failed");
    const info = await (await fetch(`${server.url}/v1/functions/url_import`)).json();
    assert.ok(!info.error.includes("\x1b"), "no terminal colour codes");
    assert.doesNotMatch(info.error, /--allow-import/);
    assert.match(
      info.error,
      /^Cannot load function 'url_import': importing file:\/\/\S+\/url_import\/mod\.ts failed: Requires import access to "deno\.land:443": a function imports no modules from URLs; import npm: packages through its deno\.json, or copy the module into its folder\n {4}at file:\/\/\S+\/url_import\/mod\.ts:3:22$/,
    );
    const e = await errorOf(await server.invoke("url_import", {}));
    assert.equal(e.status, 503);
    assert.equal(e.code, "function_unavailable");
  });

  await t.step("a function folder whose name is no function name is logged as skipped, with the rule", async () => {
    const line = await server.waitForLog((l) => l.msg === "function folder skipped", 10_000);
    assert.equal(line.level, "warn");
    assert.equal(line.folder, `${fixtures}/my.fn`);
    assert.equal(
      line.reason,
      "'my.fn' is not a function name: use letters, digits, '-' and '_' (at most 64); rename the folder",
    );
    const { functions: listed } = (await (await fetch(`${server.url}/v1/functions`)).json()) as {
      functions: { name: string }[];
    };
    assert.ok(!listed.some((f) => f.name === "my.fn"));
  });

  await t.step("a model path that does not exist says which file to add or which path to correct", async () => {
    const module = [
      'import { defineFunction, runModel } from "isolane";',
      "export default defineFunction({",
      '  description: "Names a model file the bundle lacks",',
      '  models: { net: "models/net.onnx" },',
      "  signature: {",
      '    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],',
      '    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],',
      "  },",
      '  handler: runModel("net"),',
      "});",
    ].join("\n");
    const e = await errorOf(await deploy(server, "lacks_model", await bundleOf({ "mod.ts": module })));
    assert.equal(e.status, 422);
    assert.match(
      e.message,
      /^Cannot load function 'lacks_model': model 'net' not found at \S+\/models\/net\.onnx: add models\/net\.onnx to the function's folder, or correct its path in models$/,
    );
  });
});

const mainPath = fileURLToPath(new URL("../main.ts", import.meta.url));

/** Runs main.ts to its exit with `env`; the runtime must give up by itself. */
async function startFails(env: Record<string, string>) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-worker-options", "--unstable-no-legacy-abort", "--unstable-net", mainPath],
    env: { ISOLANE_FUNCTIONS: fixtures, CUDA_VISIBLE_DEVICES: "", HOST: "127.0.0.1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, stdout: new TextDecoder().decode(stdout), stderr: new TextDecoder().decode(stderr).trim() };
}

Deno.test("a port in use stops the start at once with one line naming PORT, before any function loads", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = taken.addr;
  const { code, stdout, stderr } = await startFails({ PORT: String(port) });
  assert.equal(code, 1);
  assert.equal(
    stderr,
    `isolane: Cannot listen on 127.0.0.1:${port}: the address is in use; stop what listens there, or set PORT ` +
      "(and HOST) to a free address",
  );
  assert.doesNotMatch(stdout, /function loaded/);
});

Deno.test("a functions folder that does not exist stops the start with one line naming ISOLANE_FUNCTIONS", async () => {
  const missing = `${fixtures}/no-such-folder`;
  const { code, stderr } = await startFails({ PORT: "0", ISOLANE_FUNCTIONS: missing });
  assert.equal(code, 1);
  assert.equal(
    stderr,
    `isolane: ISOLANE_FUNCTIONS names no folder: ${missing} does not exist; create it, or point ISOLANE_FUNCTIONS ` +
      "at your functions' folder",
  );
});

Deno.test("under --watch, a new folder whose name is no function name is logged as skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-user-watch-" });
  try {
    await using server = await startServer({ functionsDir: dir, watch: true, env: { CUDA_VISIBLE_DEVICES: "" } });
    await server.waitForLog((l) => l.msg === "watching for changes");
    await Deno.mkdir(`${dir}/My Fn`);
    await Deno.copyFile(`${fixtures}/my.fn/mod.ts`, `${dir}/My Fn/mod.ts`);
    const line = await server.waitForLog((l) => l.msg === "function folder skipped", 10_000);
    assert.equal(line.folder, `${dir}/My Fn`);
    assert.equal(
      line.reason,
      "'My Fn' is not a function name: use letters, digits, '-' and '_' (at most 64); rename the folder",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
