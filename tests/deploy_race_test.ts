/**
 * Issue 16 against the local folder store: deploys, rollbacks and deletes of
 * one name racing each other, many rounds; rejected bundles leave nothing on
 * disk; the development admin API refuses forged Host and cross-site Origin.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  bundleOf,
  deploy,
  deployGreeter,
  raceDeleteAndDeploy,
  type RaceOptions,
  raceRollbackAndDeploy,
  raceTwoDeploys,
  rejectedBundles,
  versionsOf,
} from "./support/deploy_races.ts";
import { errorOf, startServer, type TestServer } from "./support/server.ts";

const token = "race-admin-token-0123456789";
const headers = { authorization: `Bearer ${token}` };

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const item of Deno.readDir(dir)) names.push(item.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/** The local folder holds exactly the listed versions and meta.json, and no staging leftovers. */
function localStorage(dataDir: string) {
  return async (name: string, listed: number[] | null) => {
    if (listed === null) {
      await assert.rejects(Deno.stat(join(dataDir, "functions", name)), Deno.errors.NotFound, `${name} left on disk`);
    } else {
      const found = await entries(join(dataDir, "functions", name));
      assert.deepEqual(found, [...listed.map(String), "meta.json"].sort(), `${name} on disk`);
    }
    assert.deepEqual(await entries(join(dataDir, "staging")), [], "staging leftovers");
  };
}

/** Which of a deploy and a delete of `name` took effect last, from the instance's log (written under the name's lock). */
function lastOf(server: TestServer) {
  return (name: string) => {
    const line = server.logs.findLast((l) =>
      l.function === name && (l.msg === "function deployed" || l.msg === "function deleted")
    );
    return Promise.resolve(line?.msg === "function deleted" ? "delete" as const : "deploy" as const);
  };
}

Deno.test("local store: concurrent deploys, rollbacks and deletes of one name never lose an acknowledged version", async (t) => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  const dataDir = await Deno.makeTempDir({ prefix: "isolane-data-" });
  try {
    await using server = await startServer({
      functionsDir,
      env: { ISOLANE_ADMIN_TOKEN: token, ISOLANE_DATA: dataDir, ISOLANE_MAX_BUNDLE_BYTES: String(64 * 1024) },
    });
    const options: RaceOptions = {
      urls: [server.url, server.url],
      headers,
      rounds: 8,
      settle: () => Promise.resolve(),
      checkStorage: localStorage(dataDir),
    };

    await t.step("two deploys at once: both 201 with distinct versions, both listed (8 rounds)", async () => {
      await raceTwoDeploys("twins", options);
      assert.deepEqual((await versionsOf(server.url, "twins"))?.versions, Array.from({ length: 16 }, (_, i) => i + 1));
    });

    await t.step("rollback racing a deploy keeps the acknowledged version (8 rounds)", async () => {
      await raceRollbackAndDeploy("rolling", options);
    });

    await t.step("delete racing a deploy: whichever took effect last holds (8 rounds)", async () => {
      await raceDeleteAndDeploy("doomed", { ...options, lastOf: lastOf(server) });
    });

    await t.step("rejected bundles (415, 413, 422) leave nothing on disk", async () => {
      const cases = await rejectedBundles(server.url, "rejected", headers, 64 * 1024);
      for (const [what, send, status] of cases) {
        const e = await errorOf(await send());
        assert.equal(e.status, status, `${what}: ${e.message}`);
        await assert.rejects(
          Deno.stat(join(dataDir, "functions", "rejected")),
          Deno.errors.NotFound,
          `${what}: a folder was left`,
        );
        assert.equal(await versionsOf(server.url, "rejected"), null, what);
      }
      // Over an existing function, a rejected bundle changes nothing either.
      const before = await entries(join(dataDir, "functions", "twins"));
      assert.equal(
        (await errorOf(await deploy(server.url, "twins", new TextEncoder().encode("x"), headers))).status,
        422,
      );
      assert.equal(
        (await errorOf(await deploy(server.url, "twins", await bundleOf({ "mod.ts": "export default {;" }), headers)))
          .status,
        422,
      );
      assert.deepEqual(await entries(join(dataDir, "functions", "twins")), before);
      assert.deepEqual(await entries(join(dataDir, "staging")), []);
    });
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** One HTTP/1.1 request over a raw socket, so that `Host` can be anything. */
async function rawRequest(
  url: string,
  { method, path, headers }: { method: string; path: string; headers: Record<string, string> },
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const lines = [`${method} ${path} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  lines.push("content-length: 0", "connection: close", "", "");
  await conn.write(new TextEncoder().encode(lines.join("\r\n")));
  const text = await new Response(conn.readable).text();
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

Deno.test("dev admin (--dev-admin, no token): refuses a non-loopback Host and a cross-site Origin", async () => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  try {
    await using server = await startServer({ functionsDir, args: ["--dev-admin"] });
    for (const greeting of ["one", "two", "three", "four"]) await deployGreeter(server.url, "dev", greeting, {});
    const port = new URL(server.url).port;
    const rollback = (h: Record<string, string>) =>
      rawRequest(server.url, { method: "POST", path: "/v1/functions/dev/rollback", headers: h });

    for (
      const host of ["evil.example", `evil.example:${port}`, "127.0.0.1.nip.io", "10.0.0.1", "localhost.evil.example"]
    ) {
      const { status, body } = await rollback({ host });
      assert.equal(status, 403, host);
      assert.equal(JSON.parse(body).error.code, "untrusted_origin", host);
      assert.match(JSON.parse(body).error.message, /DNS rebinding/);
    }
    for (const origin of ["https://evil.example", "http://127.0.0.1.evil.example", "null", "http://10.0.0.1:8000"]) {
      const { status, body } = await rollback({ host: `127.0.0.1:${port}`, origin });
      assert.equal(status, 403, origin);
      assert.equal(JSON.parse(body).error.code, "untrusted_origin", origin);
      assert.match(JSON.parse(body).error.message, /cross-site/);
    }
    // Nothing refused above changed anything: version 4 still serves.
    assert.equal((await versionsOf(server.url, "dev"))?.current, 4);
    // Loopback names and loopback origins pass.
    for (
      const [host, origin] of [[`localhost:${port}`, undefined], [`[::1]:${port}`, `http://localhost:5173`], [
        `127.0.0.1:${port}`,
        `http://127.0.0.1:${port}`,
      ]] as const
    ) {
      const { status, body } = await rollback({ host, ...(origin ? { origin } : {}) });
      assert.equal(status, 200, `${host} ${origin}: ${body}`);
    }
    assert.equal((await versionsOf(server.url, "dev"))?.current, 1);
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
  }
});
