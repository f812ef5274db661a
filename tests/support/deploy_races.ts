/**
 * Deploy races shared by the local-store and PostgreSQL-store tests: two
 * deploys of one name at once, rollback and delete against a deploy, many
 * rounds each. Each takes two base URLs (one instance twice, or two instances
 * of one shared store) and asserts what the instances then say and serve.
 * @module
 */
import assert from "node:assert/strict";
import { bundleOf } from "./bundles.ts";

export { bundleOf };
import { greeterModule } from "./greeter.ts";
import { rawTarGz } from "./raw_tar.ts";

/** Headers of an admin request. */
export type AdminHeaders = Record<string, string>;

/** `PUT /v1/functions/:name` with a bundle. */
export function deploy(
  url: string,
  name: string,
  bundle: Uint8Array<ArrayBuffer>,
  headers: AdminHeaders,
): Promise<Response> {
  return fetch(`${url}/v1/functions/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/gzip", ...headers },
    body: bundle,
    // A deploy that hangs fails the test instead of stalling the run.
    signal: AbortSignal.timeout(120_000),
  });
}

/** Deploys a greeter answering `greeting`; returns the acknowledged version (asserts 201). */
export async function deployGreeter(url: string, name: string, greeting: string, headers: AdminHeaders) {
  const response = await deploy(url, name, await bundleOf({ "mod.ts": greeterModule(greeting) }), headers);
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  return body.version as number;
}

/** The greeting a function answers with now. */
export async function greetingOf(url: string, name: string): Promise<string> {
  const response = await fetch(`${url}/v1/functions/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "x" }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return String(body.message).replace(/ x$/, "");
}

/** `GET /v1/functions/:name/versions`: `null` when the function does not exist (404). */
export async function versionsOf(url: string, name: string): Promise<{ current: number; versions: number[] } | null> {
  const response = await fetch(`${url}/v1/functions/${name}/versions`);
  const body = await response.json();
  if (response.status === 404) return null;
  assert.equal(response.status, 200, JSON.stringify(body));
  return { current: body.current, versions: body.versions.map((v: { version: number }) => v.version) };
}

/** The version a function serves on an instance (`GET /v1/functions/:name`), `null` if unknown there. */
export async function servingVersion(url: string, name: string): Promise<number | null> {
  const response = await fetch(`${url}/v1/functions/${name}`);
  const body = await response.json();
  return response.status === 404 ? null : body.version ?? null;
}

/**
 * Deploys that must be refused, each with the status it must get: a JSON
 * content type (415), a bundle over `maxBundleBytes` (413), and three bundles
 * that fail their checks or do not load (422). Each is a thunk, sent in turn.
 */
export async function rejectedBundles(
  url: string,
  name: string,
  headers: AdminHeaders,
  maxBundleBytes: number,
): Promise<[string, () => Promise<Response>, number][]> {
  const good = await bundleOf({ "mod.ts": greeterModule("x") });
  // Random bytes do not compress, so the bundle is over the limit (getRandomValues fills 64 KiB a call).
  const noise = new Uint8Array(maxBundleBytes + 65536);
  for (let i = 0; i < noise.length; i += 65536) crypto.getRandomValues(noise.subarray(i, i + 65536));
  const big = await bundleOf({ "mod.ts": greeterModule("x"), "blob.bin": noise });
  const mod = { path: "mod.ts", content: greeterModule("x") };
  const longName = await rawTarGz([mod, { path: `assets/${"n".repeat(300)}`, content: "x" }]);
  const fileInFile = await rawTarGz([mod, { path: "assets", content: "x" }, {
    path: "assets/labels.txt",
    content: "y",
  }]);
  return [
    ["json", () => deploy(url, name, good, { ...headers, "content-type": "application/json" }), 415],
    ["over the size limit", () => deploy(url, name, big, headers), 413],
    ["not a tarball", () => deploy(url, name, new TextEncoder().encode("nope"), headers), 422],
    ["no mod.ts", async () => deploy(url, name, await bundleOf({ "lib/mod.ts": "export {};" }), headers), 422],
    ["does not import", async () => deploy(url, name, await bundleOf({ "mod.ts": "export default {;" }), headers), 422],
    // No file system holds these: node-tar's unpacking failed (ENAMETOOLONG, EEXIST), and that was a 500.
    ["a name of 300 bytes", () => deploy(url, name, longName, headers), 422],
    ["a file inside a file", () => deploy(url, name, fileInFile, headers), 422],
  ];
}

