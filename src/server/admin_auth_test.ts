import assert from "node:assert/strict";
import { Hono } from "hono";
import { adminAuth, adminMode, isLoopbackHost, isLoopbackOrigin } from "./admin_auth.ts";
import { errorResponse } from "./error_response.ts";

function app(mode: ReturnType<typeof adminMode>) {
  const app = new Hono();
  app.onError(errorResponse);
  app.put("/admin", adminAuth(mode), (c) => c.json({ ok: true }));
  return app;
}

const from = (hostname: string) => ({ remoteAddr: { hostname, port: 40000, transport: "tcp" } });

Deno.test("adminMode: a token wins; without one, --dev-admin means loopback only; else off", () => {
  assert.deepEqual(adminMode({ adminToken: "t".repeat(16), devAdmin: true }), { kind: "token", token: "t".repeat(16) });
  assert.deepEqual(adminMode({ devAdmin: true }), { kind: "loopback" });
  assert.deepEqual(adminMode({ devAdmin: false }), { kind: "off" });
});

Deno.test("adminAuth in development serves loopback clients only", async () => {
  const dev = app({ kind: "loopback" });
  for (const address of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
    assert.equal((await dev.request("/admin", { method: "PUT" }, from(address))).status, 200, address);
  }
  for (const address of ["10.1.2.3", "192.168.0.7", "::ffff:10.0.0.1", "2001:db8::1"]) {
    const response = await dev.request("/admin", { method: "PUT" }, from(address));
    assert.equal(response.status, 403, address);
    assert.equal((await response.json()).error.code, "admin_disabled");
  }
});

Deno.test("adminAuth with a token accepts only that bearer token", async () => {
  const guarded = app({ kind: "token", token: "s3cret-s3cret-s3cret" });
  const put = (authorization?: string) =>
    guarded.request("/admin", { method: "PUT", headers: authorization ? { authorization } : {} }, from("10.1.2.3"));
  assert.equal((await put("Bearer s3cret-s3cret-s3cret")).status, 200);
  assert.equal((await put("bearer s3cret-s3cret-s3cret")).status, 200);
  for (const wrong of [undefined, "Bearer s3cret", "Basic s3cret-s3cret-s3cret", "Bearer s3cret-s3cret-s3creT"]) {
    const response = await put(wrong);
    assert.equal(response.status, 401, String(wrong));
    assert.match(response.headers.get("www-authenticate") ?? "", /Bearer/);
  }
});

Deno.test("loopback names and origins: localhost, 127.0.0.1 and [::1] with any port, nothing else", () => {
  for (const host of ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000", "LOCALHOST"]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of ["", "evil.example", "127.0.0.1.nip.io", "localhost.evil.example", "10.0.0.1", "::1", "[::2]"]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
  for (const origin of ["http://localhost:5173", "https://127.0.0.1", "http://[::1]:8000"]) {
    assert.equal(isLoopbackOrigin(origin), true, origin);
  }
  for (
    const origin of ["null", "https://evil.example", "file://", "http://127.0.0.1.evil.example", "chrome-extension://x"]
  ) {
    assert.equal(isLoopbackOrigin(origin), false, origin);
  }
});
