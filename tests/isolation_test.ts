/**
 * Isolation: a timed-out or crashed isolate is replaced and its requests are
 * answered; other functions keep serving meanwhile; permissions hold.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { errorOf, startServer, until } from "./support/server.ts";

const fixtures = fileURLToPath(new URL("./fixtures/functions", import.meta.url));

for (const isolation of ["process", "worker"] as const) {
  Deno.test(`isolation (${isolation} hosts): timeouts, crashes and permissions`, async (t) => {
    await using server = await startServer({
      functionsDir: fixtures,
      env: {
        ISOLANE_TEST_SECRET: "s3cret",
        ISOLANE_ADMIN_TOKEN: "isolation-admin-token-0123",
        ISOLANE_ISOLATION: isolation,
      },
    });
    const info = await (await fetch(`${server.url}/v1/functions/snoop`)).json();
    assert.equal(info.isolates[0].isolation, isolation);
    assert.equal(typeof info.isolates[0].pid, isolation === "process" ? "number" : "undefined");

    await t.step("a stuck isolate gets 504, is respawned, and other functions keep serving meanwhile", async () => {
      const stuck = server.invoke("limits", { spinMs: 60_000 });
      await until(server, "limits", (info) => info.isolates[0].status === "busy");
      // While that isolate spins, another function answers at once.
      const echo = await server.invoke("echo", { message: "still here" });
      assert.equal(echo.status, 200);
      const e = await errorOf(await stuck);
      assert.equal(e.status, 504);
      await server.waitForLog((l) => l.msg === "isolate stopped" && l.function === "limits" && l.code === "timeout");
      await server.waitForLog((l) => l.msg === "isolate respawned" && l.function === "limits");
      const after = await server.invoke("limits", {});
      assert.equal(after.status, 200);
      const info = await (await fetch(`${server.url}/v1/functions/limits`)).json();
      assert.ok(info.isolates[0].restarts >= 1);
    });

    for (const fail of ["uncaught", "exit", "close"] as const) {
      await t.step(`an isolate that dies (${fail}) answers its request with 500 and is replaced`, async () => {
        const warm = await (await server.invoke("faults", { fail: "none" })).json();
        assert.ok(warm.calls >= 1);
        const e = await errorOf(await server.invoke("faults", { fail }));
        assert.equal(e.status, 500);
        assert.equal(e.code, "isolate_crashed");
        // The next request waits for the respawn and lands in a fresh isolate: its call counter starts over.
        const fresh = await server.invoke("faults", { fail: "none" });
        assert.equal(fresh.status, 200);
        assert.deepEqual(await fresh.json(), { calls: 1 });
      });
    }

    await t.step("a handler that never settles gets 504 and the isolate is replaced", async () => {
      const e = await errorOf(await server.invoke("faults", { fail: "hang_async" }));
      assert.equal(e.status, 504);
      assert.deepEqual(await (await server.invoke("faults", { fail: "none" })).json(), { calls: 1 });
    });

    await t.step("concurrent requests to a crashing function and a healthy one: each gets its own answer", async () => {
      const results = await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => server.invoke("echo", { message: `m${i}`, delayMs: 20 })),
        server.invoke("faults", { fail: "uncaught" }),
      ]);
      for (let i = 0; i < 6; i++) assert.deepEqual(await results[i].json(), { message: `m${i}` });
      assert.equal(results[6].status, 500);
    });

    const expectations: Record<string, RegExp> = {
      read_own: /^allowed$/,
      read_outside: /^denied: NotCapable/,
      read_etc: /^denied: NotCapable/,
      write_own: /^denied: NotCapable/,
      fetch: /^denied: NotCapable/,
      env: /^denied: NotCapable/,
      ffi: /^denied: NotCapable/,
      run: /^denied: NotCapable/,
      sys: /^denied: NotCapable/,
      addon: /^denied: NotCapable/,
      ort_session: /^denied: NotCapable/,
      remote_import: /^denied: .*(NotCapable|import access)/,
      admin_token: /^denied: NotCapable/,
      import_outside: /^denied: .*NotCapable|^denied: .*read access/,
      runtime_modules: /^denied: NotCapable: The isolate's model list is sealed/,
      runtime_files: /^denied: NotCapable/,
      patched_builtins: /^denied: NotCapable: A function may not open ONNX Runtime sessions itself/,
      native_ort: /^denied: NotCapable: ONNX Runtime's C API is sealed/,
    };
    for (const [attempt, outcome] of Object.entries(expectations)) {
      await t.step(
        `permissions: ${attempt} is ${outcome.source.includes("allowed") ? "allowed" : "denied"}`,
        async () => {
          const response = await server.invoke("snoop", { attempt, target: `${server.url}/healthz` });
          assert.equal(response.status, 200);
          assert.match((await response.json()).outcome, outcome);
        },
      );
    }

    await t.step("permissions: an import from a host Deno allows by default (deno.land) is denied too", async () => {
      // A bare --deny-import left Deno's default hosts allowed in a child process: the import was attempted.
      for (const target of ["https://deno.land/std@0.224.0/path/mod.ts", "https://esm.sh/left-pad@1.3.0"]) {
        const response = await server.invoke("snoop", { attempt: "remote_import", target });
        assert.equal(response.status, 200);
        assert.match((await response.json()).outcome, /^denied: .*Requires import access/, target);
      }
    });

    await t.step(
      "permissions: what a function declares (one env variable, loopback net) works, nothing more",
      async () => {
        const declared = await (await server.invoke("declared", { env: "ISOLANE_TEST_SECRET" })).json();
        assert.deepEqual(declared, { env: "s3cret" });
        const fetched = await (await server.invoke("declared", { fetch: `${server.url}/healthz` })).json();
        assert.deepEqual(fetched, { status: 200 });
        const other = await errorOf(await server.invoke("declared", { env: "HOME" }));
        assert.equal(other.code, "handler_error");
        assert.match(other.message, /NotCapable|env/i);
      },
    );
  });
}

Deno.test("isolation: isolates that keep failing to start make the function unhealthy (503), and it recovers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-flaky-" });
  await Deno.mkdir(join(dir, "flaky", "state"), { recursive: true });
  const marker = join(dir, "flaky", "state", "broken");
  // Its setup fails while the marker exists; its handler writes the marker, then crashes its isolate.
  await Deno.writeTextFile(
    join(dir, "flaky", "mod.ts"),
    `import { defineFunction, z } from "isolane";
const marker = new URL("./state/broken", import.meta.url);
export default defineFunction({
  description: "Breaks its own respawns",
  input: z.object({ action: z.enum(["ping", "break"]) }),
  output: z.object({ ok: z.boolean() }),
  permissions: { write: ["state"] },
  async setup() {
    if (await Deno.stat(marker).then(() => true, () => false)) throw new Error("the marker says broken");
  },
  async handler({ action }) {
    if (action === "break") {
      await Deno.writeTextFile(marker, "1");
      setTimeout(() => { throw new Error("crash"); }, 0);
      return new Promise(() => {});
    }
    return { ok: true };
  },
});
`,
  );
  try {
    await using server = await startServer({ functionsDir: dir });
    assert.deepEqual(await (await server.invoke("flaky", { action: "ping" })).json(), { ok: true });
    assert.equal((await errorOf(await server.invoke("flaky", { action: "break" }))).code, "isolate_crashed");
    // Respawns fail (100, 200, 400 ms apart); after three the function is unhealthy.
    await until(server, "flaky", (info) => info.status === "unhealthy", 15_000);
    const failures = server.logs.filter((l) => l.msg === "isolate respawn failed" && l.function === "flaky");
    assert.ok(failures.length >= 2 && /the marker says broken/.test(String(failures[0].reason)));
    const started = Date.now();
    const e = await errorOf(await server.invoke("flaky", { action: "ping" }));
    assert.equal(e.status, 503);
    assert.match(e.message, /is unhealthy: its isolates keep failing \(last error: .*the marker says broken\)/);
    assert.ok(Date.now() - started < 1000, "an unhealthy function answers at once");
    assert.equal((await fetch(`${server.url}/readyz`)).status, 503);
    // Once the cause is gone, the next respawn succeeds and the function serves again.
    await Deno.remove(marker);
    await until(server, "flaky", (info) => info.status === "ready" && info.isolates[0].status === "ready", 30_000);
    assert.deepEqual(await (await server.invoke("flaky", { action: "ping" })).json(), { ok: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
