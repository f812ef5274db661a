import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";

Deno.test("parseConfig reads defaults, the environment and --watch", () => {
  const defaults = parseConfig({}, []);
  assert.equal(defaults.port, 8000);
  assert.equal(defaults.host, "127.0.0.1");
  assert.equal(defaults.watch, false);
  const set = parseConfig({ PORT: "9001", HOST: "0.0.0.0", ISOLANE_FUNCTIONS: "fns" }, ["--watch"]);
  assert.deepEqual([set.port, set.host, set.functionsDir, set.watch], [9001, "0.0.0.0", "fns", true]);
});

Deno.test("parseConfig says which setting is wrong", () => {
  assert.throws(() => parseConfig({ PORT: "eighty" }, []), /^ConfigError: Invalid configuration: PORT expected number/);
  assert.throws(() => parseConfig({ ISOLANE_LOG_LEVEL: "loud" }, []), /ISOLANE_LOG_LEVEL/);
  assert.throws(
    () => parseConfig({ ISOLANE_ADMIN_TOKEN: "short" }, []),
    (e: Error) => e.message === "Invalid configuration: ISOLANE_ADMIN_TOKEN must have at least 16 characters",
  );
});

Deno.test("parseConfig reads the function store URL and refuses other schemes", () => {
  assert.equal(parseConfig({}, []).store, undefined);
  const shared = parseConfig(
    { ISOLANE_STORE: "postgres://isolane@db:5432/isolane", ISOLANE_STORE_RECONCILE_MS: "500" },
    [],
  );
  assert.deepEqual([shared.store, shared.storeReconcileMs], ["postgres://isolane@db:5432/isolane", 500]);
  assert.throws(() => parseConfig({ ISOLANE_STORE: "mysql://db/isolane" }, []), /ISOLANE_STORE must be a postgres/);
});

Deno.test("parseConfig reads the JWT settings and refuses a short secret or a JWKS that is not a URL", () => {
  const set = parseConfig({
    ISOLANE_JWT_SECRET: "s".repeat(32),
    ISOLANE_JWKS_URL: "https://issuer.test/.well-known/jwks.json",
    ISOLANE_JWT_ISSUER: "https://issuer.test",
    ISOLANE_JWT_AUDIENCE: "api",
  }, []);
  assert.deepEqual([set.jwtSecret, set.jwksUrl, set.jwtIssuer, set.jwtAudience], [
    "s".repeat(32),
    "https://issuer.test/.well-known/jwks.json",
    "https://issuer.test",
    "api",
  ]);
  assert.throws(() => parseConfig({ ISOLANE_JWT_SECRET: "short" }, []), /ISOLANE_JWT_SECRET must have at least 32/);
  assert.throws(() => parseConfig({ ISOLANE_JWKS_URL: "not a url" }, []), /ISOLANE_JWKS_URL must be an http\(s\) URL/);
  assert.throws(() => parseConfig({ ISOLANE_JWKS_URL: "file:///etc/jwks.json" }, []), /ISOLANE_JWKS_URL/);
});

Deno.test("parseConfig reads ISOLANE_CUDA_SYNC and refuses another value, naming the variable and the choices", () => {
  assert.equal(parseConfig({}, []).cudaSync, "auto");
  for (const value of ["auto", "spin", "yield", "blocking"] as const) {
    assert.equal(parseConfig({ ISOLANE_CUDA_SYNC: value }, []).cudaSync, value);
  }
  for (const value of ["BLOCKING", "block", " spin", "1"]) {
    assert.throws(
      () => parseConfig({ ISOLANE_CUDA_SYNC: value }, []),
      /^ConfigError: Invalid configuration: ISOLANE_CUDA_SYNC .*"auto"\|"spin"\|"yield"\|"blocking"/,
    );
  }
});

Deno.test("parseConfig names each variable once in its message", () => {
  const messageOf = (env: Record<string, string>) => {
    try {
      parseConfig(env, []);
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error(`${JSON.stringify(env)} was accepted`);
  };
  assert.equal(
    messageOf({ ISOLANE_JWT_SECRET: "short" }),
    "Invalid configuration: ISOLANE_JWT_SECRET must have at least 32 characters (256 bits for HS256)",
  );
  assert.equal(
    messageOf({ ISOLANE_STORE: "mysql://db/isolane" }),
    "Invalid configuration: ISOLANE_STORE must be a postgres:// URL",
  );
  assert.equal(
    messageOf({ ISOLANE_JWKS_URL: "ftp://keys.test/jwks.json" }),
    "Invalid configuration: ISOLANE_JWKS_URL must be an http(s) URL",
  );
});
