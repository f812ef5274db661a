/**
 * Scale-out for real: three isolane instances on loopback share one
 * PostgreSQL function store (a throwaway cluster made with initdb/pg_ctl).
 * Deploys, rollbacks and deletes through any instance reach the others; a
 * killed instance loses no request of a retrying client; a restarted one
 * comes back at the store's versions; with the store down, serving goes on
 * from the cache, deploys answer 503 and /readyz says why.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { greeterModule } from "./support/greeter.ts";
import {
  bundleOf,
  deploy,
  deployGreeter,
  greetingOf,
  raceDeleteAndDeploy,
  type RaceOptions,
  raceRollbackAndDeploy,
  raceTwoDeploys,
  rejectedBundles,
  servingVersion,
  versionsOf,
} from "./support/deploy_races.ts";
import { findPostgresBin, startPostgres } from "./support/postgres.ts";
import { errorOf, startServer, type TestServer } from "./support/server.ts";

const token = "store-admin-token-0123456789";
const headers = { authorization: `Bearer ${token}` };
const bin = await findPostgresBin();
if (!bin) console.log("store_postgres_test: skipped, no PostgreSQL binaries found (apt-get install postgresql)");

/** Resolves when `server` logs that it follows the store to `version` of `name`, after the log line `from`; answers when. */
async function followed(server: TestServer, name: string, version: number, from: number): Promise<number> {
  await server.waitForLog((l) =>
    server.logs.indexOf(l) >= from && l.msg === "function follows the store" && l.function === name &&
    l.version === version
  );
  return performance.now();
}

