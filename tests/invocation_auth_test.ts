/**
 * Who may call a function, from where, for real: invocation keys made and
 * revoked through the admin API, JWTs verified against a secret and against a
 * JWKS served from a loopback server, 401 before the body is read on /v1 and
 * /v2, auth off for folder functions in development, and CORS per function.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as jose from "jose";
import { Validator } from "@seriousme/openapi-schema-validator";
import { adminToken, bundleOf, deployOk } from "./support/bundles.ts";
import { errorOf, startServer, type TestServer } from "./support/server.ts";

const jwtSecret = "a-test-secret-of-at-least-32-characters!";
const issuer = "https://issuer.test";
const audience = "isolane-tests";
const allowed = "https://allowed.example";
const refused = "https://refused.example";
const admin = { authorization: `Bearer ${adminToken}` };

/** A function that greets, with the given extra options (source text). */
function greeter(options: string): string {
  return `import { defineFunction, z } from "isolane";

export default defineFunction({
  description: "Greets",
  input: z.object({ name: z.string() }),
  output: z.object({ message: z.string() }),
  maxBodyBytes: 1024,
  ${options}
  handler: ({ name }) => ({ message: "hello " + name }),
});
`;
}

/** A tensor function (served on /v2 too) with the given extra options. */
function doubler(options: string): string {
  return `import { defineFunction } from "isolane";

export default defineFunction({
  description: "Doubles a vector",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1] }],
  },
  ${options}
  handler: ({ x }) => ({ y: { data: Float32Array.from(x.data as Float32Array, (v) => v * 2), dims: x.dims } }),
});
`;
}

function post(server: TestServer, name: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${server.url}/v1/functions/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

function infer(server: TestServer, name: string, headers: Record<string, string> = {}) {
  return fetch(`${server.url}/v2/models/${name}/infer`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [2], data: [1, 2.5] }] }),
  });
}

async function expect401(response: Response): Promise<{ message: string; challenge: string }> {
  const challenge = response.headers.get("www-authenticate") ?? "";
  const e = await errorOf(response);
  assert.equal(e.status, 401);
  assert.equal(e.code, "unauthorized");
  assert.match(challenge, /^Bearer realm="isolane"/);
  return { message: e.message, challenge };
}

async function greeting(response: Response): Promise<string> {
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.message;
}

function hsToken(
  claims: jose.JWTPayload,
  { secret = jwtSecret, expires = "5m" as string | number } = {},
): Promise<string> {
  return new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime(expires)
    .sign(new TextEncoder().encode(secret));
}

