/**
 * `POST /v1/functions/:name/rollback` takes an empty body or `{"version": n}`; any other body is refused (400) and
 * changes nothing. Before, `[]`, `"x"` or a typo such as `{"verison": 1}` read as an empty body: a rollback to the
 * version before, which nobody asked for.
 */
import assert from "node:assert/strict";
import { errorOf, startServer } from "./support/server.ts";
import { adminToken, deployOk } from "./support/bundles.ts";
import { greeterModule } from "./support/greeter.ts";

Deno.test('rollback: a body other than empty or {"version": n} is 400 and serves on', async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-rollback-" });
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_ADMIN_TOKEN: adminToken } });
    await deployOk(server, "g", { "mod.ts": greeterModule("one") });
    assert.equal(await deployOk(server, "g", { "mod.ts": greeterModule("two") }), 2);
    const rollback = (body: string) =>
      fetch(`${server.url}/v1/functions/g/rollback`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        body,
      });
    const cases: [string, RegExp][] = [
      ['{"verison": 1}', /has 'verison'; its only key is 'version'/],
      ['{"version": 1, "force": true}', /has 'force'; its only key is 'version'/],
      ["[]", /must be empty or a JSON object/],
      ['"x"', /must be empty or a JSON object/],
      ["null", /must be empty or a JSON object/],
      ["7", /must be empty or a JSON object/],
      ['{"version": "1"}', /must be an integer/],
      // Past 2^53 a JSON number is rounded: 9007199254740993 would ask for version 9007199254740992.
      ['{"version": 9007199254740993}', /must be an integer/],
      ['{"version": 1e308}', /must be an integer/],
    ];
    for (const [body, message] of cases) {
      const e = await errorOf(await rollback(body));
      assert.deepEqual([e.status, e.code], [400, "invalid_input"], body);
      assert.match(e.message, message, body);
    }
    const versions = await (await fetch(`${server.url}/v1/functions/g/versions`)).json();
    assert.equal(versions.current, 2, "no refused body rolled back");
    // What it takes: an empty body, or the version.
    assert.deepEqual(await (await rollback("")).json(), { name: "g", version: 1, previous: 2 });
    assert.deepEqual(await (await rollback('{"version": 2}')).json(), { name: "g", version: 2, previous: 1 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
