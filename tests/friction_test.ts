/**
 * First-run and error friction: a configuration error is one line naming the
 * variable; a denied permission names the function's `permissions` option; an
 * unknown key in a definition is refused at load with the known options.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { errorOf, startServer, until } from "./support/server.ts";

const mainPath = fileURLToPath(new URL("../main.ts", import.meta.url));
const fixtures = fileURLToPath(new URL("./fixtures/friction", import.meta.url));

Deno.test("a configuration error is one line that names the variable, and a non-zero exit", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-worker-options", "--unstable-no-legacy-abort", "--unstable-net", mainPath],
    env: { ISOLANE_ADMIN_TOKEN: "too-short", ISOLANE_FUNCTIONS: fixtures, PORT: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.notEqual(code, 0);
  const err = new TextDecoder().decode(stderr).trim();
  assert.equal(new TextDecoder().decode(stdout), "");
  assert.equal(err, "isolane: Invalid configuration: ISOLANE_ADMIN_TOKEN must have at least 16 characters");
});

Deno.test("functions: denied permissions and unknown options say what to do", async (t) => {
  await using server = await startServer({ functionsDir: fixtures, env: { CUDA_VISIBLE_DEVICES: "" } });
  await using target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hi"));

  await t.step("a fetch without net permission names the permissions option", async () => {
    await until(server, "fetches", (info) => info.status === "ready");
    const url = `http://127.0.0.1:${target.addr.port}/`;
    const e = await errorOf(await server.invoke("fetches", { url }));
    assert.equal(e.status, 500);
    assert.equal(e.code, "handler_error");
    assert.equal(
      e.message,
      `Function 'fetches' threw: Requires net access to "127.0.0.1:${target.addr.port}": declare it in the ` +
        `function's permissions option, e.g. permissions: { net: ["127.0.0.1:${target.addr.port}"] }`,
    );
    assert.doesNotMatch(e.message, /--allow-net/);
  });

  await t.step("an unknown key in a definition is refused at load, with the known options", async () => {
    await until(server, "typo", (info) => info.status === "failed");
    const info = await (await fetch(`${server.url}/v1/functions/typo`)).json();
    assert.match(info.error, /Unknown option 'timeOutMs'; known options: description, .*timeoutMs.*handler, setup/);
    const e = await errorOf(await server.invoke("typo", {}));
    assert.equal(e.status, 503);
  });
});
