/**
 * What a new user runs into when writing functions from the README: each mistake gets a documented status and a
 * message that says what to do, the isolate and the other functions keep serving.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { errorOf, startServer, until } from "./support/server.ts";

const fixtures = fileURLToPath(new URL("./fixtures/user", import.meta.url));

Deno.test("user mistakes: answers that say what to do", async (t) => {
  await using server = await startServer({ functionsDir: fixtures, env: { CUDA_VISIBLE_DEVICES: "" } });
  for (const name of ["bigint", "circular", "stream_bigint"]) await until(server, name, (i) => i.status === "ready");

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
});
