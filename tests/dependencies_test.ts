/**
 * Functions with their own npm dependencies, for real: a `deno.json` with
 * `imports` deployed over HTTP (packages fetched from the npm registry and
 * bundled at deploy time), a folder function with one, native addons and
 * unresolvable packages refused with the old version serving, and a restart
 * that serves stored bundles with no package cache and no registry.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { adminToken, bundleOf, deploy, deployOk } from "./support/bundles.ts";
import { errorOf, startServer } from "./support/server.ts";

/** A module that uses two npm packages and a file of its own; its schemas come from "isolane". */
const depsModule = `import { defineFunction, InputError, z } from "isolane";
import ms from "ms";
import camelCase from "camelcase";
import { shout } from "./shout.ts";

export default defineFunction({
  description: "Parses a duration and camel-cases a phrase",
  input: z.object({ duration: z.string(), phrase: z.string() }),
  output: z.object({ ms: z.number(), camel: z.string() }),
  handler: ({ duration, phrase }) => {
    if (phrase === "") throw new InputError("The phrase is empty");
    return { ms: ms(duration), camel: shout(camelCase(phrase)) };
  },
});
`;
const shoutModule = `export function shout(text: string): string {
  return text + "!";
}
`;
const depsConfig = JSON.stringify({ imports: { ms: "npm:ms@2.1.3", camelcase: "npm:camelcase@8.0.0" } });

/** A module whose handler imports a file by URL at request time. */
const importerModule = `import { defineFunction, z } from "isolane";
import ms from "ms";

export default defineFunction({
  description: "Imports a module by URL",
  input: z.object({ url: z.string() }),
  output: z.object({ result: z.string() }),
  async handler({ url }) {
    try {
      const mod = await import(url);
      return { result: "imported " + String(mod.default) + " " + ms(1000) };
    } catch (error) {
      return { result: "refused: " + String(error) };
    }
  },
});
`;

