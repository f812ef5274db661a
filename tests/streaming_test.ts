/**
 * Bodies as people send them and answers that stream: raw bytes and
 * multipart forms reach the handler as bytes; a handler that is an async
 * generator streams NDJSON or Server-Sent Events, the first item before the
 * last is computed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { errorOf, startServer } from "./support/server.ts";

const fixtures = fileURLToPath(new URL("./fixtures/functions", import.meta.url));
const state = join(fixtures, "stream", "state");

Deno.test("streaming and raw bodies", async (t) => {
  await using server = await startServer({ functionsDir: fixtures });
  const post = (body: BodyInit, headers: Record<string, string>) =>
    fetch(`${server.url}/v1/functions/stream`, { method: "POST", headers, body });

  await t.step("an async generator answers as NDJSON, one item a line", async () => {
    const response = await server.invoke("stream", { count: 3 });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/x-ndjson");
    const lines = (await response.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines, [{ n: 0 }, { n: 1 }, { n: 2 }]);
  });

  await t.step("Accept: text/event-stream gets Server-Sent Events", async () => {
    const response = await server.invoke("stream", { count: 2 }, {
      headers: { "content-type": "application/json", accept: "text/event-stream" },
    });
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(await response.text(), 'data: {"n":0}\n\ndata: {"n":1}\n\n');
  });

  await t.step("the first item reaches the client before the next one is computed", async () => {
    const marker = `m-${crypto.randomUUID()}`;
    const response = await server.invoke("stream", { count: 2, waitFor: marker });
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) text += (await reader.read()).value ?? "";
    assert.deepEqual(JSON.parse(text.split("\n")[0]), { n: 0 });
    // Only now may the function go on: the second item cannot have been computed before the first arrived.
    await Deno.writeTextFile(join(state, marker), "go");
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
      assert.deepEqual(text.trimEnd().split("\n").map((l) => JSON.parse(l)), [{ n: 0 }, { n: 1 }]);
    } finally {
      await Deno.remove(join(state, marker));
    }
  });

  await t.step("a handler that throws mid-stream ends the stream with an error item", async () => {
    const response = await server.invoke("stream", { count: 3, failAt: 1 });
    const lines = (await response.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines[0], { n: 0 });
    assert.equal(lines[1].error.code, "handler_error");
    assert.match(lines[1].error.message, /failed at item 1/);
  });

  await t.step("raw bytes of an accepted type reach the handler as bytes", async () => {
    const response = await post(new Uint8Array([1, 2, 3, 4, 5]), { "content-type": "application/octet-stream" });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { n: 5, info: "application/octet-stream|{}||1.2.3.4" });
  });

  await t.step("a multipart form gives its fields and files", async () => {
    const form = new FormData();
    form.append("lang", "en");
    form.append("scan", new Blob([new Uint8Array([137, 80, 78, 71, 9, 9])], { type: "image/png" }), "scan.png");
    const response = await post(form, {});
    assert.equal(response.status, 200);
    const { info } = await response.json();
    assert.match(info, /^multipart\/form-data\|\{"lang":"en"\}\|scan:scan\.png:image\/png:6\|/);
  });

  await t.step("other types get 415 naming the accepted ones", async () => {
    const e = await errorOf(await post("hello", { "content-type": "text/plain" }));
    assert.equal(e.status, 415);
    assert.match(e.message, /application\/octet-stream, image\/png, multipart\/form-data/);
  });

  await t.step("a JSON-only function still refuses raw bodies with 415", async () => {
    const response = await fetch(`${server.url}/v1/functions/echo`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array([1]),
    });
    assert.equal((await errorOf(response)).status, 415);
  });
});
