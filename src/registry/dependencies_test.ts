import assert from "node:assert/strict";
import { join } from "node:path";
import { IsolaneError } from "../errors.ts";
import { functionModulePath, readImports } from "./dependencies.ts";

async function withConfig(text: string | null, run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    if (text !== null) await Deno.writeTextFile(join(dir, "deno.json"), text);
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("readImports: npm: imports are read; no deno.json or no imports is null", async () => {
  await withConfig(null, async (dir) => assert.equal(await readImports("f", dir), null));
  await withConfig(JSON.stringify({ tasks: {} }), async (dir) => assert.equal(await readImports("f", dir), null));
  await withConfig(JSON.stringify({ imports: {} }), async (dir) => assert.equal(await readImports("f", dir), null));
  await withConfig(JSON.stringify({ imports: { ms: "npm:ms@2.1.3", "hono/": "npm:/hono@4.13.19/" } }), async (dir) => {
    assert.deepEqual(await readImports("f", dir), { ms: "npm:ms@2.1.3", "hono/": "npm:/hono@4.13.19/" });
  });
  await withConfig('// durations\n{ "imports": { /* one */ "ms": "npm:ms@2.1.3", } }', async (dir) => {
    assert.deepEqual(await readImports("f", dir), { ms: "npm:ms@2.1.3" });
  });
  await withConfig(null, async (dir) => {
    assert.equal(await functionModulePath("f", dir, { fresh: true }), join(dir, "mod.ts"));
  });
});

Deno.test("readImports: refuses what cannot be bundled, saying which import and why", async () => {
  const cases: [string, RegExp][] = [
    ["{ not json", /deno\.json is not JSON/],
    [JSON.stringify({ imports: [] }), /'imports' in its deno\.json is not an object/],
    [JSON.stringify({ imports: { x: "https://example.com/x.ts" } }), /'x': only npm: specifiers/],
    [JSON.stringify({ imports: { y: "jsr:@std/path" } }), /'y': only npm: specifiers/],
    [JSON.stringify({ imports: { isolane: "npm:isolane@1" } }), /'isolane': "isolane" is the runtime's SDK/],
  ];
  for (const [text, reason] of cases) {
    await withConfig(text, async (dir) => {
      await assert.rejects(readImports("f", dir), (error: unknown) => {
        assert.ok(error instanceof IsolaneError);
        assert.equal(error.code, "invalid_bundle");
        assert.match(error.message, /^Cannot load function 'f': /);
        assert.match(error.message, reason);
        return true;
      });
    });
  }
});