async function call(url: string, name: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${url}/v1/functions/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("dependencies: deployed over HTTP, bundled with the SDK external, refused with the reason", async (t) => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  const dataDir = await Deno.makeTempDir({ prefix: "isolane-data-" });
  const outside = await Deno.makeTempDir({ prefix: "isolane-outside-" });
  const env = { ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_DATA: dataDir };
  const versionDir = (name: string, version: number) => join(dataDir, "functions", name, String(version));
  try {
    {
      await using server = await startServer({ functionsDir, env });

      await t.step("a bundle with a deno.json deploys, and its packages run in the isolate", async () => {
        const version = await deployOk(server, "durations", {
          "mod.ts": depsModule,
          "shout.ts": shoutModule,
          "deno.json": depsConfig,
        });
        assert.equal(version, 1);
        const answer = await call(server.url, "durations", { duration: "2 days", phrase: "hello edge world" });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.deepEqual(answer.body, { ms: 172_800_000, camel: "helloEdgeWorld!" });
      });

      await t.step("the SDK stays the runtime's: its InputError is a 400, its Zod schemas validate", async () => {
        // With a copy of the SDK inside the bundle, the handler's InputError would be another class than the
        // runtime's, fail its instanceof check and come back as a 500 handler_error.
        const refused = await call(server.url, "durations", { duration: "1s", phrase: "" });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.deepEqual(refused.body, { error: { code: "invalid_input", message: "The phrase is empty" } });
        const bad = await call(server.url, "durations", { duration: 5, phrase: "x" });
        assert.equal(bad.status, 400);
        assert.equal((bad.body as { error: { code: string } }).error.code, "invalid_input");
        const bundle = await Deno.readTextFile(join(versionDir("durations", 1), "mod.bundle.js"));
        assert.match(bundle, /from "isolane"/);
        assert.doesNotMatch(bundle, /class InputError|function defineFunction/);
        const lock = JSON.parse(await Deno.readTextFile(join(versionDir("durations", 1), "deno.lock")));
        assert.match(lock.npm["ms@2.1.3"].integrity, /^sha512-/);
        assert.match(lock.npm["camelcase@8.0.0"].integrity, /^sha512-/);
      });

      await t.step("a bundle runs in a Worker host too (the runtime's import map resolves 'isolane')", async () => {
        await deployOk(server, "durations-worker", {
          "mod.ts": depsModule.replace(`description:`, `isolation: "worker",\n  description:`),
          "shout.ts": shoutModule,
          "deno.json": depsConfig,
        });
        const info = await (await fetch(`${server.url}/v1/functions/durations-worker`)).json();
        assert.equal(info.isolation, "worker");
        const answer = await call(server.url, "durations-worker", { duration: "1m", phrase: "in a worker" });
        assert.deepEqual(answer.body, { ms: 60_000, camel: "inAWorker!" });
        const refused = await call(server.url, "durations-worker", { duration: "1s", phrase: "" });
        assert.equal(refused.status, 400);
      });

      await t.step("dynamic imports outside the function's folder stay denied, on both isolate hosts", async () => {
        const target = join(outside, "secret.js");
        await Deno.writeTextFile(target, "export default 'secret';\n");
        for (const isolation of ["process", "worker"]) {
          const name = `importer-${isolation}`;
          await deployOk(server, name, {
            "mod.ts": importerModule.replace(`description:`, `isolation: "${isolation}",\n  description:`),
            "deno.json": JSON.stringify({ imports: { ms: "npm:ms@2.1.3" } }),
          });
          const answer = await call(server.url, name, { url: `file://${target}` });
          assert.equal(answer.status, 200, JSON.stringify(answer.body));
          const result = (answer.body as { result: string }).result;
          assert.match(result, /^refused: /);
          assert.match(result, /NotCapable|Requires (read|import) access/);
        }
      });

      await t.step("a package with a native addon is refused (422) with the reason; version 1 serves", async () => {
        const response = await deploy(
          server,
          "durations",
          await bundleOf({
            "mod.ts": `import { defineFunction, z } from "isolane";
import bufferutil from "bufferutil";
export default defineFunction({
  description: "Uses a native addon",
  input: z.object({}),
  output: z.object({ kind: z.string() }),
  handler: () => ({ kind: typeof bufferutil }),
});
`,
            "deno.json": JSON.stringify({ imports: { bufferutil: "npm:bufferutil@4.1.0" } }),
          }),
        );
        const e = await errorOf(response);
        assert.equal(e.status, 422);
        assert.equal(e.code, "invalid_bundle");
        assert.match(e.message, /native addons are not allowed/);
        assert.match(e.message, /bufferutil@4\.1\.0/);
        const answer = await call(server.url, "durations", { duration: "1h", phrase: "still one" });
        assert.deepEqual(answer.body, { ms: 3_600_000, camel: "stillOne!" });
      });

      await t.step("an unresolvable package is refused (422) with the reason; version 1 serves", async () => {
        const response = await deploy(
          server,
          "durations",
          await bundleOf({
            "mod.ts": depsModule,
            "shout.ts": shoutModule,
            "deno.json": JSON.stringify({ imports: { ms: "npm:ms@99.0.0", camelcase: "npm:camelcase@8.0.0" } }),
          }),
        );
        const e = await errorOf(response);
        assert.equal(e.status, 422);
        assert.equal(e.code, "invalid_bundle");
        assert.match(e.message, /cannot be resolved: .*ms.*99\.0\.0/);
        const answer = await call(server.url, "durations", { duration: "1m", phrase: "old version" });
        assert.deepEqual(answer.body, { ms: 60_000, camel: "oldVersion!" });
        const versions = await (await fetch(`${server.url}/v1/functions/durations/versions`)).json();
        assert.equal(versions.current, 1);
        assert.deepEqual(versions.versions.map((v: { version: number }) => v.version), [1]);
      });

      await t.step("imports that are not npm: specifiers, or that map 'isolane', are refused (422)", async () => {
        for (
          const [imports, reason] of [
            [{ x: "https://example.com/x.ts" }, /only npm: specifiers are supported/],
            [{ isolane: "npm:zod@4.6.7" }, /"isolane" is the runtime's SDK/],
          ] as const
        ) {
          const response = await deploy(
            server,
            "durations",
            await bundleOf({ "mod.ts": depsModule, "shout.ts": shoutModule, "deno.json": JSON.stringify({ imports }) }),
          );
          const e = await errorOf(response);
          assert.equal(e.status, 422);
          assert.match(e.message, reason);
        }
      });
    }

    await t.step("after a restart with no package cache and no registry, the stored bundle serves", async () => {
      const emptyCache = await Deno.makeTempDir({ prefix: "isolane-deno-dir-" });
      try {
        await using server = await startServer({
          functionsDir,
          env: { ...env, DENO_DIR: emptyCache, NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/" },
        });
        const answer = await call(server.url, "durations", { duration: "3s", phrase: "no registry" });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.deepEqual(answer.body, { ms: 3000, camel: "noRegistry!" });
      } finally {
        await Deno.remove(emptyCache, { recursive: true });
      }
    });
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("dependencies: a folder function with a deno.json is bundled into its folder at load", async () => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  try {
    const dir = join(functionsDir, "durations");
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "mod.ts"), depsModule);
    await Deno.writeTextFile(join(dir, "shout.ts"), shoutModule);
    await Deno.writeTextFile(join(dir, "deno.json"), depsConfig);
    await using server = await startServer({ functionsDir });
    const answer = await call(server.url, "durations", { duration: "1.5h", phrase: "from a folder" });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { ms: 5_400_000, camel: "fromAFolder!" });
    assert.match(await Deno.readTextFile(join(dir, "mod.bundle.js")), /from "isolane"/);
    assert.ok((await Deno.stat(join(dir, "deno.lock"))).isFile);
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
  }
});

Deno.test("dependencies: under --watch, a new import in deno.json and mod.ts is bundled on reload", async () => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  try {
    const dir = join(functionsDir, "durations");
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "deno.json"), JSON.stringify({ imports: { ms: "npm:ms@2.1.3" } }));
    await Deno.writeTextFile(
      join(dir, "mod.ts"),
      `import { defineFunction, z } from "isolane";
import ms from "ms";
export default defineFunction({
  description: "Parses a duration",
  input: z.object({ duration: z.string(), phrase: z.string() }),
  output: z.object({ ms: z.number(), camel: z.string() }),
  handler: ({ duration, phrase }) => ({ ms: ms(duration), camel: phrase }),
});
`,
    );
    await using server = await startServer({ functionsDir, watch: true });
    const before = await call(server.url, "durations", { duration: "1s", phrase: "not camel" });
    assert.deepEqual(before.body, { ms: 1000, camel: "not camel" });
    await Deno.writeTextFile(join(dir, "shout.ts"), shoutModule);
    await Deno.writeTextFile(join(dir, "mod.ts"), depsModule);
    await Deno.writeTextFile(join(dir, "deno.json"), depsConfig);
    // The watcher debounces, but a reload may still fall between the writes: wait for the one that has them all.
    let after: { status: number; body: unknown } | undefined;
    for (let version = 2; version < 6; version++) {
      await server.waitForLog((l) =>
        l.msg === "function loaded" && l.function === "durations" && Number(l.version) >= version
      );
      after = await call(server.url, "durations", { duration: "1s", phrase: "now camel" });
      if ((after.body as { camel?: string }).camel === "nowCamel!") break;
    }
    assert.deepEqual(after?.body, { ms: 1000, camel: "nowCamel!" });
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
  }
});
