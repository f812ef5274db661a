/**
 * A client that goes away in the middle of a streamed answer (NDJSON or Server-Sent Events): its job stops, the
 * answer is logged and counted once, nothing is thrown at the runtime ("unexpected error": the stream's controller
 * was written after the client cancelled it), and the isolate serves the next request. With a `Content-Length` (the
 * main thread's direct path) and chunked (Hono), without HTTP threads and with two. Real runtime, real HTTP.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startServer, until } from "./support/server.ts";

const functionsDir = fileURLToPath(new URL("./fixtures/functions", import.meta.url));

async function requestCount(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('isolane_requests_total{function="stream",status="200"}'));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

for (const threads of ["0", "2"]) {
  Deno.test(`a streamed answer the client cuts after its first item: logged and counted once, nothing thrown (HTTP threads: ${threads})`, async () => {
    await using server = await startServer({ functionsDir, env: { ISOLANE_HTTP_THREADS: threads } });
    let n = 0;
    for (const viaHono of [false, true]) {
      for (const accept of ["application/x-ndjson", "text/event-stream"]) {
        const id = `cut-${n++}`;
        const before = await requestCount(server.url);
        // 50 items, and after the first the handler waits for a marker that never comes, until its signal aborts.
        const bytes = new TextEncoder().encode(JSON.stringify({ count: 50, waitFor: `never-${id}` }));
        const response = await fetch(`${server.url}/v1/functions/stream`, {
          method: "POST",
          headers: { "content-type": "application/json", accept, "x-request-id": id },
          body: viaHono
            ? new ReadableStream({
              start(c) {
                c.enqueue(bytes);
                c.close();
              },
            })
            : bytes,
          ...(viaHono ? { duplex: "half" } : {}),
        } as RequestInit);
        assert.equal(response.status, 200);
        const reader = response.body!.getReader();
        const first = new TextDecoder().decode((await reader.read()).value);
        assert.match(first, /"n":0/);
        await until(server, "stream", (info) => info.isolates.some((i: { status: string }) => i.status === "busy"));
        await reader.cancel();
        // The job stops: the isolate is free again, and serves the next request.
        await until(server, "stream", (info) => info.isolates.every((i: { status: string }) => i.status !== "busy"));
        const next = await fetch(`${server.url}/v1/functions/stream`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-request-id": `${id}-next` },
          body: '{"count":2}',
        });
        assert.equal(await next.text(), '{"n":0}\n{"n":1}\n');
        await server.waitForLog((l) => l.msg === "request" && l.id === `${id}-next`);
        assert.equal(server.logs.filter((l) => l.msg === "request" && l.id === id).length, 1, `${id} logged once`);
        assert.deepEqual(server.logs.filter((l) => l.msg === "unexpected error"), [], `${id}: nothing thrown`);
        assert.equal(await requestCount(server.url), before + 2, `${id}: the cut answer and the next counted`);
      }
    }
  });
}