Deno.test("invocation auth: keys, JWTs (secret), /v2, CORS", async (t) => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  const dataDir = await Deno.makeTempDir({ prefix: "isolane-data-" });
  await Deno.mkdir(join(functionsDir, "guarded"));
  await Deno.writeTextFile(join(functionsDir, "guarded", "mod.ts"), greeter(`auth: "key",`));
  try {
    await using server = await startServer({
      functionsDir,
      env: {
        ISOLANE_ADMIN_TOKEN: adminToken,
        ISOLANE_DATA: dataDir,
        ISOLANE_JWT_SECRET: jwtSecret,
        ISOLANE_JWT_ISSUER: issuer,
        ISOLANE_JWT_AUDIENCE: audience,
      },
    });
    await deployOk(server, "keyed", { "mod.ts": greeter(`auth: "key",`) });
    await deployOk(server, "open", { "mod.ts": greeter("") });
    await deployOk(server, "signed", { "mod.ts": greeter(`auth: "jwt",`) });
    await deployOk(server, "doubler", { "mod.ts": doubler(`auth: "key", cors: { origins: ["${allowed}"] },`) });
    await deployOk(server, "web", {
      "mod.ts": greeter(
        `auth: "key", cors: { origins: ["${allowed}"], headers: ["content-type", "authorization"], credentials: true, maxAge: 600 },`,
      ),
    });

    let key = "";
    let keyId = "";
    await t.step("a key function answers 401 without a key, before reading the body", async () => {
      await expect401(await post(server, "keyed", { name: "ada" }));
      // Larger than the function's 1024-byte limit: refused for the missing key, not for the size.
      await expect401(await post(server, "keyed", { name: "x".repeat(4096) }));
      await expect401(await post(server, "guarded", { name: "ada" }));
      assert.equal(await greeting(await post(server, "open", { name: "ada" })), "hello ada");
    });

    await t.step("keys are made with the admin token, shown once, stored hashed", async () => {
      const denied = await errorOf(await fetch(`${server.url}/v1/functions/keyed/keys`, { method: "POST" }));
      assert.equal(denied.status, 401);
      const response = await fetch(`${server.url}/v1/functions/keyed/keys`, { method: "POST", headers: admin });
      assert.equal(response.status, 201);
      const created = await response.json();
      assert.match(created.key, /^isk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
      key = created.key;
      keyId = created.id;
      const listed = await (await fetch(`${server.url}/v1/functions/keyed/keys`, { headers: admin })).json();
      assert.deepEqual(listed.keys.map((k: { id: string }) => k.id), [keyId]);
      assert.equal(JSON.stringify(listed).includes(key), false);
      const stored = await Deno.readTextFile(join(dataDir, "keys", "keyed.json"));
      assert.equal(stored.includes(key.slice(17)), false);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
      assert.ok(stored.includes(Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")));
      const missing = await errorOf(
        await fetch(`${server.url}/v1/functions/nope/keys`, { method: "POST", headers: admin }),
      );
      assert.equal(missing.status, 404);
    });

    await t.step("no key is made for a function that takes none: 409 naming its auth, nothing stored", async () => {
      for (const [name, auth] of [["open", "none"], ["signed", "jwt"]]) {
        const refusal = await fetch(`${server.url}/v1/functions/${name}/keys`, { method: "POST", headers: admin });
        const body = await refusal.json();
        assert.equal(refusal.status, 409, JSON.stringify(body));
        assert.equal(body.error.code, "conflict");
        assert.deepEqual(body.error.details, { auth });
        assert.match(body.error.message, new RegExp(`auth is "${auth}".*auth: "key"`));
        const listed = await (await fetch(`${server.url}/v1/functions/${name}/keys`, { headers: admin })).json();
        assert.deepEqual(listed.keys, []);
        await assert.rejects(Deno.stat(join(dataDir, "keys", `${name}.json`)), Deno.errors.NotFound);
      }
    });

    await t.step("the key calls its function; a wrong key or another function's is refused", async () => {
      assert.equal(
        await greeting(await post(server, "keyed", { name: "bo" }, { authorization: `Bearer ${key}` })),
        "hello bo",
      );
      const wrong = await expect401(
        await post(server, "keyed", { name: "bo" }, { authorization: `Bearer ${key.slice(0, -2)}xx` }),
      );
      assert.match(wrong.challenge, /error="invalid_token"/);
      await expect401(await post(server, "guarded", { name: "bo" }, { authorization: `Bearer ${key}` }));
      await expect401(await post(server, "keyed", { name: "bo" }, { authorization: key }));
      // With the key, the same oversized body is refused for its size: the key check came first above.
      const large = await errorOf(
        await post(server, "keyed", { name: "x".repeat(4096) }, { authorization: `Bearer ${key}` }),
      );
      assert.equal(large.status, 413);
    });

    await t.step("a revoked key is refused; revoking it again is 404", async () => {
      const revoke = () =>
        fetch(`${server.url}/v1/functions/keyed/keys/${keyId}`, { method: "DELETE", headers: admin });
      assert.deepEqual(await (await revoke()).json(), { name: "keyed", id: keyId, revoked: true });
      await expect401(await post(server, "keyed", { name: "cy" }, { authorization: `Bearer ${key}` }));
      assert.equal((await errorOf(await revoke())).status, 404);
    });

    await t.step("JWTs: signed with the secret, issuer and audience pass; anything else is 401", async () => {
      const good = await hsToken({ sub: "user-1", iss: issuer, aud: audience });
      assert.equal(
        await greeting(await post(server, "signed", { name: "dee" }, { authorization: `Bearer ${good}` })),
        "hello dee",
      );
      await expect401(await post(server, "signed", { name: "dee" }));
      const cases: [string, RegExp][] = [
        [
          await hsToken({ iss: issuer, aud: audience }, { secret: "another-secret-of-at-least-32-characters" }),
          /signature/,
        ],
        [await hsToken({ iss: issuer, aud: audience }, { expires: Math.floor(Date.now() / 1000) - 60 }), /"exp"/],
        [await hsToken({ iss: issuer, aud: "someone-else" }), /"aud"/],
        [await hsToken({ iss: "https://other.test", aud: audience }), /"iss"/],
        ["not.a.jwt", /JWT|JWS|Invalid/i],
      ];
      for (const [token, reason] of cases) {
        const refusal = await expect401(
          await post(server, "signed", { name: "dee" }, { authorization: `Bearer ${token}` }),
        );
        assert.match(refusal.message, reason);
        assert.match(refusal.challenge, /error="invalid_token"/);
      }
    });

    await t.step("the OpenAPI document and the function's info say who may call", async () => {
      const doc = await (await fetch(`${server.url}/openapi.json`)).json();
      const validation = await new Validator().validate(doc);
      assert.equal(validation.valid, true, JSON.stringify(validation.errors));
      assert.deepEqual(doc.paths["/v1/functions/keyed"].post.security, [{ invocationKey: [] }]);
      assert.deepEqual(doc.paths["/v1/functions/signed"].post.security, [{ jwt: [] }]);
      assert.equal(doc.paths["/v1/functions/open"].post.security, undefined);
      assert.ok(doc.paths["/v1/functions/keyed"].post.responses["401"]);
      const info = await (await fetch(`${server.url}/v1/functions/web`)).json();
      assert.equal(info.auth, "key");
      assert.deepEqual(info.cors.origins, [allowed]);
    });

    await t.step("/v2 infer: 401 in the protocol's shape, then 200 with a key", async () => {
      const response = await infer(server, "doubler");
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer /);
      const body = await response.json();
      assert.deepEqual(Object.keys(body), ["error"]);
      assert.equal(typeof body.error, "string");
      const made = await (await fetch(`${server.url}/v1/functions/doubler/keys`, { method: "POST", headers: admin }))
        .json();
      const ok = await infer(server, "doubler", { authorization: `Bearer ${made.key}` });
      const answer = await ok.json();
      assert.equal(ok.status, 200, JSON.stringify(answer));
      assert.deepEqual(answer.outputs[0].data, [2, 5]);
    });

    await t.step("CORS preflight: the allowed origin gets the function's policy, a refused one none", async () => {
      const preflight = (origin: string, path = "/v1/functions/web") =>
        fetch(`${server.url}${path}`, {
          method: "OPTIONS",
          headers: {
            origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization",
          },
        });
      const yes = await preflight(allowed);
      await yes.body?.cancel();
      assert.equal(yes.status, 204);
      assert.equal(yes.headers.get("access-control-allow-origin"), allowed);
      assert.equal(yes.headers.get("access-control-allow-methods"), "POST");
      assert.equal(yes.headers.get("access-control-allow-headers"), "content-type,authorization");
      assert.equal(yes.headers.get("access-control-allow-credentials"), "true");
      assert.equal(yes.headers.get("access-control-max-age"), "600");
      const no = await preflight(refused);
      await no.body?.cancel();
      assert.equal(no.headers.get("access-control-allow-origin"), null);
      const off = await preflight(allowed, "/v1/functions/open");
      await off.body?.cancel();
      assert.equal(off.status, 204);
      assert.equal(off.headers.get("access-control-allow-origin"), null);
      assert.equal(off.headers.get("access-control-allow-methods"), null);
      const v2 = await preflight(allowed, "/v2/models/doubler/infer");
      await v2.body?.cancel();
      assert.equal(v2.status, 204);
      assert.equal(v2.headers.get("access-control-allow-origin"), allowed);
    });

    await t.step(
      "CORS on calls: the allowed origin may read the answer (and a 401), a refused one may not",
      async () => {
        const made = await (await fetch(`${server.url}/v1/functions/web/keys`, { method: "POST", headers: admin }))
          .json();
        const withKey = { authorization: `Bearer ${made.key}` };
        const yes = await post(server, "web", { name: "eve" }, { origin: allowed, ...withKey });
        assert.equal(yes.headers.get("access-control-allow-origin"), allowed);
        assert.equal(yes.headers.get("access-control-allow-credentials"), "true");
        assert.equal(await greeting(yes), "hello eve");
        const no = await post(server, "web", { name: "eve" }, { origin: refused, ...withKey });
        assert.equal(no.headers.get("access-control-allow-origin"), null);
        await no.body?.cancel();
        const unauthorized = await post(server, "web", { name: "eve" }, { origin: allowed });
        assert.equal(unauthorized.headers.get("access-control-allow-origin"), allowed);
        await expect401(unauthorized);
        const off = await post(server, "open", { name: "eve" }, { origin: allowed });
        assert.equal(off.headers.get("access-control-allow-origin"), null);
        assert.equal(await greeting(off), "hello eve");
        const v2 = await infer(server, "doubler", { origin: allowed });
        assert.equal(v2.headers.get("access-control-allow-origin"), allowed);
        assert.equal(v2.status, 401);
        await v2.body?.cancel();
      },
    );
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("invocation auth: JWTs verified against a JWKS served from a loopback server", async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair("ES256");
  const other = await jose.generateKeyPair("ES256");
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: "test-key", alg: "ES256", use: "sig" };
  let fetches = 0;
  await using jwks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    fetches++;
    return Response.json({ keys: [jwk] });
  });
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  try {
    await using server = await startServer({
      functionsDir,
      env: { ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_JWKS_URL: `http://127.0.0.1:${jwks.addr.port}/jwks.json` },
    });
    await deployOk(server, "signed", { "mod.ts": greeter(`auth: "jwt",`) });
    const sign = (key: Parameters<jose.SignJWT["sign"]>[0], kid = "test-key") =>
      new jose.SignJWT({ sub: "user-2" }).setProtectedHeader({ alg: "ES256", kid }).setExpirationTime("5m").sign(key);
    const good = await sign(privateKey);
    assert.equal(
      await greeting(await post(server, "signed", { name: "fay" }, { authorization: `Bearer ${good}` })),
      "hello fay",
    );
    assert.equal(
      await greeting(await post(server, "signed", { name: "gus" }, { authorization: `Bearer ${good}` })),
      "hello gus",
    );
    assert.equal(fetches, 1, "jose caches the key set");
    await expect401(
      await post(server, "signed", { name: "fay" }, { authorization: `Bearer ${await sign(other.privateKey)}` }),
    );
    // No secret is configured, so an HS256 token cannot pass.
    await expect401(
      await post(server, "signed", { name: "fay" }, {
        authorization: `Bearer ${await hsToken({ sub: "x" })}`,
      }),
    );
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
  }
});

