/**
 * The HTTP API against a real runtime serving the fixture functions: every
 * error status provoked for real, the listing, and the health endpoints.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { errorOf, startServer, type TestServer, until } from "./support/server.ts";

const fixtures = fileURLToPath(new URL("./fixtures/functions", import.meta.url));

async function withServer(fn: (server: TestServer) => Promise<void>): Promise<void> {
  await using server = await startServer({ functionsDir: fixtures, env: { ISOLANE_TEST_SECRET: "s3cret" } });
  await fn(server);
}

Deno.test("API: statuses, listing and health against the fixture functions", async (t) => {
  await withServer(async (server) => {
    await t.step("200 with the handler's JSON", async () => {
      const response = await server.invoke("echo", { message: "hello" });
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /application\/json/);
      assert.deepEqual(await response.json(), { message: "hello" });
    });

    await t.step("400 for invalid JSON", async () => {
      const e = await errorOf(await server.invoke("echo", "{not json"));
      assert.equal(e.status, 400);
      assert.equal(e.code, "invalid_json");
    });

    await t.step("400 for invalid input, with Zod issues and their paths", async () => {
      const e = await errorOf(await server.invoke("echo", { message: 42, delayMs: -1 }));
      assert.equal(e.status, 400);
      assert.equal(e.code, "invalid_input");
      const paths = (e.details as { path: unknown[] }[]).map((i) => i.path.join("."));
      assert.deepEqual(paths.sort(), ["delayMs", "message"]);
    });

    await t.step("404 for an unknown function and an unknown route", async () => {
      const e = await errorOf(await server.invoke("nope", {}));
      assert.equal(e.status, 404);
      assert.equal(e.code, "not_found");
      assert.match(e.message, /No function named 'nope'/);
      const route = await errorOf(await fetch(`${server.url}/v1/nothing`));
      assert.equal(route.status, 404);
      assert.equal(route.code, "not_found");
      // Under /v2 the protocol's shape holds for unknown routes too.
      const v2Route = await fetch(`${server.url}/v2/nothing`);
      assert.deepEqual([v2Route.status, await v2Route.json()], [404, { error: "No route GET /v2/nothing" }]);
      // Another method on an infer route is 405 naming POST, for a model that exists; 404 for one that does not.
      const get = await fetch(`${server.url}/v2/models/echo/infer`);
      assert.deepEqual([get.status, get.headers.get("allow"), await get.json()], [405, "POST, OPTIONS", {
        error: "GET is not allowed on /v2/models/echo/infer: send inference requests as POST",
      }]);
      const head = await fetch(`${server.url}/v2/models/echo/versions/1/infer`, { method: "HEAD" });
      assert.deepEqual([head.status, head.headers.get("allow")], [405, "POST, OPTIONS"]);
      await head.body?.cancel();
      const missing = await fetch(`${server.url}/v2/models/nope/infer`, { method: "PUT" });
      const missingBody = await missing.json();
      assert.equal(missing.status, 404);
      assert.equal(typeof missingBody.error, "string", JSON.stringify(missingBody));
    });

    await t.step("a gzip or deflate body is inflated; another encoding is 415, bad data 400, a bomb 413", async () => {
      const squeeze = async (text: string, format: "gzip" | "deflate") =>
        await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer();
      for (const format of ["gzip", "deflate"] as const) {
        const response = await server.invoke("echo", "", {
          body: await squeeze(JSON.stringify({ message: `squeezed by ${format}` }), format),
          headers: { "content-type": "application/json", "content-encoding": format },
        });
        assert.deepEqual([response.status, await response.json()], [200, { message: `squeezed by ${format}` }]);
      }
      const br = await errorOf(
        await server.invoke("echo", "", { headers: { "content-type": "application/json", "content-encoding": "br" } }),
      );
      assert.deepEqual([br.status, br.message], [415, "Content-Encoding 'br' is not supported; use gzip or deflate"]);
      const bad = await errorOf(
        await server.invoke("echo", '{"message": "not gzip"}', {
          headers: { "content-type": "application/json", "content-encoding": "gzip" },
        }),
      );
      assert.deepEqual([bad.status, bad.message], [400, "Request body is not valid gzip data"]);
      // 1 KiB is the function's limit; 100 KiB of padding squeezes into far less.
      const bomb = await errorOf(
        await server.invoke("limits", "", {
          body: await squeeze(JSON.stringify({ padding: "x".repeat(100_000) }), "gzip"),
          headers: { "content-type": "application/json", "content-encoding": "gzip" },
        }),
      );
      assert.equal(bomb.status, 413, bomb.message);
    });

    await t.step("413 for a body over the function's limit, with and without content-length", async () => {
      const big = { padding: "x".repeat(2048) };
      const e = await errorOf(await server.invoke("limits", big));
      assert.equal(e.status, 413);
      assert.equal(e.code, "body_too_large");
      const stream = ReadableStream.from([new TextEncoder().encode(JSON.stringify(big))]);
      const chunked = await errorOf(await server.invoke("limits", "", { body: stream }));
      assert.equal(chunked.status, 413);
    });

    await t.step("415 for a body that is not JSON", async () => {
      const e = await errorOf(await server.invoke("echo", "message=hi", { headers: { "content-type": "text/plain" } }));
      assert.equal(e.status, 415);
      assert.equal(e.code, "unsupported_media_type");
    });

    await t.step("429 with Retry-After when the queue is full", async () => {
      // One isolate busy, one request waiting (queueDepth 1): the third is refused.
      const busy = server.invoke("limits", { sleepMs: 600 });
      await until(server, "limits", (info) => info.isolates[0].status === "busy");
      const waiting = server.invoke("limits", {});
      await until(server, "limits", (info) => info.queued === 1);
      const refused = await server.invoke("limits", {});
      // Two runs of up to 600 ms ahead, with no service time yet but the running one's age: 1 or 2 s.
      assert.match(refused.headers.get("retry-after") ?? "", /^[12]$/);
      const e = await errorOf(refused);
      assert.equal(e.status, 429);
      assert.equal(e.code, "queue_full");
      assert.equal((await busy).status, 200);
      assert.equal((await waiting).status, 200);
    });

    await t.step("500 when the handler throws, with its message", async () => {
      const e = await errorOf(await server.invoke("faults", { fail: "throw" }));
      assert.equal(e.status, 500);
      assert.equal(e.code, "handler_error");
      assert.match(e.message, /the handler gave up/);
    });

    await t.step("500 when the handler returns what its output schema refuses", async () => {
      const e = await errorOf(await server.invoke("faults", { fail: "bad_output" }));
      assert.equal(e.status, 500);
      assert.equal(e.code, "invalid_output");
    });

    await t.step("503 for functions that failed to load, with the reason", async () => {
      const reasons: Record<string, RegExp> = {
        broken: /importing .*broken\/mod\.ts failed/,
        badopts: /instances/,
        nomodel: /model 'net' not found at .*nomodel\/missing\.onnx/,
        setupfails: /setup threw: cannot reach the feature store/,
      };
      for (const [name, reason] of Object.entries(reasons)) {
        const e = await errorOf(await server.invoke(name, {}));
        assert.equal(e.status, 503, name);
        assert.equal(e.code, "function_unavailable");
        assert.match(e.message, reason);
        const info = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
        assert.equal(info.status, "failed");
        assert.match(info.error, reason);
        assert.match(info.file, new RegExp(`${name}/mod\\.ts$`));
      }
      const logged = server.logs.filter((l) => l.msg === "function failed to load").map((l) => l.function).sort();
      assert.deepEqual(logged, ["badopts", "broken", "nomodel", "setupfails"]);
    });

    await t.step("504 when the handler runs past timeoutMs", async () => {
      const started = Date.now();
      const e = await errorOf(await server.invoke("limits", { spinMs: 5000 }));
      assert.equal(e.status, 504);
      assert.equal(e.code, "timeout");
      assert.ok(Date.now() - started < 4000, "answered at the limit, not when the handler ended");
    });

    await t.step("GET /v1/functions lists every function with schemas and status", async () => {
      const { functions } = await (await fetch(`${server.url}/v1/functions`)).json();
      const byName = Object.fromEntries(functions.map((f: { name: string }) => [f.name, f]));
      assert.deepEqual(Object.keys(byName).sort(), [
        "badopts",
        "broken",
        "declared",
        "dtypes",
        "echo",
        "faults",
        "limits",
        "nomodel",
        "setupfails",
        "snoop",
        "stream",
        "strings",
      ]);
      const echo = byName.echo;
      assert.equal(echo.status, "ready");
      assert.equal(echo.description, "Echoes a message, optionally after a delay");
      assert.equal(echo.instances, 2);
      assert.equal(echo.device, "auto");
      assert.equal(echo.isolates.length, 2);
      assert.deepEqual(echo.input.required, ["message"]);
      assert.equal(echo.input.properties.message.type, "string");
      assert.equal(echo.output.properties.message.type, "string");
    });

    await t.step("/healthz is up; /readyz is 503 while some functions failed", async () => {
      assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), { status: "ok" });
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 503);
      const body = await ready.json();
      assert.equal(body.ready, false);
      assert.equal(body.functions.echo, "ready");
      assert.equal(body.functions.broken, "failed");
    });
  });
});
