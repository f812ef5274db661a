import assert from "node:assert/strict";
import { InvocationKeys } from "./invocation_keys.ts";

Deno.test("InvocationKeys: a key verifies until revoked, only for its function, and survives a new store", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const keys = new InvocationKeys(dataDir);
    const a = await keys.create("ocr");
    const b = await keys.create("ocr");
    assert.notEqual(a.key, b.key);
    assert.equal(await keys.verify("ocr", a.key), a.id);
    assert.equal(await keys.verify("ocr", b.key), b.id);
    assert.equal(await keys.verify("vad", a.key), null);
    assert.equal(await keys.verify("ocr", a.key + "x"), null);
    assert.deepEqual((await keys.list("ocr")).map((k) => k.id), [a.id, b.id]);

    const reopened = new InvocationKeys(dataDir);
    assert.equal(await reopened.verify("ocr", b.key), b.id);
    assert.equal(await reopened.revoke("ocr", a.id), true);
    assert.equal(await reopened.revoke("ocr", a.id), false);
    assert.equal(await reopened.verify("ocr", a.key), null);
    assert.equal(await new InvocationKeys(dataDir).verify("ocr", a.key), null);

    await reopened.removeAll("ocr");
    assert.deepEqual(await new InvocationKeys(dataDir).list("ocr"), []);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("InvocationKeys: keys made at once are all kept", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const keys = new InvocationKeys(dataDir);
    const made = await Promise.all(Array.from({ length: 8 }, () => keys.create("ocr")));
    const stored = await new InvocationKeys(dataDir).list("ocr");
    assert.deepEqual(stored.map((k) => k.id).sort(), made.map((k) => k.id).sort());
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
