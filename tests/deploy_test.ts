/**
 * The deploy API for real: bundles packed from folders, uploaded over HTTP,
 * validated, swapped atomically, rolled back, deleted, kept across restarts,
 * and guarded by the admin token.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import * as tar from "tar";
import { bundleOf } from "./support/bundles.ts";
import { greeterModule } from "./support/greeter.ts";
import { errorOf, startServer, type TestServer } from "./support/server.ts";
import { readJsonAnswer } from "./support/raw_http.ts";

const token = "test-admin-token-0123456789";
const auth = { authorization: `Bearer ${token}` };
const echoFixture = fileURLToPath(new URL("./fixtures/functions/echo", import.meta.url));

/** A hand-made tar.gz with one entry, for entries `tar.c` would never write. */
function rawBundle(path: string, type: "File" | "SymbolicLink", linkpath?: string): Uint8Array<ArrayBuffer> {
  const data = new TextEncoder().encode(type === "File" ? "export default 1;\n" : "");
  const header = new tar.Header({ path, type, size: data.length, mode: 0o644, mtime: new Date(0), linkpath });
  const block = Buffer.alloc(512);
  header.encode(block);
  const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
  padded.set(data);
  const archive = new Uint8Array(512 + padded.length + 1024);
  archive.set(block, 0);
  archive.set(padded, 512);
  return new Uint8Array(gzipSync(archive));
}

