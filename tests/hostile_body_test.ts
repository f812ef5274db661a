/**
 * Request bodies as a hostile or broken client sends them, with raw sockets: to the admin API (a bundle's upload, a
 * rollback) and to invocations (`/v1` and v2, of functions with `auth`, with `cors`, and with neither, which the direct
 * path or a thread's hot routes serve when the body is plain), on the main thread and on HTTP threads
 * (`tests/cut_body_test.ts` has the first of these cases). A body cut short is 400, one that stops arriving (stalled,
 * `Expect: 100-continue` never followed, one byte a second) is 408 at the route's deadline (the function's
 * `timeoutMs`; for the admin API `ISOLANE_UPLOAD_TIMEOUT_MS`), one past a limit is 413; never 500, never a hang, and
 * the runtime serves on. An upload that fails so deploys nothing. Before: a rollback body cut short was 500
 * (BadResource); an admin body that stalled was waited for forever, and so, on HTTP threads, was any body sent whole to
 * the main thread (deploys, rollbacks, invocations of a function with auth or CORS), past the function's limit too; a
 * v2 request sent whole answered its 400 in `/v1`'s shape. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { startServer, type TestServer } from "./support/server.ts";
import { adminToken, bundleOf, deployOk, invocationKey } from "./support/bundles.ts";
import { greeterModule } from "./support/greeter.ts";
import { echoFunction, identityModel } from "./support/body_functions.ts";

const encoder = new TextEncoder();

/** What a client does on its socket, in order: send bytes, wait, close its side, or send one byte a second. */
type Step = Uint8Array | string | { waitMs: number } | "close" | { drip: string };

/** An answer read off the socket: its status (after any `100 Continue`) and JSON body. */
interface Answer {
  status: number;
  body: unknown;
}

/**
 * Sends `steps` on a new connection while reading the first final answer; fails (instead of hanging) if none comes
 * within 10 s. The answer may come before all steps are sent: the rest are then skipped.
 */