Deno.test("invocation auth: off for folder functions in development, on for deployed ones", async () => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  await Deno.mkdir(join(functionsDir, "guarded"));
  await Deno.writeTextFile(join(functionsDir, "guarded", "mod.ts"), greeter(`auth: "key",`));
  try {
    // --dev-admin is what `deno task dev` passes: the admin API for loopback clients, no invocation auth on folders.
    await using server = await startServer({ functionsDir, args: ["--dev-admin"] });
    await server.waitForLog((l) => l.msg === "invocation auth off for folder functions (development)");
    assert.equal(await greeting(await post(server, "guarded", { name: "hal" })), "hello hal");
    const deployed = await fetch(`${server.url}/v1/functions/keyed`, {
      method: "PUT",
      headers: { "content-type": "application/gzip" },
      body: await bundleOf({ "mod.ts": greeter(`auth: "key",`) }),
    });
    assert.equal(deployed.status, 201, await deployed.text());
    await expect401(await post(server, "keyed", { name: "hal" }));
    const jwt = await fetch(`${server.url}/v1/functions/signed`, {
      method: "PUT",
      headers: { "content-type": "application/gzip" },
      body: await bundleOf({ "mod.ts": greeter(`auth: "jwt",`) }),
    });
    assert.equal(jwt.status, 201, await jwt.text());
    const unconfigured = await errorOf(await post(server, "signed", { name: "hal" }));
    assert.equal(unconfigured.status, 503);
    assert.match(unconfigured.message, /ISOLANE_JWT_SECRET/);
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
  }
});