/** Waits until every instance serves the store's current version of `name` (or nothing, once deleted). */
async function settle(servers: TestServer[], name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (true) {
    const want = (await versionsOf(servers[0].url, name))?.current ?? null;
    const serving = await Promise.all(servers.map((s) => servingVersion(s.url, name)));
    if (serving.every((v) => v === want)) return;
    if (Date.now() > deadline) throw new Error(`${name}: store at ${want}, instances at ${serving}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

Deno.test({
  name: "postgres store: three instances share deploys, rollbacks, deletes; crash, restart and store outage",
  ignore: !bin,
  async fn(t) {
    await using pg = await startPostgres(bin!);
    const sql = postgres(pg.url, { max: 2, onnotice: () => {} });
    const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
    const dataC = await Deno.makeTempDir({ prefix: "isolane-data-c-" });
    const dataA = await Deno.makeTempDir({ prefix: "isolane-data-a-" });
    const maxBundleBytes = 32 * 1024 * 1024;
    const env = {
      ISOLANE_STORE: pg.url,
      ISOLANE_ADMIN_TOKEN: token,
      ISOLANE_STORE_RECONCILE_MS: "1000",
      ISOLANE_MAX_BUNDLE_BYTES: String(maxBundleBytes),
    };
    const servers: TestServer[] = [];
    try {
      // Started together: the schema migration runs once, under its lock.
      const [a, b, c] = await Promise.all([
        startServer({ functionsDir, env: { ...env, ISOLANE_DATA: dataA } }),
        startServer({ functionsDir, env }),
        startServer({ functionsDir, env: { ...env, ISOLANE_DATA: dataC } }),
      ]);
      servers.push(a, b, c);
      const [{ applied }] = await sql`select count(*)::int as applied from isolane_schema`;
      assert.equal(applied, 1);

      let last = 0;
      await t.step("deploy through A: B and C serve the new version (bound measured)", async () => {
        const delays: number[] = [];
        for (let round = 1; round <= 6; round++) {
          const marks = [b.logs.length, c.logs.length];
          const version = await deployGreeter(a.url, "greeter", `hello${round}`, headers);
          const acknowledged = performance.now();
          assert.equal(version, round);
          const seen = await Promise.all([
            followed(b, "greeter", version, marks[0]),
            followed(c, "greeter", version, marks[1]),
          ]);
          delays.push(...seen.map((at) => at - acknowledged));
          for (const s of [a, b, c]) assert.equal(await greetingOf(s.url, "greeter"), `hello${round}`);
          last = version;
        }
        // A keeps what serves and what it replaced, not every version it ever unpacked.
        assert.deepEqual(
          [...Deno.readDirSync(`${dataA}/cache/greeter`)].map((e) => Number(e.name.split("-")[0])).sort(),
          [last - 1, last],
        );
        console.log(
          `propagation (201 on A -> serving on B and C, ${delays.length} samples): median ${
            percentile(delays, 50).toFixed(0)
          } ms, max ${Math.max(...delays).toFixed(0)} ms`,
        );
      });

      await t.step("a bundle of several 8 MiB chunks reaches the others intact", async () => {
        const marks = [b.logs.length, c.logs.length];
        // Random bytes do not compress: the bundle stays about 20 MiB (getRandomValues fills at most 64 KiB a call).
        const big = new Uint8Array(20 * 1024 * 1024);
        for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
        const response = await deploy(
          a.url,
          "big",
          await bundleOf({ "mod.ts": greeterModule("big"), "blob.bin": big }),
          headers,
        );
        assert.equal(response.status, 201, await response.text());
        const [{ chunks, bytes }] = await sql`select chunks, bytes from isolane_versions where name = 'big'`;
        assert.ok(chunks >= 3 && Number(bytes) > 16 * 1024 * 1024, `${chunks} chunks, ${bytes} bytes`);
        await Promise.all([followed(b, "big", 1, marks[0]), followed(c, "big", 1, marks[1])]);
        for (const s of [b, c]) assert.equal(await greetingOf(s.url, "big"), "big");
      });

      await t.step("twelve functions deployed at once through one instance all succeed", async () => {
        const names = Array.from({ length: 12 }, (_, i) => `many${i}`);
        const versions = await Promise.all(names.map((name) => deployGreeter(b.url, name, name, headers)));
        assert.deepEqual(versions, names.map(() => 1));
        for (const name of names) {
          assert.equal(await greetingOf(b.url, name), name);
          const deleted = await fetch(`${b.url}/v1/functions/${name}`, { method: "DELETE", headers });
          assert.equal(deleted.status, 200, await deleted.text());
        }
      });

      await t.step("roll back through C: A and B follow", async () => {
        const marks = [a.logs.length, b.logs.length];
        const response = await fetch(`${c.url}/v1/functions/greeter/rollback`, { method: "POST", headers });
        assert.deepEqual(await response.json(), { name: "greeter", version: last - 1, previous: last });
        await Promise.all([followed(a, "greeter", last - 1, marks[0]), followed(b, "greeter", last - 1, marks[1])]);
        for (const s of [a, b, c]) assert.equal(await greetingOf(s.url, "greeter"), `hello${last - 1}`);
      });

      const options: RaceOptions = {
        urls: [a.url, b.url],
        headers,
        rounds: 5,
        settle: (name) => settle([a, b, c], name),
        async checkStorage(name, listed) {
          const rows = await sql`select v.version, v.chunks, v.bytes, count(c.seq)::int as stored,
            coalesce(sum(length(c.data)), 0)::int as total
            from isolane_versions v left join isolane_chunks c using (name, version)
            where v.name = ${name} group by v.version, v.chunks, v.bytes order by v.version`;
          assert.deepEqual(rows.map((r) => r.version), listed ?? [], `${name} in the store`);
          for (const r of rows) {
            assert.deepEqual([r.stored, r.total], [r.chunks, Number(r.bytes)], `${name}@${r.version}`);
          }
        },
      };

      await t.step("concurrent deploys through A and B get distinct versions, both kept (5 rounds)", async () => {
        await raceTwoDeploys("twins", options);
        assert.deepEqual((await versionsOf(c.url, "twins"))?.versions, Array.from({ length: 10 }, (_, i) => i + 1));
      });

      await t.step(
        "rollback through B racing a deploy through A keeps the acknowledged version (5 rounds)",
        async () => {
          await raceRollbackAndDeploy("rolling", options);
        },
      );

      await t.step(
        "delete through B racing a deploy through A: whichever took effect last holds (5 rounds)",
        async () => {
          await raceDeleteAndDeploy("doomed", {
            ...options,
            lastOf(name) {
              // Each is logged under the name's lock, which the store holds across instances: the later line took effect last.
              const find = (s: TestServer, msg: string) =>
                s.logs.findLast((l) => l.function === name && l.msg === msg)?.time as string | undefined;
              const deployed = find(a, "function deployed") ?? "";
              const deleted = find(b, "function deleted") ?? "";
              return Promise.resolve(deleted > deployed ? "delete" : "deploy");
            },
          });
          await settle([a, b, c], "doomed");
        },
      );

      await t.step("rejected bundles (415, 413, 422) leave nothing in the store or the cache", async () => {
        for (const [what, send, status] of await rejectedBundles(a.url, "rejected", headers, maxBundleBytes)) {
          const e = await errorOf(await send());
          assert.equal(e.status, status, `${what}: ${e.message}`);
          const rows = await sql`select name from isolane_functions where name = 'rejected'
            union all select name from isolane_versions where name = 'rejected'
            union all select name from isolane_chunks where name = 'rejected'`;
          assert.equal(rows.length, 0, `${what}: rows left in the store`);
          await assert.rejects(Deno.stat(`${dataA}/cache/rejected`), Deno.errors.NotFound, `${what}: cache left`);
        }
        // Over an existing function a refused bundle changes nothing either; numbering goes on without a gap.
        const before = await versionsOf(a.url, "twins");
        assert.equal(
          (await errorOf(await deploy(a.url, "twins", await bundleOf({ "mod.ts": "export default {;" }), headers)))
            .status,
          422,
        );
        assert.deepEqual(await versionsOf(a.url, "twins"), before);
      });

      await t.step("SIGKILL one instance mid-load: a retrying client loses no request", async () => {
        const urls = [a.url, b.url, c.url];
        const total = 300;
        let next = 0;
        let done = 0;
        let retries = 0;
        let killedAt = -1;
        const afterKill = new Map<string, number>();
        const expected = await greetingOf(a.url, "greeter");
        async function one(i: number): Promise<void> {
          for (let attempt = 0;; attempt++) {
            const url = urls[(i + attempt) % urls.length];
            try {
              assert.equal(await greetingOf(url, "greeter"), expected);
              if (killedAt >= 0) afterKill.set(url, (afterKill.get(url) ?? 0) + 1);
              return;
            } catch (error) {
              if (!(error instanceof TypeError) || attempt > 5) throw error;
              retries++;
            }
          }
        }
        await Promise.all(Array.from({ length: 8 }, async () => {
          while (next < total) {
            const i = next++;
            await one(i);
            if (++done === 100) {
              killedAt = done;
              b.kill("SIGKILL");
            }
          }
        }));
        const status = await b.stop();
        assert.equal(status.signal, "SIGKILL");
        assert.equal(done, total);
        assert.ok((afterKill.get(a.url) ?? 0) > 0 && (afterKill.get(c.url) ?? 0) > 0, JSON.stringify([...afterKill]));
        console.log(`SIGKILL mid-load: ${total}/${total} answered, ${retries} retried after connection errors`);
      });

      await t.step("a restarted instance comes back at the store's current versions", async () => {
        const b2 = await startServer({ functionsDir, env });
        servers.push(b2);
        for (const name of ["greeter", "twins", "rolling"]) {
          const { current } = (await versionsOf(a.url, name))!;
          assert.equal(await servingVersion(b2.url, name), current, name);
          assert.equal(await greetingOf(b2.url, name), await greetingOf(a.url, name));
        }
        const ready = await fetch(`${b2.url}/readyz`);
        assert.equal(ready.status, 200, JSON.stringify(await ready.clone().json()));
        assert.deepEqual((await ready.json()).store, { kind: "postgres", reachable: true });
      });

      await t.step("a damaged version in the store fails its hash check; the instance says it is behind", async () => {
        const b2 = servers[3];
        const { current, versions } = (await versionsOf(a.url, "greeter"))!;
        // A keeps the version it replaced in its cache; b2 started later and has only the current one.
        const cachedOnA = [...Deno.readDirSync(`${dataA}/cache/greeter`)].map((e) => Number(e.name.split("-")[0]));
        const older = cachedOnA.find((v) => v !== current)!;
        const uncached = versions.find((v) => !cachedOnA.includes(v))!;
        assert.ok(older !== undefined && uncached !== undefined, JSON.stringify({ cachedOnA, versions }));
        for (const version of [older, uncached]) {
          await sql`update isolane_chunks set data = ${new TextEncoder().encode("damaged")}
            where name = 'greeter' and version = ${version}`;
        }
        // An instance that must fetch a damaged version refuses it: nothing changes.
        const refusedOnA = await errorOf(
          await fetch(`${a.url}/v1/functions/greeter/rollback`, {
            method: "POST",
            headers,
            body: JSON.stringify({ version: uncached }),
          }),
        );
        assert.equal(refusedOnA.status, 500);
        assert.match(refusedOnA.message, /damaged: SHA-256/);
        assert.equal((await versionsOf(a.url, "greeter"))?.current, current);
        // One it has checked before serves; b2 must fetch it, and refuses it.
        const mark = b2.logs.length;
        const back = await fetch(`${a.url}/v1/functions/greeter/rollback`, {
          method: "POST",
          headers,
          body: JSON.stringify({ version: older }),
        });
        assert.equal(back.status, 200, await back.text());
        const refused = await b2.waitForLog((l) =>
          b2.logs.indexOf(l) >= mark && l.msg === "cannot serve the store's version" && l.function === "greeter"
        );
        assert.match(String(refused.reason), /damaged: SHA-256/);
        const readyz = await fetch(`${b2.url}/readyz`);
        assert.equal(readyz.status, 503);
        assert.deepEqual((await readyz.json()).behind, { greeter: { serving: current, store: older } });
        assert.equal(await servingVersion(b2.url, "greeter"), current);
        const forward = await fetch(`${a.url}/v1/functions/greeter/rollback`, {
          method: "POST",
          headers,
          body: JSON.stringify({ version: current }),
        });
        assert.equal(forward.status, 200, await forward.text());
        await settle([a, c, b2], "greeter");
        // b2 served `current` all along, so the settle above may return before its next sync sees the store back at
        // it; it is ready again once that sync has cleared what it was behind by.
        const deadline = Date.now() + 30_000;
        let readyAgain = await fetch(`${b2.url}/readyz`);
        while (readyAgain.status !== 200 && Date.now() < deadline) {
          await readyAgain.body?.cancel();
          await new Promise((resolve) => setTimeout(resolve, 20));
          readyAgain = await fetch(`${b2.url}/readyz`);
        }
        assert.equal(readyAgain.status, 200, await readyAgain.text());
      });

      await t.step("ISOLANE_SERVE_FUNCTIONS: an instance serves only the functions named", async () => {
        await using only = await startServer({ functionsDir, env: { ...env, ISOLANE_SERVE_FUNCTIONS: "twins" } });
        assert.equal(await greetingOf(only.url, "twins"), await greetingOf(a.url, "twins"));
        assert.equal(await servingVersion(only.url, "greeter"), null);
        const ready = await (await fetch(`${only.url}/readyz`)).json();
        assert.deepEqual([ready.ready, Object.keys(ready.functions)], [true, ["twins"]]);
        // A deploy through it is checked there, then served by the others only.
        const mark = a.logs.length;
        const version = await deployGreeter(only.url, "solo", "solo", headers);
        await followed(a, "solo", version, mark);
        assert.equal(await greetingOf(a.url, "solo"), "solo");
        assert.equal(await servingVersion(only.url, "solo"), null);
      });

      await t.step(
        "store down: serving goes on, deploys answer 503, /readyz says why; back up: all follow",
        async () => {
          const greeting = await greetingOf(a.url, "greeter");
          await c.stop();
          await pg.stop();
          assert.equal(await greetingOf(a.url, "greeter"), greeting);
          const refused = await errorOf(
            await fetch(`${a.url}/v1/functions/greeter`, {
              method: "PUT",
              headers: { ...headers, "content-type": "application/gzip" },
              body: new Uint8Array(
                await (await import("./support/deploy_races.ts")).bundleOf({ "mod.ts": "export {};" }),
              ),
            }),
          );
          assert.equal(refused.status, 503);
          assert.equal(refused.code, "store_unavailable");
          assert.match(refused.message, /function store \(PostgreSQL\) is unreachable/);
          let readyz: { store: { reachable: boolean; reason?: string } } | undefined;
          for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
            readyz = await (await fetch(`${a.url}/readyz`)).json();
            if (readyz?.store.reachable === false) break;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          assert.equal(readyz?.store.reachable, false, JSON.stringify(readyz));
          assert.match(readyz!.store.reason!, /unreachable.*serving from the local cache/);
          // An instance that starts while the store is down serves what it served before, from its cache.
          const c2 = await startServer({ functionsDir, env: { ...env, ISOLANE_DATA: dataC } });
          servers.push(c2);
          assert.equal(await greetingOf(c2.url, "greeter"), greeting);

          await pg.start();
          const marks = servers.map((s) => s.logs.length);
          const version = await deployGreeter(a.url, "greeter", "after the outage", headers);
          const b2 = servers[3];
          await Promise.all([followed(b2, "greeter", version, marks[3]), followed(c2, "greeter", version, marks[4])]);
          for (const s of [a, b2, c2]) assert.equal(await greetingOf(s.url, "greeter"), "after the outage");
        },
      );
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
      await sql.end({ timeout: 1 });
      await Deno.remove(functionsDir, { recursive: true });
      await Deno.remove(dataC, { recursive: true });
      await Deno.remove(dataA, { recursive: true });
    }
  },
});
