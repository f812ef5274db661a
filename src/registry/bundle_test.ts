import assert from "node:assert/strict";
import { join } from "node:path";
import { entryProblem, inspectBundle, packFolder, unpackBundle } from "./bundle.ts";

const limits = { maxUnpackedBytes: 1024 * 1024, maxEntries: 100 };

Deno.test("entryProblem allows files and folders with relative paths only", () => {
  assert.equal(entryProblem({ path: "./mod.ts", type: "File", size: 1 }), null);
  assert.equal(entryProblem({ path: "assets/", type: "Directory", size: 0 }), null);
  assert.match(entryProblem({ path: "x", type: "SymbolicLink", size: 0 })!, /not allowed/);
  assert.match(entryProblem({ path: "x", type: "Link", size: 0 })!, /not allowed/);
  assert.match(entryProblem({ path: "a/../../b", type: "File", size: 0 })!, /'\.\.'/);
  assert.match(entryProblem({ path: "/etc/x", type: "File", size: 0 })!, /absolute/);
});

Deno.test("packFolder and unpackBundle round-trip a function folder", async () => {
  const src = await Deno.makeTempDir();
  const dst = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(src, "assets"));
    await Deno.writeTextFile(join(src, "mod.ts"), "export default 1;\n");
    await Deno.writeTextFile(join(src, "assets", "labels.txt"), "a\nb\n");
    const bundle = await packFolder(src);
    const entries = await unpackBundle(bundle, dst, limits);
    assert.ok(entries.some((e) => e.path.endsWith("labels.txt")));
    assert.equal(await Deno.readTextFile(join(dst, "assets", "labels.txt")), "a\nb\n");
    await assert.rejects(
      inspectBundle(bundle, { ...limits, maxUnpackedBytes: 10 }),
      /unpacks to \d+ bytes; the limit is 10/,
    );
    await assert.rejects(inspectBundle(bundle, { ...limits, maxEntries: 2 }), /entries; the limit is 2/);
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
});
