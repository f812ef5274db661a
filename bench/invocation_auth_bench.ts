/**
 * What a function's `auth` costs per call, before the body is read: checking
 * a bearer key (SHA-256, constant-time compare against every key of the
 * function) and verifying an HS256 JWT with jose, as `InvocationAuth` does.
 * `deno bench --allow-all bench/invocation_auth_bench.ts`
 */
import * as jose from "jose";
import { InvocationKeys } from "../src/registry/invocation_keys.ts";

const dataDir = await Deno.makeTempDir({ prefix: "isolane-bench-" });
const keys = new InvocationKeys(dataDir);
const one = await keys.create("one");
for (let i = 0; i < 99; i++) await keys.create("hundred");
const last = await keys.create("hundred");
const secret = new TextEncoder().encode("a-bench-secret-of-at-least-32-characters");
const token = await new jose.SignJWT({ sub: "user" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h")
  .sign(secret);
globalThis.addEventListener("unload", () => Deno.removeSync(dataDir, { recursive: true }));

Deno.bench("key: verify against 1 key", { group: "auth", baseline: true }, async () => {
  if (await keys.verify("one", one.key) === null) throw new Error("refused");
});

Deno.bench("key: verify against 100 keys", { group: "auth" }, async () => {
  if (await keys.verify("hundred", last.key) === null) throw new Error("refused");
});

Deno.bench("jwt: verify an HS256 token (jose)", { group: "auth" }, async () => {
  await jose.jwtVerify(token, secret);
});
