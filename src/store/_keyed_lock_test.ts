import assert from "node:assert/strict";
import { KeyedLock } from "./_keyed_lock.ts";

Deno.test("KeyedLock runs callers of one key one at a time, in order, and other keys alongside", async () => {
  const lock = new KeyedLock();
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const first = lock.run("a", async () => {
    events.push("a1 start");
    await gate;
    events.push("a1 end");
  });
  const second = lock.run("a", () => {
    events.push("a2");
    return Promise.resolve();
  });
  const other = lock.run("b", () => {
    events.push("b");
    return Promise.resolve();
  });
  await other;
  assert.deepEqual(events, ["a1 start", "b"]);
  release();
  await Promise.all([first, second]);
  assert.deepEqual(events, ["a1 start", "b", "a1 end", "a2"]);
});

Deno.test("KeyedLock releases the key when a holder throws", async () => {
  const lock = new KeyedLock();
  await assert.rejects(lock.run("a", () => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(await lock.run("a", () => Promise.resolve(7)), 7);
});
