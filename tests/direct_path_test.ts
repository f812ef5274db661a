/**
 * The main thread serves `POST /v1/functions/:name` ahead of Hono when a request's checks before the body pass
 * (a `Content-Length` within the limit, a type the function takes, no auth, no CORS); a chunked body goes through
 * Hono's route. The same request both ways must get the same status, headers and body, the same request log line
 * and the same metrics count. Real runtime, real HTTP; run it with `ISOLANE_HTTP_THREADS=2` too (the threads send
 * some requests whole to the main thread's app, which then takes the same two ways).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "./support/server.ts";

const functionsDir = fileURLToPath(new URL("./fixtures/functions", import.meta.url));
const encoder = new TextEncoder();

/** A body `fetch` sends chunked (no `Content-Length`), which the direct path leaves to Hono. */
function chunked(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

interface Seen {
  status: number;
  headers: Record<string, string>;
  body: string;
  requestId: string;
}

/** Sends one request with a `Content-Length` (direct) or chunked (Hono); the answer with its request id taken out. */
async function send(
  server: TestServer,
  name: string,
  { body, headers, viaHono, requestId, path = `/v1/functions/${name}` }: {
    path?: string;
    body: string | Uint8Array;
    headers: Record<string, string>;
    viaHono: boolean;
    requestId: string;
  },
): Promise<Seen> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const response = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { ...headers, "x-request-id": requestId },
    body: viaHono ? chunked(bytes) : bytes,
    ...(viaHono ? { duplex: "half" } : {}),
  } as RequestInit);
  const text = await response.text();
  const seen: Record<string, string> = {};
  for (const [key, value] of response.headers) {
    // Time differs by nature; so does `connection: close` where a chunked body was left unread (413).
    if (key !== "date" && key !== "x-request-id" && key !== "connection") seen[key] = value;
  }
  return {
    status: response.status,
    headers: seen,
    body: text.replaceAll(requestId, "<id>"),
    requestId: response.headers.get("x-request-id") ?? "",
  };
}

async function requestCount(server: TestServer, fn: string, status: number): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`isolane_requests_total{function="${fn}",status="${status}"}`)
  );
  return line ? Number(line.split(" ").at(-1)) : 0;
}

const cases: {
  what: string;
  name: string;
  body: string | Uint8Array;
  headers: Record<string, string>;
  path?: string;
}[] = [
  {
    what: "an upper-case, parameterised JSON type",
    name: "echo",
    body: '{"message":"hi"}',
    headers: { "content-type": "Application/JSON; Charset=UTF-8" },
  },
  {
    what: "a query string and escapes in it",
    name: "echo",
    path: "/v1/functions/echo?x=1&y=%20%2F",
    body: '{"message":"q"}',
    headers: { "content-type": "application/json" },
  },
  {
    what: "an escaped name",
    name: "echo",
    path: "/v1/functions/%65cho",
    body: '{"message":"e"}',
    headers: { "content-type": "application/json" },
  },
  {
    what: "a trailing slash",
    name: "echo",
    path: "/v1/functions/echo/",
    body: '{"message":"s"}',
    headers: { "content-type": "application/json" },
  },
  { what: "an empty body", name: "echo", body: "", headers: { "content-type": "application/json" } },
  {
    what: "Content-Encoding: identity",
    name: "echo",
    body: '{"message":"i"}',
    headers: { "content-type": "application/json", "content-encoding": "identity" },
  },
  { what: "a JSON answer", name: "echo", body: '{"message":"hi"}', headers: { "content-type": "application/json" } },
  {
    what: "input the schema refuses",
    name: "echo",
    body: '{"message":1}',
    headers: { "content-type": "application/json" },
  },
  { what: "a body that is not JSON", name: "echo", body: "{", headers: { "content-type": "application/json" } },
  {
    what: "a type the function does not take",
    name: "echo",
    body: "hi",
    headers: { "content-type": "text/plain" },
  },
  {
    what: "a handler that throws",
    name: "faults",
    body: '{"fail":"throw"}',
    headers: { "content-type": "application/json" },
  },
  {
    what: "a streamed answer (NDJSON)",
    name: "stream",
    body: '{"count":3}',
    headers: { "content-type": "application/json" },
  },
  {
    what: "a streamed answer (Server-Sent Events) that fails midway",
    name: "stream",
    body: '{"count":3,"failAt":2}',
    headers: { "content-type": "application/json", accept: "text/event-stream" },
  },
  {
    what: "a raw body",
    name: "stream",
    body: new Uint8Array([1, 2, 3, 4, 5]),
    headers: { "content-type": "application/octet-stream" },
  },
  {
    what: "a body over the function's limit",
    name: "limits",
    body: JSON.stringify({ padding: "x".repeat(2000) }),
    headers: { "content-type": "application/json" },
  },
  { what: "no such function", name: "nope", body: "{}", headers: { "content-type": "application/json" } },
];

Deno.test("an invocation answers alike with a Content-Length (direct path) and chunked (Hono)", async (t) => {
  await using server = await startServer({ functionsDir });
  let n = 0;
  for (const c of cases) {
    await t.step(c.what, async () => {
      const ids = [`direct-${n}`, `hono-${n}`];
      n++;
      const direct = await send(server, c.name, { ...c, viaHono: false, requestId: ids[0] });
      const hono = await send(server, c.name, { ...c, viaHono: true, requestId: ids[1] });
      assert.deepEqual(direct.requestId, ids[0]);
      assert.deepEqual(hono.requestId, ids[1]);
      assert.deepEqual({ ...direct, requestId: "" }, { ...hono, requestId: "" });
      // Both logged, with the same fields.
      for (const id of ids) {
        const line = await server.waitForLog((l) => l.msg === "request" && l.id === id);
        const path = new URL(c.path ?? `/v1/functions/${c.name}`, "http://x").pathname;
        assert.deepEqual([line.method, line.path, line.status], ["POST", decodeURI(path), direct.status]);
      }
    });
  }
});

