/**
 * An invocation an HTTP thread sends whole to the main thread (a function with `auth`) has its body read on the
 * thread within the function's `maxBodyBytes` and `timeoutMs`, whatever form its path takes: percent-encoded
 * (`/v1/functions/k%65yed`, which Hono routes as `keyed`), a v2 path with a version. Raw sockets: a body that stalls,
 * one past the limit. The answers must be those of the main thread alone (`ISOLANE_HTTP_THREADS=0`). Before: a
 * percent-encoded path took the admin API's limits on a thread (`ISOLANE_MAX_BUNDLE_BYTES`,
 * `ISOLANE_UPLOAD_TIMEOUT_MS`): a stalled body was answered 408 at the upload deadline, and one announced past the
 * function's limit was waited for (408) instead of refused (413). And a body sent with an OPTIONS (a CORS preflight)
 * or a DELETE, which the app never reads, was waited for on a thread: 408 at the upload deadline, not 204 or 200.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, type TestServer } from "./support/server.ts";
import { adminToken, deployOk, invocationKey } from "./support/bundles.ts";
import { greeterModule } from "./support/greeter.ts";
import { echoFunction, identityModel } from "./support/body_functions.ts";

const encoder = new TextEncoder();

/** Writes `head` and the start of a body, then waits for the answer (status and JSON body); fails after 10 s. */
async function stalled(server: TestServer, head: string): Promise<{ status: number; body: unknown }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
  const guard = setTimeout(() => conn.close(), 10_000);
  try {
    await conn.write(encoder.encode(head));
    let text = "";
    const buffer = new Uint8Array(65536);
    const decoder = new TextDecoder();
    while (true) {
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? NaN);
      if (end >= 0 && text.length - end - 4 >= length) {
        return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), body: JSON.parse(text.slice(end + 4)) };
      }
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`No whole answer within 10 s: ${JSON.stringify(text)}`);
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(guard);
    try {
      conn.close();
    } catch {
      // closed by the guard
    }
  }
}

const limits = 'timeoutMs: 400,\n  maxBodyBytes: 2000,\n  auth: "key",';
const echo = echoFunction(limits);
const model = identityModel(limits);

Deno.test("a body sent whole is read within its function's limits, whatever the path's form (HTTP threads 0 and 2 answer alike)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-whole-limits-" });
  try {
    for (const [name, source] of [["keyed", echo], ["model", model]]) {
      await Deno.mkdir(join(dir, name));
      await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
    }
    const answers: Record<string, Record<string, unknown>> = {};
    for (const threads of ["0", "2"]) {
      await using server = await startServer({
        functionsDir: dir,
        env: {
          ISOLANE_ADMIN_TOKEN: adminToken,
          ISOLANE_HTTP_THREADS: threads,
          ISOLANE_UPLOAD_TIMEOUT_MS: "5000",
        },
      });
      const keyOf = (name: string) => invocationKey(server, name);
      const keys = { keyed: await keyOf("keyed"), model: await keyOf("model") };
      const paths = {
        "/v1/functions/keyed": keys.keyed,
        "/v1/functions/k%65yed": keys.keyed,
        "/v2/models/model/infer": keys.model,
        "/v2/models/m%6fdel/infer": keys.model,
        "/v2/models/model/versions/1/infer": keys.model,
        "/v2/models/m%6fdel/versions/1/infer": keys.model,
      };
      answers[threads] = {};
      for (const [path, key] of Object.entries(paths)) {
        const head =
          `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${key}\r\n`;
        answers[threads][`${path} stalled`] = await stalled(server, `${head}content-length: 100\r\n\r\n{"mess`);
        answers[threads][`${path} past the limit`] = await stalled(server, `${head}content-length: 2001\r\n\r\n{"mess`);
      }
      assert.ok(!server.logs.some((l) => l.msg === "unexpected error"), "no error was unexpected");
    }
    assert.deepEqual(answers["2"], answers["0"]);
    for (const [what, answer] of Object.entries(answers["2"])) {
      const { status, body } = answer as { status: number; body: unknown };
      const text = JSON.stringify(body);
      if (what.endsWith("stalled")) {
        assert.equal(status, 408, what);
        assert.match(text, /within 400 ms \(the function's timeoutMs\)/, what);
      } else {
        assert.equal(status, 413, what);
        assert.match(text, /this function's limit of 2000 bytes/, what);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a body sent with an OPTIONS or a DELETE is not waited for (HTTP threads 0 and 2 answer alike)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-whole-limits-" });
  try {
    await Deno.mkdir(join(dir, "corsy"));
    await Deno.writeTextFile(join(dir, "corsy", "mod.ts"), echo.replace('auth: "key",', 'cors: { origins: "*" },'));
    const answers: Record<string, unknown[]> = {};
    for (const threads of ["0", "2"]) {
      await using server = await startServer({
        functionsDir: dir,
        env: { ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_HTTP_THREADS: threads, ISOLANE_UPLOAD_TIMEOUT_MS: "5000" },
      });
      await deployOk(server, "g", { "mod.ts": greeterModule("one") });
      const preflight = "OPTIONS /v1/functions/corsy HTTP/1.1\r\nhost: x\r\norigin: https://a.example\r\n" +
        "access-control-request-method: POST\r\ncontent-length: 100\r\n\r\nabc";
      const removal = `DELETE /v1/functions/g HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${adminToken}\r\n` +
        "content-length: 100\r\n\r\nabc";
      answers[threads] = [await answerOf(server, preflight), await answerOf(server, removal)];
      assert.equal((await fetch(`${server.url}/v1/functions/g`)).status, 404, "g was deleted");
    }
    assert.deepEqual(answers["2"], answers["0"]);
    assert.deepEqual(answers["2"], [{ status: 204, body: "" }, { status: 200, body: '{"name":"g","deleted":true}' }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Writes `request` on a new connection and reads the answer's status and body text (by its content-length, if any). */
async function answerOf(server: TestServer, request: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
  const guard = setTimeout(() => conn.close(), 10_000);
  try {
    await conn.write(encoder.encode(request));
    let text = "";
    const buffer = new Uint8Array(65536);
    while (true) {
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      if (end >= 0 && text.length - end - 4 >= length) {
        return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), body: text.slice(end + 4) };
      }
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`No whole answer within 10 s: ${JSON.stringify(text)}`);
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } finally {
    clearTimeout(guard);
    try {
      conn.close();
    } catch {
      // closed by the guard
    }
  }
}
