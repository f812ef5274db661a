import assert from "node:assert/strict";
import { join } from "node:path";
import { packFolder } from "../registry/bundle.ts";
import { LocalStore } from "./local.ts";

async function bundle(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "mod.ts"), text);
  const packed = await packFolder(dir);
  await Deno.remove(dir, { recursive: true });
  return packed;
}

const limits = { maxUnpackedBytes: 1 << 20, maxEntries: 100 };

Deno.test("LocalStore: adds under the lock get distinct versions; a refused bundle writes nothing", async () => {
  const data = await Deno.makeTempDir();
  try {
    const store = new LocalStore(data, limits);
    await assert.rejects(store.exclusive("f", () => store.add("f", new TextEncoder().encode("nope"))), /tar\.gz/);
    assert.deepEqual([...Deno.readDirSync(data)], []);
    const added = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) => store.exclusive("f", async () => (await store.add("f", await bundle(`// ${i}`))).version),
      ),
    );
    assert.deepEqual([...added].sort(), [1, 2, 3, 4, 5, 6]);
    const { versions } = await store.versions("f");
    assert.deepEqual(versions.map((v) => v.version), [1, 2, 3, 4, 5, 6]);
    assert.equal(new Set(versions.map((v) => v.sha256)).size, 6);
    await store.setCurrent("f", 6);
    assert.equal((await store.currents()).get("f")?.version, 6);
    await store.remove("f");
    assert.deepEqual(await store.versions("f"), { current: null, versions: [] });
    assert.deepEqual([...Deno.readDirSync(join(data, "functions"))], []);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("LocalStore reads the meta.json of earlier releases", async () => {
  const data = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(data, "functions", "old", "3"), { recursive: true });
    const old = {
      current: 3,
      versions: [{ version: 3, createdAt: "2026-01-01T00:00:00.000Z", bytes: 10, sha256: "ab" }],
    };
    await Deno.writeTextFile(join(data, "functions", "old", "meta.json"), JSON.stringify(old));
    const store = new LocalStore(data, limits);
    assert.equal((await store.currents()).get("old")?.version, 3);
    const { version } = await store.add("old", await bundle("// next"));
    assert.equal(version, 4);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});
