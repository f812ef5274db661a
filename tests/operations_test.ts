/**
 * Operating the runtime: Prometheus metrics, request ids, function console
 * output as structured logs, and graceful shutdown.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Validator } from "@seriousme/openapi-schema-validator";
import { errorOf, startServer } from "./support/server.ts";

const fixtures = fileURLToPath(new URL("./fixtures/functions", import.meta.url));

/** The value of one sample in a Prometheus text exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{") && !line.startsWith(name + " ")) continue;
    const labelText = line.slice(name.length).split(" ")[0];
    if (want.every((w) => labelText.includes(w))) return Number(line.split(" ").at(-1));
  }
  return undefined;
}

Deno.test("operations: metrics, request ids, function logs", async (t) => {
  await using server = await startServer({ functionsDir: fixtures });

  await t.step("every response carries x-request-id; a caller's id is kept", async () => {
    const response = await server.invoke("echo", { message: "id" });
    await response.body?.cancel();
    assert.match(response.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    const own = await server.invoke("echo", { message: "id" }, {
      headers: { "content-type": "application/json", "x-request-id": "trace-42" },
    });
    await own.body?.cancel();
    assert.equal(own.headers.get("x-request-id"), "trace-42");
    const logged = await server.waitForLog((l) => l.msg === "request" && l.id === "trace-42");
    assert.equal(logged.status, 200);
  });

  await t.step("a function's console output becomes a log line with the function and the request", async () => {
    const response = await server.invoke("echo", { message: "hello logs", log: true }, {
      headers: { "content-type": "application/json", "x-request-id": "req-logs-1" },
    });
    await response.body?.cancel();
    const line = await server.waitForLog((l) => l.msg === "function log" && l.request === "req-logs-1");
    assert.equal(line.function, "echo");
    assert.equal(line.level, "info");
    assert.match(String(line.text), /^echo says hello logs \{ length: 10 \}$/);
  });

  await t.step(
    "GET /metrics counts requests by function and status, latency, batches, restarts and queues",
    async () => {
      for (let i = 0; i < 3; i++) await (await server.invoke("echo", { message: "m" })).body?.cancel();
      await errorOf(await server.invoke("echo", { message: 1 }));
      await errorOf(await server.invoke("limits", { spinMs: 5000 }));
      // A stuck isolate is ended once its abort grace has passed, not at the deadline itself.
      await server.waitForLog((l) => l.msg === "isolate stopped" && l.function === "limits" && l.code === "timeout");
      await errorOf(await server.invoke("no-such-function", {}));
      const response = await fetch(`${server.url}/metrics`);
      assert.match(response.headers.get("content-type") ?? "", /text\/plain/);
      const text = await response.text();
      assert.ok(sample(text, "isolane_requests_total", { function: "echo", status: "200" })! >= 5);
      assert.equal(sample(text, "isolane_requests_total", { function: "echo", status: "400" }), 1);
      assert.equal(sample(text, "isolane_requests_total", { function: "limits", status: "504" }), 1);
      assert.equal(sample(text, "isolane_requests_total", { function: "unknown", status: "404" }), 1);
      assert.ok(sample(text, "isolane_request_duration_seconds_count", { function: "echo" })! >= 6);
      assert.ok(sample(text, "isolane_batch_size_count", { function: "echo" })! >= 5);
      assert.equal(sample(text, "isolane_isolate_restarts_total", { function: "limits", reason: "timeout" }), 1);
      assert.equal(sample(text, "isolane_queue_depth", { function: "echo" }), 0);
      assert.equal(sample(text, "isolane_function_up", { function: "echo" }), 1);
      assert.equal(sample(text, "isolane_function_up", { function: "broken" }), 0);
      assert.ok(sample(text, "isolane_isolates", { function: "echo" })! >= 1);
      assert.ok(sample(text, "isolane_process_resident_memory_bytes", {})! > 0);
    },
  );
});

Deno.test("operations: /openapi.json is valid OpenAPI 3.1 with each function's schemas; /docs serves Swagger UI", async () => {
  await using server = await startServer({ functionsDir: fixtures });
  const doc = await (await fetch(`${server.url}/openapi.json`)).json();
  const result = await new Validator().validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors));
  assert.equal(doc.openapi, "3.1.0");
  const echo = doc.paths["/v1/functions/echo"].post;
  assert.equal(echo.summary, "Echoes a message, optionally after a delay");
  const input = echo.requestBody.content["application/json"].schema;
  assert.deepEqual(input.required, ["message"]);
  assert.equal(input.properties.delayMs.type, "integer");
  assert.equal(echo.responses["200"].content["application/json"].schema.properties.message.type, "string");
  // Any handler may stream: its answers as NDJSON lines or Server-Sent Events are described too.
  assert.deepEqual(Object.keys(echo.responses["200"].content).sort(), [
    "application/json",
    "application/x-ndjson",
    "text/event-stream",
  ]);
  assert.equal(echo.responses["429"].content["application/json"].schema.$ref, "#/components/schemas/Error");
  assert.equal(doc.paths["/v1/functions/broken"], undefined, "functions that failed to load are not described");
  // A function's raw bodies (its raw.accepts) are described beside JSON, so /docs can send files.
  const stream = doc.paths["/v1/functions/stream"].post.requestBody.content;
  assert.deepEqual(Object.keys(stream).sort(), [
    "application/json",
    "application/octet-stream",
    "image/png",
    "multipart/form-data",
  ]);
  assert.equal(stream["image/png"].schema.contentMediaType, "image/png");
  // KServe v2 routes, with the tensor functions named; a signature gives the /v1 schema too.
  assert.deepEqual(doc.paths["/v2/models/{name}/infer"].parameters[0].schema.examples, ["dtypes", "strings"]);
  assert.ok(doc.paths["/v2/models/{name}/infer"].post.requestBody.content["application/octet-stream"]);
  assert.equal(
    doc.paths["/v2/models/{name}/config"].get.responses["200"].content["application/json"].schema.$ref,
    "#/components/schemas/V2ModelConfig",
  );
  const strings = doc.paths["/v1/functions/strings"].post;
  assert.deepEqual(strings.requestBody.content["application/json"].schema.properties.text.items, {
    type: "string",
    description: "BYTES[-1]",
  });
  const page = await fetch(`${server.url}/docs`);
  const html = await page.text();
  assert.match(html, /SwaggerUIBundle\(\{ url: "\/openapi\.json"/);
  const bundle = await fetch(`${server.url}/docs/assets/swagger-ui-bundle.js`);
  assert.equal(bundle.status, 200);
  assert.match(bundle.headers.get("content-type") ?? "", /javascript/);
  assert.ok((await bundle.arrayBuffer()).byteLength > 100_000);
  assert.equal((await errorOf(await fetch(`${server.url}/docs/assets/..%2Fpackage.json`))).status, 404);
});

Deno.test("operations: SIGTERM stops accepting, finishes requests in flight, and exits 0", async () => {
  const server = await startServer({ functionsDir: fixtures });
  const slow = server.invoke("echo", { message: "finish me", delayMs: 1500 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stopping = server.stop();
  await server.waitForLog((l) => l.msg === "shutting down");
  await assert.rejects(fetch(`${server.url}/healthz`), "new connections are refused once shutdown starts");
  const response = await slow;
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { message: "finish me" });
  const status = await stopping;
  assert.equal(status.code, 0);
  const stopped = server.logs.find((l) => l.msg === "stopped");
  assert.equal(stopped?.requests, "drained");
});

Deno.test("operations: Ctrl-C on `deno task start` (SIGINT to the whole process group) drains and exits 0", async () => {
  const repo = fileURLToPath(new URL("..", import.meta.url));
  // setsid: the task runner, the runtime and its process-hosted isolates in a process group of their own, as a
  // terminal's foreground job is; SIGINT to the group is what Ctrl-C sends.
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "task", "start"],
    cwd: repo,
    env: { PORT: "0", HOST: "127.0.0.1", ISOLANE_FUNCTIONS: fixtures, ISOLANE_ISOLATION: "process", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  let listening: ((url: string) => void) | undefined;
  const url = new Promise<string>((resolve) => (listening = resolve));
  const reading = (async () => {
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
        const text = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        try {
          const line = JSON.parse(text);
          lines.push(line);
          if (line.msg === "listening") listening!(line.url);
        } catch { /* the task runner's own lines */ }
      }
    }
  })();
  try {
    const base = await url;
    const slow = fetch(`${base}/v1/functions/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: "finish me", delayMs: 1500 }),
    });
    // Interrupt once an isolate holds the request, as the API shows it.
    while (
      !(await (await fetch(`${base}/v1/functions/echo`)).json()).isolates.some((i: { status: string }) =>
        i.status === "busy"
      )
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    Deno.kill(-child.pid, "SIGINT");
    const response = await slow;
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { message: "finish me" });
    const status = await child.status;
    await reading;
    assert.equal(status.code, 0, JSON.stringify(lines.slice(-5)));
    assert.equal(lines.find((l) => l.msg === "stopped")?.requests, "drained");
    assert.ok(!lines.some((l) => l.msg === "isolate stopped"), "no isolate died of the Ctrl-C");
  } finally {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* gone */ }
  }
});
