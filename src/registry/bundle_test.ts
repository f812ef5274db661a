import assert from "node:assert/strict";
import { join } from "node:path";
import { IsolaneError } from "../errors.ts";
import { rawTarGz } from "../../tests/support/raw_tar.ts";
import { entryProblem, extractBundle, inspectBundle, packFolder, unpackBundle } from "./bundle.ts";

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
      /unpacks to at least \d+ bytes; the limit is 10/,
    );
    await assert.rejects(inspectBundle(bundle, { ...limits, maxEntries: 2 }), /more than 2 entries; the limit is 2/);
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
});

const mod = { path: "mod.ts", content: "export default 1;\n" };

/** The details of the `invalid_bundle` that `promise` rejects with. */
async function refusal(promise: Promise<unknown>): Promise<{ message: string; details: string[] }> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof IsolaneError, `expected an IsolaneError, got ${error}`);
  assert.equal(error.code, "invalid_bundle");
  return { message: error.message, details: (error.details ?? []) as string[] };
}

Deno.test("inspectBundle refuses names and paths no file system holds, and a path that is a file and a folder", async () => {
  const cases: [string, Parameters<typeof rawTarGz>[0], RegExp][] = [
    [
      "a PAX name of 300 bytes",
      [mod, { path: "x".repeat(300), content: "a" }],
      /a name of 300 bytes; the limit is 255/,
    ],
    [
      "a GNU long name of 300 bytes",
      [mod, { path: `assets/${"y".repeat(300)}`, content: "a", longName: "gnu" }],
      /a name of 300 bytes; the limit is 255/,
    ],
    [
      "a path 2,100 folders deep",
      [mod, { path: Array(2100).fill("ab").join("/"), content: "a" }],
      /a path of 6299 bytes/,
    ],
    [
      "a file, then a file inside it",
      [mod, { path: "x", content: "a" }, { path: "x/y", content: "b" }],
      /^x\/y: 'x' is a file/,
    ],
    [
      "a file inside a file, the other way round",
      [mod, { path: "a/b/c", content: "a" }, { path: "a/b", content: "b" }],
      /^a\/b\/c: 'a\/b' is a file/,
    ],
    ["a folder named as a file", [mod, { path: "mod.ts/", type: "5" }], /a folder and a file of this bundle/],
  ];
  for (const [what, entries, detail] of cases) {
    const { message, details } = await refusal(inspectBundle(await rawTarGz(entries), limits));
    assert.equal(message, "The bundle has entries that are not allowed", what);
    assert.equal(details.length, 1, `${what}: ${details}`);
    assert.match(details[0], detail, what);
  }
  // Names at the limits are taken.
  const entries = await inspectBundle(
    await rawTarGz([mod, { path: `${"n".repeat(255)}/${"m".repeat(255)}`, content: "a" }, {
      path: "./a//b",
      content: "b",
    }]),
    limits,
  );
  assert.equal(entries.length, 3);
});

Deno.test("extractBundle answers invalid_bundle, without its folder's path, for an entry it cannot unpack", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Past inspectBundle's checks, node-tar's own error (ENAMETOOLONG) says it.
    const { message } = await refusal(
      extractBundle(await rawTarGz([mod, { path: "z".repeat(300), content: "a" }]), dir),
    );
    assert.match(message, /^The bundle cannot be unpacked: .*ENAMETOOLONG/);
    assert.ok(!message.includes(dir), message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspectBundle refuses an entry past the size limit at its header, before reading its content", async () => {
  // The header declares 2 GiB and the archive ends after one block: read to its end it is only "truncated".
  const bundle = await rawTarGz([mod, { path: "weights.bin", content: new Uint8Array(512), declaredSize: 2 ** 31 }]);
  const { message } = await refusal(inspectBundle(bundle, { maxUnpackedBytes: 2 ** 30, maxEntries: 100 }));
  assert.equal(message, `The bundle unpacks to at least ${2 ** 31 + 18} bytes; the limit is ${2 ** 30}`);
  const many = await rawTarGz([mod, ...Array.from({ length: 10 }, (_, i) => ({ path: `f${i}`, content: "a" }))]);
  assert.equal(
    (await refusal(inspectBundle(many, { maxUnpackedBytes: 2 ** 30, maxEntries: 4 }))).message,
    "The bundle has more than 4 entries; the limit is 4",
  );
});
