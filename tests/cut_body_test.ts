/**
 * A request body cut short on the wire (fewer bytes than its
 * `content-length`, or a chunked body without its last chunk, then the client
 * closes its side) is the client's fault: 400 `invalid_input`, never 500.
 * Found by the fault soak (scripts/soak.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer } from "./support/server.ts";
import { readJsonAnswer } from "./support/raw_http.ts";

const echo = fileURLToPath(new URL("./fixtures/functions/echo/mod.ts", import.meta.url));
const token = "cut-body-admin-token-0123456789";

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
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_ADMIN_TOKEN: token } });
    const body = '{"message": "cut short"}';
    const cases = [
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
    for (const { head, sent } of cases) {
      const answer = await cutShort(server.url, head, sent);
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, {
        error: {
          code: "invalid_input",
          message:
            "Request body ended before it was complete: the client closed the connection or sent fewer bytes than its content-length",
        },
      });
    }
    // The runtime logged no unexpected error, and still serves.
    assert.ok(!server.logs.some((l) => l.msg === "unexpected error"));
    assert.deepEqual(await (await server.invoke("echo", { message: "whole" })).json(), { message: "whole" });
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
    try {
      await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
      const head = (path: string) =>
        `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n`;
      for (const path of ["/v1/functions/quick"]) {
        const started = performance.now();
        const answer = await stalled(server.url, head(path), '{"message":');
        assert.equal(answer.status, 408, JSON.stringify(answer.body));
        assert.equal((answer.body as { error: { code: string } }).error.code, "request_timeout");
        assert.ok(performance.now() - started >= 400, "not before the function's timeoutMs");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
