/**
 * A request body cut short on the wire (fewer bytes than its
 * `content-length`, or a chunked body without its last chunk, then the client
 * closes its side) is the client's fault: 400 `invalid_input`, never 500, on `/v1` and `/v2` alike; a body that stops
 * arriving is answered 408 at the function's `timeoutMs`. Found by the fault soak (scripts/soak.ts); `/v2`'s chunked
 * bodies (read whole by the body limit before the guard) answered 500 when cut and waited forever when stalled.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer } from "./support/server.ts";
import { readJsonAnswer } from "./support/raw_http.ts";
import { identityModel } from "./support/body_functions.ts";

const echo = fileURLToPath(new URL("./fixtures/functions/echo/mod.ts", import.meta.url));
const token = "cut-body-admin-token-0123456789";
const cutMessage =
  "Request body ended before it was complete: the client closed the connection or sent fewer bytes than its content-length";

/** Sends a request head and part of its body, closes the client's side, and reads the whole answer. */
async function cutShort(url: string, head: string, sent: string): Promise<{ status: number; body: unknown }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(url).port) });
  try {
    await conn.write(new TextEncoder().encode(head + sent));
    await conn.closeWrite();
    return await readJsonAnswer(conn);
  } finally {
    conn.close();
  }
}

Deno.test("a request body cut short answers 400 invalid_input on the invocation and deploy routes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-cut-" });
  await Deno.mkdir(join(dir, "echo"));
  await Deno.copyFile(echo, join(dir, "echo", "mod.ts"));
  await Deno.mkdir(join(dir, "same"));
  await Deno.writeTextFile(join(dir, "same", "mod.ts"), identityModel());
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_ADMIN_TOKEN: token } });
    const body = '{"message": "cut short"}';
    const v2 = '{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}';
    const v2Head = "POST /v2/models/same/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n";
    const cases = [
      { head: `${v2Head}content-length: ${v2.length}\r\n\r\n`, sent: v2.slice(0, 10), v2: true },
      { head: `${v2Head}transfer-encoding: chunked\r\n\r\n`, sent: `a\r\n${v2.slice(0, 10)}\r\n`, v2: true },
      // Compressed, cut inside the chunk.
      {
        head: `${v2Head}content-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n`,
        sent: "40\r\n\x1f\x8b",
        v2: true,
      },
      {
        head:
          `POST /v1/functions/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`,
        sent: body.slice(0, 10),
      },
      {
        head:
          "POST /v1/functions/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        sent: `a\r\n${body.slice(0, 10)}\r\n`,
      },
      {
        head:
          `PUT /v1/functions/cut HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/gzip\r\ncontent-length: 4096\r\n\r\n`,
        sent: "\x1f\x8b partial bundle",
      },
      {
        head:
          `PUT /v1/functions/cut HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/gzip\r\ntransfer-encoding: chunked\r\n\r\n`,
        sent: "4\r\nabcd\r\n",
      },
    ];
    for (const { head, sent, v2 } of cases as { head: string; sent: string; v2?: boolean }[]) {
      const answer = await cutShort(server.url, head, sent);
      assert.equal(answer.status, 400, `${head}: ${JSON.stringify(answer.body)}`);
      assert.deepEqual(
        answer.body,
        v2 ? { error: cutMessage } : { error: { code: "invalid_input", message: cutMessage } },
      );
    }
    // The runtime logged no unexpected error, and still serves.
    assert.ok(!server.logs.some((l) => l.msg === "unexpected error"));
    assert.deepEqual(await (await server.invoke("echo", { message: "whole" })).json(), { message: "whole" });
    const whole = await fetch(`${server.url}/v2/models/same/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: v2,
    });
    assert.equal(whole.status, 200);
    assert.deepEqual((await whole.json()).outputs[0].data, [1, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Sends a request head and part of its body, then nothing (the client stays connected); reads the first answer. */
async function stalled(url: string, head: string, sent: string): Promise<{ status: number; body: unknown }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(url).port) });
  // A runtime that never answers fails the test instead of hanging it: the read ends when the socket is closed.
  let closed = false;
  const guard = setTimeout(() => {
    closed = true;
    conn.close();
  }, 10_000);
  try {
    await conn.write(new TextEncoder().encode(head + sent));
    let text = "";
    const buffer = new Uint8Array(4096);
    const decoder = new TextDecoder();
    // Until the head and as many body bytes as its content-length say have arrived (the connection may stay open).
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? NaN);
      if (end >= 0 && text.length - end - 4 >= length) break;
    }
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
    return { status, body: JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) };
  } catch (error) {
    if (closed) throw new Error("No answer within 10 s");
    throw error;
  } finally {
    clearTimeout(guard);
    if (!closed) conn.close();
  }
}

for (const threads of ["0", "2"]) {
  Deno.test(`a body that stops arriving is answered 408 within the function's timeoutMs (HTTP threads: ${threads})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-stall-" });
    await Deno.mkdir(join(dir, "quick"));
    await Deno.writeTextFile(
      join(dir, "quick", "mod.ts"),
      (await Deno.readTextFile(echo)).replace("instances: 2,", "instances: 1,\n  timeoutMs: 400,"),
    );
    await Deno.mkdir(join(dir, "same"));
    await Deno.writeTextFile(join(dir, "same", "mod.ts"), identityModel("timeoutMs: 400,"));
    try {
      await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
      const head = (path: string, length: string) =>
        `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${length}\r\n\r\n`;
      const message = "The request body did not arrive within 400 ms (the function's timeoutMs); send it whole";
      for (const path of ["/v1/functions/quick", "/v2/models/same/infer"]) {
        // With a content-length, and chunked (read whole by the body limit first: on /v2, outside the deadline).
        for (const [length, sent] of [["content-length: 100", '{"inputs":'], ["transfer-encoding: chunked", "a\r\n"]]) {
          const started = performance.now();
          const answer = await stalled(server.url, head(path, length), sent);
          assert.equal(answer.status, 408, `${path} ${length}: ${JSON.stringify(answer.body)}`);
          assert.deepEqual(
            answer.body,
            path.startsWith("/v2") ? { error: message } : { error: { code: "request_timeout", message } },
          );
          assert.ok(performance.now() - started >= 400, "not before the function's timeoutMs");
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