Deno.test("the direct path counts its answers in the metrics as Hono's route does", async () => {
  await using server = await startServer({ functionsDir });
  const body = '{"message":"counted"}';
  const headers = { "content-type": "application/json" };
  const before = await requestCount(server, "echo", 200);
  const refusedBefore = await requestCount(server, "echo", 400);
  for (const viaHono of [false, true, false]) {
    assert.equal((await send(server, "echo", { body, headers, viaHono, requestId: `m-${viaHono}` })).status, 200);
  }
  await send(server, "echo", { body: "{", headers, viaHono: false, requestId: "m-bad" });
  assert.equal(await requestCount(server, "echo", 200), before + 3);
  assert.equal(await requestCount(server, "echo", 400), refusedBefore + 1);
});

Deno.test("the direct path makes a request id when the client's is refused, as Hono's middleware does", async () => {
  await using server = await startServer({ functionsDir });
  const response = await fetch(`${server.url}/v1/functions/echo`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": "not valid!" },
    body: '{"message":"hi"}',
  });
  assert.equal(response.status, 200);
  const id = response.headers.get("x-request-id") ?? "";
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(await response.text(), '{"message":"hi"}');
  const line = await server.waitForLog((l) => l.msg === "request" && l.id === id);
  assert.equal(line.status, 200);
});

const sdk = fileURLToPath(new URL("../src/sdk.ts", import.meta.url));
const doubler = `import { defineFunction } from "${sdk}";
export default defineFunction({
  description: "Doubles a row of four",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 4] }],
  },
  handler: ({ x }) => ({ y: { data: new Float32Array(Array.from(x.data as Float32Array, (v) => v * 2)), dims: x.dims } }),
});
`;

/** A v2 binary request: the JSON header, then the tensor's bytes. */
function binaryInfer(values: number[]): { body: Uint8Array; headerLength: string } {
  const head = new TextEncoder().encode(
    JSON.stringify({
      inputs: [{ name: "x", datatype: "FP32", shape: [1, 4], parameters: { binary_data_size: 16 } }],
      outputs: [{ name: "y", parameters: { binary_data: true } }],
    }),
  );
  const body = new Uint8Array(head.length + 16);
  body.set(head);
  body.set(new Uint8Array(new Float32Array(values).buffer), head.length);
  return { body, headerLength: String(head.length) };
}

Deno.test("a v2 infer request answers alike with a Content-Length (direct path) and chunked (Hono)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-direct-" });
  try {
    await Deno.mkdir(join(dir, "doubler"));
    await Deno.writeTextFile(join(dir, "doubler", "mod.ts"), doubler);
    await using server = await startServer({ functionsDir: dir });
    const json = { "content-type": "application/json" };
    const binary = binaryInfer([1, 2, 3, 4]);
    const v2Cases: { what: string; path: string; body: string | Uint8Array; headers: Record<string, string> }[] = [
      {
        what: "JSON",
        path: "/v2/models/doubler/infer",
        body: '{"id":"a","inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
        headers: json,
      },
      {
        what: "no content type, the version named",
        path: "/v2/models/doubler/versions/1/infer",
        body: '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
        headers: {},
      },
      {
        what: "binary tensor data",
        path: "/v2/models/doubler/infer",
        body: binary.body,
        headers: { "content-type": "application/octet-stream", "inference-header-content-length": binary.headerLength },
      },
      {
        what: "a tensor of the wrong shape (the protocol's error shape)",
        path: "/v2/models/doubler/infer",
        body: '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}',
        headers: json,
      },
      { what: "a body that is not JSON", path: "/v2/models/doubler/infer", body: "{", headers: json },
      {
        what: "a version that does not serve",
        path: "/v2/models/doubler/versions/9/infer",
        body: "{}",
        headers: json,
      },
      {
        what: "a type the route does not take",
        path: "/v2/models/doubler/infer",
        body: "x",
        headers: {
          "content-type": "text/plain",
        },
      },
      { what: "/v1 of a tensor function", path: "/v1/functions/doubler", body: '{"x":[[1,2,3,4]]}', headers: json },
    ];
    const before = await requestCount(server, "doubler", 200);
    const body = (await send(server, "doubler", {
      path: "/v2/models/doubler/infer",
      body: v2Cases[0].body,
      headers: json,
      viaHono: false,
      requestId: "check",
    })).body;
    assert.match(body, /"data":\[2,4,6,8\]/);
    let n = 0;
    for (const c of v2Cases) {
      await t.step(c.what, async () => {
        const ids = [`v2-direct-${n}`, `v2-hono-${n}`];
        n++;
        const direct = await send(server, "doubler", { ...c, viaHono: false, requestId: ids[0] });
        const hono = await send(server, "doubler", { ...c, viaHono: true, requestId: ids[1] });
        assert.deepEqual([direct.requestId, hono.requestId], ids);
        assert.deepEqual({ ...direct, requestId: "" }, { ...hono, requestId: "" });
        for (const id of ids) {
          const line = await server.waitForLog((l) => l.msg === "request" && l.id === id);
          assert.deepEqual([line.method, line.path, line.status], ["POST", c.path, direct.status]);
        }
      });
    }
    // Every answered invocation counts, a versioned infer path's too: the check, then two each of four.
    assert.equal(await requestCount(server, "doubler", 200), before + 9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
