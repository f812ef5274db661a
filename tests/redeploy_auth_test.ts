/**
 * A request admitted by a version without invocation auth, whose body is still arriving when a redeploy swaps in a
 * version that takes keys, must not be served by that version: its key was never checked. The body goes to the
 * version that serves once it is whole (as if it had come a moment later), so the runtime refuses it (503, retry)
 * where the serving version's `auth` is not the one it was admitted under. On `/v1` and `/v2`, with a
 * `Content-Length` (the main thread's direct path) and chunked (Hono). Real runtime, real HTTP, a real deploy.
 */
import assert from "node:assert/strict";
import { adminToken, deployOk } from "./support/bundles.ts";
import { startServer, type TestServer, until } from "./support/server.ts";

/** A tensor function (also served on `/v1`): doubles `x`, and says which version answered. */
function doubler(auth: string, label: string): string {
  return `import { defineFunction } from "isolane";

export default defineFunction({
  description: "Doubles a vector (${label})",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1] }],
  },
  maxBodyBytes: 4096,
  auth: "${auth}",
  handler: ({ x }) => ({ y: { data: Float32Array.from(x.data as Float32Array, (v) => v * 2), dims: x.dims } }),
});
`;
}

const encoder = new TextEncoder();

/** Reads what the server sends until it closes, as text. */
async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const buffer = new Uint8Array(4096);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) chunks.push(buffer.slice(0, n));
  return new TextDecoder().decode(await new Blob(chunks).arrayBuffer());
}

/**
 * Sends a request's head and the first half of its body, redeploys `name` with `auth: "key"` and waits until that
 * version serves, then sends the rest; resolves with the status line's code and the answer's body.
 */
async function bodyAcrossRedeploy(
  server: TestServer,
  name: string,
  { path, body, chunked }: { path: string; body: string; chunked: boolean },
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
  try {
    const half = body.length >> 1;
    const framing = chunked ? "transfer-encoding: chunked" : `content-length: ${body.length}`;
    const piece = (s: string) => (chunked ? `${s.length.toString(16)}\r\n${s}\r\n` : s);
    await conn.write(encoder.encode(
      `POST ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n${framing}\r\n\r\n` +
        piece(body.slice(0, half)),
    ));
    // The head is read (and the request admitted under version 1) long before a deploy and a load end.
    await (await fetch(`${server.url}/healthz`)).body?.cancel();
    const before = (await (await fetch(`${server.url}/v1/functions/${name}`)).json()).version;
    await deployOk(server, name, { "mod.ts": doubler("key", "keyed") });
    await until(server, name, (info) => info.version > before && info.status === "ready");
    await conn.write(encoder.encode(piece(body.slice(half)) + (chunked ? "0\r\n\r\n" : "")));
    const text = await readAll(conn);
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), text: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}

Deno.test("a body that arrives across a redeploy that turns auth on is not served by the keyed version", async (t) => {
  await using server = await startServer({
    functionsDir: await Deno.makeTempDir(),
    env: { ISOLANE_ADMIN_TOKEN: adminToken },
  });
  const tensors = JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [2], data: [1, 2.5] }] });
  const json = JSON.stringify({ x: [1, 2.5] });
  const cases = [
    { what: "/v1, Content-Length (direct path)", path: "/v1/functions/", body: json, chunked: false },
    { what: "/v1, chunked (Hono)", path: "/v1/functions/", body: json, chunked: true },
    { what: "/v2, Content-Length (direct path)", path: "/v2/models/", body: tensors, chunked: false, v2: true },
    { what: "/v2, chunked (Hono)", path: "/v2/models/", body: tensors, chunked: true, v2: true },
  ];
  let n = 0;
  for (const c of cases) {
    await t.step(c.what, async () => {
      const name = `swap${n++}`;
      await deployOk(server, name, { "mod.ts": doubler("none", "open") });
      // Open: served without a key.
      const path = `${c.path}${name}${c.v2 ? "/infer" : ""}`;
      const open = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: c.body,
      });
      assert.equal(open.status, 200, await open.text());

      const answer = await bodyAcrossRedeploy(server, name, { path, body: c.body, chunked: c.chunked });
      assert.equal(answer.status, 503, answer.text);
      const error = JSON.parse(answer.text).error;
      const message = c.v2 ? error : error.message;
      assert.match(message, /redeployed .*auth.*retry/);
      // The retry is checked against the version that serves: 401 without a key.
      const retry = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: c.body,
      });
      assert.equal(retry.status, 401);
      await retry.body?.cancel();
    });
  }
});