function deploy(
  server: TestServer,
  name: string,
  bundle: Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = auth,
) {
  return fetch(`${server.url}/v1/functions/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/gzip", ...headers },
    body: bundle,
  });
}

async function greet(server: TestServer, name: string, who: string, delayMs = 0): Promise<string> {
  const response = await server.invoke(name, { name: who, delayMs });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.message;
}

Deno.test("deploy: versions, atomic swap, rollback, delete, restart, auth and bundle checks", async (t) => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  const dataDir = await Deno.makeTempDir({ prefix: "isolane-data-" });
  await Deno.mkdir(join(functionsDir, "echo"));
  await Deno.copyFile(join(echoFixture, "mod.ts"), join(functionsDir, "echo", "mod.ts"));
  const env = { ISOLANE_ADMIN_TOKEN: token, ISOLANE_DATA: dataDir, ISOLANE_MAX_BUNDLE_BYTES: String(64 * 1024) };
  try {
    {
      await using server = await startServer({ functionsDir, env });

      await t.step("401 without the token or with a wrong one", async () => {
        const bundle = await bundleOf({ "mod.ts": greeterModule("hello") });
        const attempts: Record<string, string>[] = [{}, { authorization: "Bearer wrong-token-0000000000" }, {
          authorization: token,
        }];
        for (const headers of attempts) {
          const e = await errorOf(await deploy(server, "greeter", bundle, headers));
          assert.equal(e.status, 401);
          assert.equal(e.code, "unauthorized");
        }
      });

      await t.step("201 for a good bundle; the function serves version 1", async () => {
        const response = await deploy(server, "greeter", await bundleOf({ "mod.ts": greeterModule("hello") }));
        assert.equal(response.status, 201);
        assert.deepEqual(await response.json(), { name: "greeter", version: 1, status: "ready", isolates: 1 });
        assert.equal(await greet(server, "greeter", "ada"), "hello ada");
        const info = await (await fetch(`${server.url}/v1/functions/greeter`)).json();
        assert.equal(info.source, "deployed");
        assert.equal(info.version, 1);
      });

      await t.step("422 for a bundle that does not load; the old version keeps serving", async () => {
        const e = await errorOf(await deploy(server, "greeter", await bundleOf({ "mod.ts": "export default {;" })));
        assert.equal(e.status, 422);
        assert.equal(e.code, "invalid_bundle");
        assert.match(e.message, /importing .*mod\.ts failed/);
        assert.equal(await greet(server, "greeter", "bob"), "hello bob");
        const versions = await (await fetch(`${server.url}/v1/functions/greeter/versions`)).json();
        assert.equal(versions.current, 1);
        assert.deepEqual(versions.versions.map((v: { version: number }) => v.version), [1]);
      });

      await t.step("a new version swaps in while a request in flight finishes on the old one", async () => {
        const inFlight = greet(server, "greeter", "cy", 1500);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const response = await deploy(server, "greeter", await bundleOf({ "mod.ts": greeterModule("bonjour") }));
        assert.equal(response.status, 201);
        assert.equal((await response.json()).version, 2);
        assert.equal(await greet(server, "greeter", "dee"), "bonjour dee");
        assert.equal(await inFlight, "hello cy");
      });

      await t.step("rollback serves the version before, or the one asked for", async () => {
        const back = await fetch(`${server.url}/v1/functions/greeter/rollback`, { method: "POST", headers: auth });
        assert.deepEqual(await back.json(), { name: "greeter", version: 1, previous: 2 });
        assert.equal(await greet(server, "greeter", "eve"), "hello eve");
        const forward = await fetch(`${server.url}/v1/functions/greeter/rollback`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ version: 2 }),
        });
        assert.equal((await forward.json()).version, 2);
        const missing = await errorOf(
          await fetch(`${server.url}/v1/functions/greeter/rollback`, {
            method: "POST",
            headers: auth,
            body: '{"version": 9}',
          }),
        );
        assert.equal(missing.status, 404);
      });

      await t.step(
        "bundles with links, '..', absolute paths or no mod.ts are refused before anything is written",
        async () => {
          const cases: [Uint8Array<ArrayBuffer>, RegExp][] = [
            [rawBundle("mod.ts", "SymbolicLink", "/etc/passwd"), /SymbolicLink entries are not allowed/],
            [rawBundle("../escape.ts", "File"), /'\.\.' is not allowed/],
            [rawBundle("/tmp/isolane-absolute.ts", "File"), /absolute paths are not allowed/],
            [await bundleOf({ "lib/mod.ts": greeterModule("x") }), /no mod\.ts at its root/],
            [new TextEncoder().encode("not a tarball"), /not a readable \.tar\.gz/],
          ];
          for (const [bundle, reason] of cases) {
            const e = await errorOf(await deploy(server, "evil", bundle));
            assert.equal(e.status, 422);
            assert.match(`${e.message} ${JSON.stringify(e.details ?? "")}`, reason);
          }
          await assert.rejects(Deno.stat("/tmp/isolane-absolute.ts"));
          assert.equal((await errorOf(await server.invoke("evil", {}))).status, 404);
        },
      );

      await t.step(
        "413 for a bundle over the size limit, 415 for another content type, 409 over a folder function",
        async () => {
          const noise = crypto.getRandomValues(new Uint8Array(65536));
          const big = await errorOf(
            await deploy(server, "big", await bundleOf({ "mod.ts": greeterModule("x"), "blob.bin": noise })),
          );
          assert.equal(big.status, 413);
          const wrongType = await errorOf(
            await deploy(server, "greeter", await bundleOf({ "mod.ts": greeterModule("x") }), {
              ...auth,
              "content-type": "text/plain",
            }),
          );
          assert.equal(wrongType.status, 415);
          const conflict = await errorOf(
            await deploy(server, "echo", await bundleOf({ "mod.ts": greeterModule("x") })),
          );
          assert.equal(conflict.status, 409);
        },
      );

      await t.step("deno task deploy packs a folder and uploads it", async () => {
        const folder = await Deno.makeTempDir();
        await Deno.writeTextFile(join(folder, "mod.ts"), greeterModule("hola"));
        const result = await new Deno.Command(Deno.execPath(), {
          args: ["task", "-q", "deploy", folder, "--url", server.url, "--name", "cli-greeter"],
          env: { ISOLANE_ADMIN_TOKEN: token, NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        await Deno.remove(folder, { recursive: true });
        const out = new TextDecoder().decode(result.stdout);
        assert.equal(result.code, 0, out + new TextDecoder().decode(result.stderr));
        assert.match(new TextDecoder().decode(result.stderr), /uploading cli-greeter .*100%/);
        assert.equal(JSON.parse(out).version, 1);
        assert.equal(await greet(server, "cli-greeter", "fay"), "hola fay");
      });
    }

    await t.step("deployed functions survive a restart, at their current version", async () => {
      await using server = await startServer({ functionsDir, env });
      assert.equal(await greet(server, "greeter", "gus"), "bonjour gus");
      assert.equal(await greet(server, "cli-greeter", "hal"), "hola hal");

      const deleted = await fetch(`${server.url}/v1/functions/greeter`, { method: "DELETE", headers: auth });
      assert.deepEqual(await deleted.json(), { name: "greeter", deleted: true });
      assert.equal((await errorOf(await server.invoke("greeter", { name: "x" }))).status, 404);
      assert.equal((await errorOf(await fetch(`${server.url}/v1/functions/greeter/versions`))).status, 404);
      const folderDelete = await errorOf(
        await fetch(`${server.url}/v1/functions/echo`, { method: "DELETE", headers: auth }),
      );
      assert.equal(folderDelete.status, 409);
    });

    await t.step("a deleted function stays deleted after a restart", async () => {
      await using server = await startServer({ functionsDir, env });
      assert.equal((await errorOf(await server.invoke("greeter", { name: "x" }))).status, 404);
      assert.equal(await greet(server, "cli-greeter", "ivy"), "hola ivy");
    });

    await t.step("without a token the admin API is off (403)", async () => {
      await using server = await startServer({ functionsDir, env: { ISOLANE_DATA: dataDir } });
      const e = await errorOf(await deploy(server, "greeter", await bundleOf({ "mod.ts": greeterModule("x") })));
      assert.equal(e.status, 403);
      assert.equal(e.code, "admin_disabled");
      await server.waitForLog((l) => l.msg === "admin API" && /off/.test(String(l.mode)));
    });
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
    await Deno.remove(dataDir, { recursive: true });
  }
});

const mlpFiles = {
  "mod.ts": await Deno.readTextFile(new URL("../functions/mlp/mod.ts", import.meta.url)),
  "mlp.onnx": await Deno.readFile(new URL("../functions/mlp/mlp.onnx", import.meta.url)),
};

/** A request on each route that a version swapped in while its body arrived must not refuse, and what it answers. */
const midBodyCases = [
  {
    route: "/v1/functions/greeter",
    name: "greeter",
    versions: [{ "mod.ts": greeterModule("hello") }, { "mod.ts": greeterModule("bonjour") }],
    body: JSON.stringify({ name: "eve" }),
    check: (body: unknown) => assert.deepEqual(body, { message: "bonjour eve" }),
  },
  {
    route: "/v2/models/mlp/infer",
    name: "mlp",
    versions: [mlpFiles, mlpFiles],
    body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] }),
    check: (body: unknown) => {
      const answer = body as { model_version: string; outputs: { shape: number[] }[] };
      assert.equal(answer.model_version, "2");
      assert.deepEqual(answer.outputs[0].shape, [1, 3]);
    },
  },
];

// Found by a redeploy under load: a request admitted by the old version (its headers came first) whose body was
// still arriving when the new version swapped in went to the old version's pool, which drains without taking new
// work, and answered 503 "was unloaded; retry the request". It is served by the version that serves by then.
for (const { route, name, versions, body, check } of midBodyCases) {
  Deno.test(`deploy: a request on ${route} whose body is still arriving when a new version swaps in is served`, async () => {
    const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
    const dataDir = await Deno.makeTempDir({ prefix: "isolane-data-" });
    const env = { ISOLANE_ADMIN_TOKEN: token, ISOLANE_DATA: dataDir, ISOLANE_HTTP_THREADS: "0" };
    try {
      await using server = await startServer({ functionsDir, env });
      assert.equal((await deploy(server, name, await bundleOf(versions[0]))).status, 201);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
      try {
        const head = `POST ${route} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n` +
          `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
        // The head and part of the body: the route takes the serving version (1) and waits for the rest.
        await conn.write(new TextEncoder().encode(head + body.slice(0, 5)));
        const swapped = await deploy(server, name, await bundleOf(versions[1]));
        assert.equal(swapped.status, 201);
        assert.equal((await swapped.json()).version, 2);
        await conn.write(new TextEncoder().encode(body.slice(5)));
        const answer = await readJsonAnswer(conn);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        check(answer.body);
      } finally {
        conn.close();
      }
    } finally {
      await Deno.remove(functionsDir, { recursive: true });
      await Deno.remove(dataDir, { recursive: true });
    }
  });
}
