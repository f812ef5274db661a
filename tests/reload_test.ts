/**
 * Reloading in watch mode: a changed module swaps atomically (requests in
 * flight finish on the old version), a broken change keeps the old version
 * serving, a new folder is picked up, a removed one is unloaded.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { greeterModule } from "./support/greeter.ts";
import { errorOf, startServer } from "./support/server.ts";

Deno.test("reload: atomic swap, broken change, new and removed functions", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-reload-" });
  await Deno.mkdir(join(dir, "greeter"));
  await Deno.writeTextFile(join(dir, "greeter", "mod.ts"), greeterModule("hello"));
  try {
    await using server = await startServer({ functionsDir: dir, watch: true });
    const loaded = (version: number, name = "greeter") =>
      server.waitForLog((l) => l.msg === "function loaded" && l.function === name && l.version === version);
    await loaded(1);

    await t.step("a change swaps versions; a request in flight finishes on the old one", async () => {
      assert.deepEqual(await (await server.invoke("greeter", { name: "a" })).json(), { message: "hello a" });
      const inFlight = server.invoke("greeter", { name: "b", delayMs: 1500 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      await Deno.writeTextFile(join(dir, "greeter", "mod.ts"), greeterModule("bonjour"));
      await loaded(2);
      assert.deepEqual(await (await server.invoke("greeter", { name: "c" })).json(), { message: "bonjour c" });
      assert.deepEqual(await (await inFlight).json(), { message: "hello b" });
      const info = await (await fetch(`${server.url}/v1/functions/greeter`)).json();
      assert.equal(info.version, 2);
      assert.equal(info.description, "Greets, in version bonjour");
    });

    await t.step("a broken change is reported and the old version keeps serving", async () => {
      await Deno.writeTextFile(join(dir, "greeter", "mod.ts"), "export default {;");
      await server.waitForLog((l) => l.msg === "function failed to load" && l.function === "greeter");
      assert.deepEqual(await (await server.invoke("greeter", { name: "d" })).json(), { message: "bonjour d" });
      const info = await (await fetch(`${server.url}/v1/functions/greeter`)).json();
      assert.equal(info.status, "ready");
      assert.equal(info.version, 2);
      assert.match(info.error, /importing .*greeter\/mod\.ts failed/);
    });

    await t.step("a new folder is loaded, a removed one is unloaded", async () => {
      await Deno.mkdir(join(dir, "second"));
      await Deno.writeTextFile(join(dir, "second", "mod.ts"), greeterModule("hi"));
      await server.waitForLog((l) => l.msg === "function loaded" && l.function === "second");
      assert.deepEqual(await (await server.invoke("second", { name: "e" })).json(), { message: "hi e" });
      await Deno.remove(join(dir, "second"), { recursive: true });
      await server.waitForLog((l) => l.msg === "function removed" && l.function === "second");
      assert.equal((await errorOf(await server.invoke("second", { name: "f" }))).status, 404);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