async function exchange(server: TestServer, steps: Step[]): Promise<Answer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
  let answered = false;
  let timedOut = false;
  const guard = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, 10_000);
  const reading = (async () => {
    let text = "";
    const buffer = new Uint8Array(65536);
    const decoder = new TextDecoder();
    try {
      while (true) {
        // Interim answers (100 Continue) come before the final one.
        const final = text.replace(/^(HTTP\/1\.1 1\d\d [^\r]*\r\n(?:[^\r]+\r\n)*\r\n)+/, "");
        const end = final.indexOf("\r\n\r\n");
        const length = Number(/content-length: (\d+)/i.exec(final.slice(0, end))?.[1] ?? NaN);
        if (end >= 0 && final.length - end - 4 >= length) {
          answered = true;
          return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(final)?.[1]), body: JSON.parse(final.slice(end + 4)) };
        }
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`The connection closed before a whole answer: ${JSON.stringify(text)}`);
        text += decoder.decode(buffer.subarray(0, n), { stream: true });
      }
    } catch (error) {
      if (timedOut) throw new Error(`No answer within 10 s; read so far: ${JSON.stringify(text)}`);
      throw error;
    }
  })();
  // The answer is awaited below; a failure before then must not go unhandled.
  reading.catch(() => {});
  try {
    for (const step of steps) {
      if (answered || timedOut) break;
      if (step === "close") await conn.closeWrite();
      else if (typeof step === "string") await conn.write(encoder.encode(step));
      else if (step instanceof Uint8Array) await conn.write(step);
      else if ("waitMs" in step) await Promise.race([reading.catch(() => {}), delay(step.waitMs)]);
      else {
        for (const byte of step.drip) {
          if (answered || timedOut) break;
          await conn.write(encoder.encode(byte));
          await Promise.race([reading.catch(() => {}), delay(1000)]);
        }
      }
    }
  } catch {
    // The server may close the connection once it has answered; the answer says what happened.
  }
  try {
    return await reading;
  } finally {
    clearTimeout(guard);
    if (!timedOut) conn.close();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function concat(...parts: (string | Uint8Array)[]): Uint8Array {
  const bytes = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const out = new Uint8Array(bytes.reduce((n, b) => n + b.byteLength, 0));
  let offset = 0;
  for (const b of bytes) {
    out.set(b, offset);
    offset += b.byteLength;
  }
  return out;
}

/** A chunked body of `total` bytes in chunks of 1000, without its last chunk (the client goes on sending). */
function chunks(total: number): string {
  return Array.from({ length: Math.ceil(total / 1000) }, () => `3e8\r\n${"x".repeat(1000)}\r\n`).join("");
}

/**
 * The hostile ways to send `body` after `head` (a request line and headers, without the blank line), each with the
 * status it must get: `deadline` is what a stalled body's 408 names.
 */
function hostileCases(
  head: string,
  body: Uint8Array,
  { limit }: { limit: number },
): { what: string; steps: Step[]; status: number }[] {
  const part = body.subarray(0, 8);
  const gzipped = new Uint8Array(gzipSync(body));
  return [
    {
      what: "cut short (content-length)",
      steps: [concat(head, `content-length: ${body.length + 50}\r\n\r\n`, part), "close"],
      status: 400,
    },
    {
      what: "cut short (chunked)",
      steps: [concat(head, "transfer-encoding: chunked\r\n\r\n8\r\n", part, "\r\n"), "close"],
      status: 400,
    },
    {
      what: "closed after the headers",
      steps: [concat(head, `content-length: ${body.length}\r\n\r\n`), "close"],
      status: 400,
    },
    {
      what: "cut short (gzip, content-length)",
      steps: [concat(head, "content-encoding: gzip\r\ncontent-length: 500\r\n\r\n", gzipped.subarray(0, 10)), "close"],
      status: 400,
    },
    {
      what: "stalled (content-length)",
      steps: [concat(head, `content-length: ${body.length + 50}\r\n\r\n`, part), { waitMs: 10_000 }],
      status: 408,
    },
    {
      what: "stalled (chunked)",
      steps: [concat(head, "transfer-encoding: chunked\r\n\r\n8\r\n", part, "\r\n"), { waitMs: 10_000 }],
      status: 408,
    },
    {
      what: "stalled (gzip, chunked)",
      steps: [
        concat(
          head,
          "content-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n5\r\n",
          gzipped.subarray(0, 5),
          "\r\n",
        ),
        { waitMs: 10_000 },
      ],
      status: 408,
    },
    {
      what: "Expect: 100-continue, body never sent",
      steps: [concat(head, `expect: 100-continue\r\ncontent-length: ${body.length}\r\n\r\n`), { waitMs: 10_000 }],
      status: 408,
    },
    {
      what: "one byte a second",
      steps: [concat(head, `content-length: ${body.length}\r\n\r\n`), { drip: "x".repeat(body.length) }],
      status: 408,
    },
    {
      what: "content-length past the limit",
      steps: [concat(head, `content-length: ${limit + 1}\r\n\r\n`, part), { waitMs: 10_000 }],
      status: 413,
    },
    {
      what: "chunked past the limit",
      steps: [concat(head, "transfer-encoding: chunked\r\n\r\n", chunks(limit + 1000)), { waitMs: 10_000 }],
      status: 413,
    },
  ];
}

/** Every file and folder under `dir`, as sorted relative paths (none if it does not exist). */
async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(join(dir, prefix))) {
      const path = prefix ? `${prefix}/${entry.name}` : entry.name;
      out.push(path);
      if (entry.isDirectory) out.push(...await tree(dir, path));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort();
}