/** Options of the races. */
export interface RaceOptions {
  /** Two base URLs the two racers use (may be the same instance). */
  urls: [string, string];
  headers: AdminHeaders;
  rounds: number;
  /** Waits until every instance serves the store's current version (a shared store follows asynchronously). */
  settle(name: string): Promise<void>;
  /** Checks what the store keeps for `name` beyond the API (the local folder, say). */
  checkStorage?(name: string, listed: number[] | null): Promise<void>;
}

/** Two different bundles of one name deployed at once: both 201, distinct versions, both listed, the higher serves. */
export async function raceTwoDeploys(name: string, o: RaceOptions): Promise<void> {
  for (let round = 0; round < o.rounds; round++) {
    const [a, b] = await Promise.all([
      deployGreeter(o.urls[0], name, `a${round}`, o.headers),
      deployGreeter(o.urls[1], name, `b${round}`, o.headers),
    ]);
    assert.notEqual(a, b, `round ${round}: both deploys got version ${a}`);
    const listed = await versionsOf(o.urls[0], name);
    assert.ok(listed, `round ${round}: ${name} is gone`);
    assert.ok(listed.versions.includes(a) && listed.versions.includes(b), `round ${round}: ${JSON.stringify(listed)}`);
    assert.equal(listed.current, Math.max(a, b), `round ${round}: the later deploy serves`);
    await o.settle(name);
    const expected = a > b ? `a${round}` : `b${round}`;
    for (const url of o.urls) assert.equal(await greetingOf(url, name), expected, `round ${round} on ${url}`);
    await o.checkStorage?.(name, listed.versions);
  }
}

/** A rollback while a deploy runs: the acknowledged version stays listed, and what serves is what is current. */
export async function raceRollbackAndDeploy(name: string, o: RaceOptions): Promise<void> {
  await deployGreeter(o.urls[0], name, "base", o.headers);
  for (let round = 0; round < o.rounds; round++) {
    const [deployed, rolledBack] = await Promise.all([
      deployGreeter(o.urls[0], name, `r${round}`, o.headers),
      fetch(`${o.urls[1]}/v1/functions/${name}/rollback`, { method: "POST", headers: o.headers }),
    ]);
    const answer = await rolledBack.json();
    assert.ok(rolledBack.status === 200 || rolledBack.status === 409, JSON.stringify(answer));
    const listed = await versionsOf(o.urls[1], name);
    assert.ok(listed, `round ${round}: ${name} is gone`);
    assert.ok(listed.versions.includes(deployed), `round ${round}: acknowledged version ${deployed} lost`);
    assert.ok(listed.versions.includes(listed.current), `round ${round}: ${JSON.stringify(listed)}`);
    await o.settle(name);
    for (const url of o.urls) assert.equal(await servingVersion(url, name), listed.current, `round ${round} on ${url}`);
    await o.checkStorage?.(name, listed.versions);
  }
}

/**
 * A delete while a deploy runs. The two are serialised: either the delete came
 * last (the function is gone, on every instance) or the deploy did (its
 * acknowledged version serves). `order` says which completed last, from the
 * instances' logs.
 */
export async function raceDeleteAndDeploy(
  name: string,
  o: RaceOptions & { lastOf(name: string, round: number): Promise<"deploy" | "delete"> },
): Promise<void> {
  for (let round = 0; round < o.rounds; round++) {
    await deployGreeter(o.urls[0], name, `before${round}`, o.headers);
    const [deployed, deleted] = await Promise.all([
      deployGreeter(o.urls[0], name, `d${round}`, o.headers),
      fetch(`${o.urls[1]}/v1/functions/${name}`, { method: "DELETE", headers: o.headers }),
    ]);
    const answer = await deleted.json();
    assert.equal(deleted.status, 200, JSON.stringify(answer));
    await o.settle(name);
    const listed = await versionsOf(o.urls[1], name);
    if ((await o.lastOf(name, round)) === "deploy") {
      assert.ok(listed, `round ${round}: deployed last, yet ${name} is gone`);
      assert.ok(listed.versions.includes(deployed), `round ${round}: acknowledged version ${deployed} lost`);
      assert.equal(listed.current, deployed);
      for (const url of o.urls) assert.equal(await greetingOf(url, name), `d${round}`);
    } else {
      assert.equal(listed, null, `round ${round}: deleted last, yet ${JSON.stringify(listed)}`);
      for (const url of o.urls) assert.equal(await servingVersion(url, name), null);
    }
    await o.checkStorage?.(name, listed?.versions ?? null);
  }
}