for (const threads of ["0", "2"]) {
  Deno.test(`admin API: an upload or rollback body cut, stalled or too large is 400, 408 or 413, deploys nothing (HTTP threads: ${threads})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-hostile-" });
    const data = await Deno.makeTempDir({ prefix: "isolane-hostile-data-" });
    try {
      await using server = await startServer({
        functionsDir: dir,
        env: {
          ISOLANE_ADMIN_TOKEN: adminToken,
          ISOLANE_DATA: data,
          ISOLANE_HTTP_THREADS: threads,
          ISOLANE_UPLOAD_TIMEOUT_MS: "500",
          ISOLANE_MAX_BUNDLE_BYTES: "4096",
        },
      });
      assert.equal(await deployOk(server, "g", { "mod.ts": greeterModule("one") }), 1);
      const stored = await tree(join(data, "functions"));
      const bundle = await bundleOf({ "mod.ts": greeterModule("two") });
      const auth = `host: x\r\nauthorization: Bearer ${adminToken}\r\n`;
      const routes = [
        {
          route: "deploy",
          head: `PUT /v1/functions/g HTTP/1.1\r\n${auth}content-type: application/gzip\r\n`,
          body: bundle,
          limit: 4096,
        },
        {
          route: "rollback",
          head: `POST /v1/functions/g/rollback HTTP/1.1\r\n${auth}content-type: application/json\r\n`,
          body: encoder.encode('{"version": 1}'),
          limit: 4096,
        },
      ];
      // Every case runs, and what went wrong is said at once.
      const wrong: string[] = [];
      for (const { route, head, body, limit } of routes) {
        for (const { what, steps, status } of hostileCases(head, body, { limit })) {
          const label = `${route}, ${what}`;
          let answer: Answer;
          try {
            answer = await exchange(server, steps);
          } catch (error) {
            wrong.push(`${label}: ${error instanceof Error ? error.message : error}`);
            continue;
          }
          const error = (answer.body as { error?: { code?: string; message?: string } }).error;
          const expected = {
            status,
            code: { 400: "invalid_input", 408: "request_timeout", 413: "body_too_large" }[status],
            ...(status === 408
              ? { message: "The request body did not arrive within 500 ms (ISOLANE_UPLOAD_TIMEOUT_MS); send it whole" }
              : {}),
          };
          const got = {
            status: answer.status,
            code: error?.code,
            ...(status === 408 ? { message: error?.message } : {}),
          };
          if (JSON.stringify(got) !== JSON.stringify(expected)) wrong.push(`${label}: ${JSON.stringify(answer)}`);
          // The runtime serves on, the version it served.
          const served = await server.invoke("g", { name: "x" });
          assert.deepEqual(await served.json(), { message: "one x" }, label);
        }
      }
      assert.deepEqual(wrong, []);
      assert.ok(!server.logs.some((l) => l.msg === "unexpected error"), "no error was unexpected");
      // Each refusal has its request log line (an HTTP thread logs the requests it did not send on).
      for (const [method, path] of [["PUT", "/v1/functions/g"], ["POST", "/v1/functions/g/rollback"]]) {
        for (const status of [400, 408, 413]) {
          await server.waitForLog((l) =>
            l.msg === "request" && l.method === method && l.path === path && l.status === status
          );
        }
      }
      const versions = await (await fetch(`${server.url}/v1/functions/g/versions`)).json();
      assert.equal(versions.current, 1);
      assert.deepEqual(versions.versions.map((v: { version: number }) => v.version), [1]);
      assert.deepEqual(await tree(join(data, "functions")), stored, "no version was written");
      assert.deepEqual(await tree(join(data, "staging")), [], "nothing was left half-unpacked");
      // A whole upload still deploys.
      const whole = await exchange(server, [
        concat(routes[0].head, `content-length: ${bundle.length}\r\n\r\n`, bundle),
      ]);
      assert.equal(whole.status, 201, JSON.stringify(whole.body));
      assert.deepEqual(await (await server.invoke("g", { name: "x" })).json(), { message: "two x" });
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(data, { recursive: true });
    }
  });
}

/** A function that echoes `{"message"}`, with `options` (its auth or CORS) and a short `timeoutMs`. */
function echoWith(options: string): string {
  return echoFunction(`timeoutMs: 400,\n  maxBodyBytes: 2000,\n  ${options}`);
}

/** A KServe v2 model (identity on FP32) with `options` (its auth) and a short `timeoutMs`. */
function modelWith(options: string): string {
  return identityModel(`timeoutMs: 400,\n  maxBodyBytes: 2000,\n  ${options}`);
}

for (const threads of ["0", "2"]) {
  Deno.test(`invocations (auth, CORS, neither): a body cut, stalled or too large is 400, 408 at timeoutMs or 413 (HTTP threads: ${threads})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-hostile-" });
    const functions = {
      keyed: echoWith('auth: "key",'),
      corsy: echoWith('cors: { origins: "*" },'),
      model: modelWith('auth: "key",'),
      // Served ahead of Hono (the direct path, a thread's hot routes) when the body is plain, by Hono when not.
      plain: echoWith(""),
      "plain-model": modelWith(""),
    };
    for (const [name, source] of Object.entries(functions)) {
      await Deno.mkdir(join(dir, name));
      await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
    }
    try {
      await using server = await startServer({
        functionsDir: dir,
        env: { ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_HTTP_THREADS: threads },
      });
      const keyOf = (name: string) => invocationKey(server, name);
      const v1 = encoder.encode('{"message": "hello"}');
      const v2 = encoder.encode('{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}');
      const json = "host: x\r\ncontent-type: application/json\r\n";
      const routes = [
        {
          route: "keyed",
          head: `POST /v1/functions/keyed HTTP/1.1\r\n${json}authorization: Bearer ${await keyOf("keyed")}\r\n`,
          body: v1,
        },
        { route: "corsy", head: `POST /v1/functions/corsy HTTP/1.1\r\n${json}origin: https://a.example\r\n`, body: v1 },
        {
          route: "model",
          head: `POST /v2/models/model/infer HTTP/1.1\r\n${json}authorization: Bearer ${await keyOf("model")}\r\n`,
          body: v2,
          v2: true,
        },
        { route: "plain", head: `POST /v1/functions/plain HTTP/1.1\r\n${json}`, body: v1 },
        { route: "plain-model", head: `POST /v2/models/plain-model/infer HTTP/1.1\r\n${json}`, body: v2, v2: true },
      ];
      const messages = {
        400:
          "Request body ended before it was complete: the client closed the connection or sent fewer bytes than its content-length",
        408: "The request body did not arrive within 400 ms (the function's timeoutMs); send it whole",
        413: "Request body is larger than this function's limit of 2000 bytes",
      };
      const codes = { 400: "invalid_input", 408: "request_timeout", 413: "body_too_large" };
      const wrong: string[] = [];
      for (const { route, head, body, v2 } of routes) {
        for (const { what, steps, status } of hostileCases(head, body, { limit: 2000 })) {
          const label = `${route}, ${what}`;
          let answer: Answer;
          try {
            answer = await exchange(server, steps);
          } catch (error) {
            wrong.push(`${label}: ${error instanceof Error ? error.message : error}`);
            continue;
          }
          const message = messages[status as 400 | 408 | 413];
          const expected = v2 ? { error: message } : { error: { code: codes[status as 400 | 408 | 413], message } };
          if (answer.status !== status || JSON.stringify(answer.body) !== JSON.stringify(expected)) {
            wrong.push(`${label}: ${JSON.stringify(answer)}`);
          }
          // The function serves on.
          const whole = await exchange(server, [concat(head, `content-length: ${body.length}\r\n\r\n`, body)]);
          assert.equal(whole.status, 200, `${label}: then ${JSON.stringify(whole.body)}`);
        }
      }
      assert.deepEqual(wrong, []);
      assert.ok(!server.logs.some((l) => l.msg === "unexpected error"), "no error was unexpected");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("HTTP threads: a body to a function name that is an Object property (constructor, __proto__) is read within the upload limits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-hostile-" });
  try {
    await using server = await startServer({
      functionsDir: dir,
      env: { ISOLANE_HTTP_THREADS: "2", ISOLANE_UPLOAD_TIMEOUT_MS: "500", ISOLANE_MAX_BUNDLE_BYTES: "4096" },
    });
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const head = `POST /v1/functions/${name} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n`;
      // No such function: a thread reads what it sends whole by the upload limits, not by an inherited property's.
      const stalled = await exchange(server, [concat(head, "content-length: 100\r\n\r\n", "{}"), { waitMs: 10_000 }]);
      assert.equal(stalled.status, 408, `${name}, stalled: ${JSON.stringify(stalled)}`);
      const large = await exchange(server, [concat(head, "content-length: 5000\r\n\r\n", "{}"), { waitMs: 10_000 }]);
      assert.equal(large.status, 413, `${name}, too large: ${JSON.stringify(large)}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
