/**
 * HTTP threads (`ISOLANE_HTTP_THREADS`): the port is served by Workers that
 * share it (`SO_REUSEPORT`) and hand invocations to the main thread's pools.
 * Everything a client sees must be as with HTTP on the main thread: answers,
 * errors, streams, v2 (JSON and binary), auth, the admin API, metrics, 429s.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startServer, type TestServer } from "./support/server.ts";
import { adminToken, deployOk } from "./support/bundles.ts";
import { greeterModule } from "./support/greeter.ts";
import { infer } from "./support/triton_client.ts";

const mlpModel = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));

/** A Worker function with one isolate that answers once a file of its folder exists; `limits` are its queue's. */
function fileGate(what: string, limits: string): string {
  return `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Answers once a file of its folder exists: ${what}",
  input: z.object({ file: z.string() }),
  output: z.object({ ok: z.boolean() }),
  instances: 1,
  ${limits}
  isolation: "worker",
  maxBodyBytes: 256,
  async handler({ file }) {
    const path = new URL(file, import.meta.url);
    for (;;) {
      try {
        await Deno.stat(path);
        return { ok: true };
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  },
});
`;
}

/** The 4→16→3 MLP, batched, in two Worker isolates on the CPU, with `handler` (its source text). */
function workerMlp(description: string, handler: string): string {
  return `import { defineFunction, runModel } from "isolane";
export default defineFunction({
  description: "${description}",
  models: { mlp: "mlp.onnx" },
  device: "cpu",
  isolation: "worker",
  instances: 2,
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  dynamicBatching: { maxBatchSize: 32, maxQueueDelayMs: 2 },
  handler: ${handler},
});
`;
}

const sources: Record<string, string> = {
  greet: greeterModule("hello"),
  mlp: `import { defineFunction } from "isolane";
export default defineFunction({
  description: "4→16→3 MLP, batched",
  models: { mlp: "mlp.onnx" },
  // On the CPU everywhere: a GPU's TF32 answers depend on the batch, and these tests compare answers exactly.
  device: "cpu",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  dynamicBatching: { maxBatchSize: 32, maxQueueDelayMs: 2 },
  maxBodyBytes: 4096,
  handler: ({ x }, { models }) => models.mlp.run({ x }),
});
`,
  // In Worker isolates: the threads hand their tensors to the isolate through their arenas, and it answers them.
  mlpw: workerMlp("4→16→3 MLP, batched, in Worker isolates", "({ x }, { models }) => models.mlp.run({ x })"),
  // runModel in Worker isolates: the runtime runs the model itself, the jobs' inputs copied out of the threads'
  // arenas into one buffer and their answers written from the batch's outputs into the threads' answer rings.
  mlpr: workerMlp("4→16→3 MLP, batched runModel, in Worker isolates", 'runModel("mlp")'),
  // Sends a batch only once it has 16 rows; a batch with a row starting -999 ends its isolate.
  crash: `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Ends its isolate on a poisoned batch",
  models: { mlp: "mlp.onnx" },
  device: "cpu",
  isolation: "worker",
  instances: 1,
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  dynamicBatching: { maxBatchSize: 16, maxQueueDelayMs: 10000 },
  timeoutMs: 60000,
  handler: ({ x }, { models }) => {
    if (Array.from(x.data as Float32Array).includes(-999)) Deno.exit(1);
    return models.mlp.run({ x });
  },
});
`,
  count: `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Streams n items",
  input: z.object({ n: z.number().int().min(0).max(10) }),
  output: z.object({ i: z.number() }),
  async *handler({ n }) {
    for (let i = 0; i < n; i++) yield { i };
  },
});
`,
  guarded: `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Needs an invocation key",
  input: z.object({}),
  output: z.object({ ok: z.boolean() }),
  auth: "key",
  handler: () => ({ ok: true }),
});
`,
  gate: fileGate("one running, one waiting, the rest refused", "queueDepth: 1,"),
  // As gate, with room in its queue and a 2 s deadline: once its one request has run a second, the next would wait
  // past the deadline.
  late: fileGate("refuses what would answer past its deadline", "queueDepth: 8,\n  timeoutMs: 2000,"),
  slow: `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "One isolate, one waiting request",
  input: z.object({ sleepMs: z.number() }),
  output: z.object({ ok: z.boolean() }),
  instances: 1,
  queueDepth: 1,
  isolation: "worker",
  async handler({ sleepMs }) {
    await new Promise((resolve) => setTimeout(resolve, sleepMs));
    return { ok: true };
  },
});
`,
};

async function functionsDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-threads-" });
  for (const [name, source] of Object.entries(sources)) {
    await Deno.mkdir(join(dir, name));
    await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
  }
  for (const name of ["mlp", "mlpw", "mlpr", "crash"]) await Deno.copyFile(mlpModel, join(dir, name, "mlp.onnx"));
  return dir;
}

/** POSTs JSON on a connection of its own, so that connections spread over the threads. */
async function post(server: TestServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const response = await fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      client,
    });
    return { response, text: await response.text() };
  } finally {
    client.close();
  }
}

/** The request log line of a request id, as the runtime wrote it. */
/**
 * A function's API view once its pool has counted at least `direct` answers that went straight from an isolate to a
 * thread. The pool counts such an answer when the isolate's results reach the main thread, which can be after the
 * thread has answered the client: the view is read until the count arrives (at most about 5 s), and the caller
 * asserts the exact figures.
 */
async function viewOnceDirect(server: TestServer, name: string, direct: number) {
  for (let tries = 0;; tries++) {
    const info = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
    if (info.sharedAnswers.direct >= direct || tries >= 250) return info;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function requestLine(server: TestServer, id: string) {
  return server.waitForLog((l) => l.msg === "request" && l.id === id, 10_000);
}

Deno.test("HTTP threads serve every route as the main thread does", async (t) => {
  const dir = await functionsDir();
  await using server = await startServer({
    functionsDir: dir,
    env: { ISOLANE_HTTP_THREADS: "2", ISOLANE_ADMIN_TOKEN: adminToken },
  });
  const listening = await server.waitForLog((l) => l.msg === "listening");
  assert.equal(listening.httpThreads, 2);

  await t.step("invocations are answered by both threads, each request once", async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => post(server, "/v1/functions/greet", { name: `n${i}` })),
    );
    const threads = new Set<unknown>();
    for (const [i, { response, text }] of answers.entries()) {
      assert.equal(response.status, 200, text);
      assert.deepEqual(JSON.parse(text), { message: `hello n${i}` });
      const line = await requestLine(server, response.headers.get("x-request-id")!);
      assert.equal(line.status, 200);
      threads.add(line.thread);
    }
    // The kernel spreads connections over the listeners: 40 connections all on one of two would be 2^-39.
    assert.deepEqual([...threads].sort(), [0, 1]);
  });

  await t.step("errors keep their status and shape", async () => {
    const bad = await post(server, "/v1/functions/greet", { name: 5 });
    assert.equal(bad.response.status, 400);
    assert.equal(JSON.parse(bad.text).error.code, "invalid_input");
    const notJson = await post(server, "/v1/functions/greet", "{");
    assert.equal(notJson.response.status, 400);
    assert.equal(JSON.parse(notJson.text).error.code, "invalid_json");
    const missing = await post(server, "/v1/functions/nosuch", {});
    assert.equal(missing.response.status, 404);
    assert.equal(JSON.parse(missing.text).error.code, "not_found");
  });

  await t.step("a batched tensor function: concurrent answers equal each request sent alone", async () => {
    const rows = Array.from({ length: 48 }, (_, i) => [[i / 10, -i / 20, 0.5, i % 3]]);
    const alone: unknown[] = [];
    for (const x of rows.slice(0, 8)) alone.push(JSON.parse((await post(server, "/v1/functions/mlp", { x })).text));
    const together = await Promise.all(rows.map((x) => post(server, "/v1/functions/mlp", { x })));
    for (const [i, { response, text }] of together.entries()) {
      assert.equal(response.status, 200, text);
      if (i < 8) assert.deepEqual(JSON.parse(text), alone[i]);
    }
    const info = await (await fetch(`${server.url}/v1/functions/mlp`)).json();
    assert.ok(info.recentBatchSizes.some((n: number) => n > 1), JSON.stringify(info.recentBatchSizes));
  });

  await t.step("a gzip body on /v1 is inflated, through a thread, as on /v2", async () => {
    const body = { x: [[0.1, 0.2, 0.3, 0.4]] };
    const plain = await post(server, "/v1/functions/mlp", body);
    const gzipped = await new Response(
      new Blob([JSON.stringify(body)]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer();
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
    try {
      const response = await fetch(`${server.url}/v1/functions/mlp`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": "gzip" },
        body: gzipped,
        client,
      });
      assert.deepEqual([response.status, await response.text()], [200, plain.text]);
    } finally {
      client.close();
    }
  });

  await t.step("v2 infer, JSON and binary, equals /v1", async () => {
    const x = new Float32Array([0.1, 0.2, 0.3, 0.4]);
    const v1 = JSON.parse((await post(server, "/v1/functions/mlp", { x: [[...x]] })).text);
    for (const binary of [false, true]) {
      const answer = await infer(server.url, "mlp", [{ name: "x", shape: [1, 4], datatype: "FP32", data: x, binary }], {
        outputs: [{ name: "y", binary }],
      });
      assert.equal(answer.status, 200, answer.error ?? "");
      const y = answer.result!.outputs.get("y")!;
      const values = binary ? [...new Float32Array(y.bytes!.slice().buffer)] : y.data as number[];
      // JSON FP32 is the shortest text of each float32: the same float32s as binary.
      assert.deepEqual(values.map(Math.fround), v1.y.flat().map(Math.fround));
    }
    const wrong = await infer(server.url, "mlp", [{ name: "x", shape: [1, 3], datatype: "FP32", data: x.slice(0, 3) }]);
    assert.equal(wrong.status, 400);
  });

  await t.step("process isolates: the main thread relays the tensors of the threads' requests", async () => {
    const info = await (await fetch(`${server.url}/v1/functions/mlp`)).json();
    assert.equal(info.sharedAnswers.direct, 0);
    assert.ok(info.sharedAnswers.relayed >= 48, JSON.stringify(info.sharedAnswers));
  });

  await t.step(
    "Worker isolates answer the threads directly: batched answers equal answers alone, v1 and v2",
    async () => {
      const rows = Array.from({ length: 48 }, (_, i) => [[i / 10, -i / 20, 0.5, i % 3]]);
      // The reference: each request alone, through the process-hosted function.
      const alone = await Promise.all(
        rows.map(async (x) => JSON.parse((await post(server, "/v1/functions/mlp", { x })).text)),
      );
      const before = (await (await fetch(`${server.url}/v1/functions/mlpw`)).json()).sharedAnswers;
      const together = await Promise.all(rows.map((x) => post(server, "/v1/functions/mlpw", { x })));
      for (const [i, { response, text }] of together.entries()) {
        assert.equal(response.status, 200, text);
        assert.deepEqual(JSON.parse(text), alone[i]);
      }
      for (const binary of [false, true]) {
        const answers = await Promise.all(
          rows.slice(0, 16).map((x) =>
            infer(server.url, "mlpw", [{
              name: "x",
              shape: [1, 4],
              datatype: "FP32",
              data: new Float32Array(x[0]),
              binary,
            }], {
              outputs: [{ name: "y", binary }],
            })
          ),
        );
        for (const [i, answer] of answers.entries()) {
          assert.equal(answer.status, 200, answer.error ?? "");
          const y = answer.result!.outputs.get("y")!;
          const values = binary ? [...new Float32Array(y.bytes!.slice().buffer)] : y.data as number[];
          assert.deepEqual(values.map(Math.fround), alone[i].y.flat().map(Math.fround));
        }
      }
      const info = await viewOnceDirect(server, "mlpw", before.direct + 48 + 32);
      // Every answer went from an isolate to its thread: the main thread carried none of their tensors.
      assert.equal(info.sharedAnswers.direct - before.direct, 48 + 32);
      assert.equal(info.sharedAnswers.relayed, before.relayed);
      assert.ok(info.recentBatchSizes.some((n: number) => n > 1), JSON.stringify(info.recentBatchSizes));
    },
  );

  await t.step("an answer larger than a link's answer ring reaches its thread whole, among ring answers", async () => {
    const rows = Array.from({ length: 48 }, (_, i) => [i / 10, -i / 20, 0.5, i % 3]);
    const reference = await infer(server.url, "mlpw", [
      { name: "x", shape: [48, 4], datatype: "FP32", data: new Float32Array(rows.flat()), binary: true },
    ], { outputs: [{ name: "y", binary: true }] });
    assert.equal(reference.status, 200, reference.error ?? "");
    const expected = new Float32Array(reference.result!.outputs.get("y")!.bytes!.slice().buffer);
    // 2,400 × 48 rows: 1.3 MiB of output, more than a ring of 1 MiB holds; sent among small requests of both threads.
    const repeats = 2400;
    const big = new Float32Array(rows.length * 4 * repeats);
    for (let r = 0; r < repeats; r++) big.set(rows.flat(), r * rows.length * 4);
    const before = (await (await fetch(`${server.url}/v1/functions/mlpw`)).json()).sharedAnswers;
    const [large, ...small] = await Promise.all([
      infer(server.url, "mlpw", [
        { name: "x", shape: [rows.length * repeats, 4], datatype: "FP32", data: big, binary: true },
      ], { outputs: [{ name: "y", binary: true }] }),
      ...rows.map((x) => post(server, "/v1/functions/mlpw", { x: [x] })),
    ]);
    assert.equal(large.status, 200, large.error ?? "");
    const y = new Float32Array(large.result!.outputs.get("y")!.bytes!.slice().buffer);
    assert.equal(y.length, expected.length * repeats);
    for (let r = 0; r < repeats; r++) {
      assert.deepEqual(y.subarray(r * expected.length, (r + 1) * expected.length), expected, `repeat ${r}`);
    }
    for (const [i, { response, text }] of small.entries()) {
      assert.equal(response.status, 200, text);
      assert.deepEqual(JSON.parse(text).y.flat().map(Math.fround), [...expected.subarray(i * 3, i * 3 + 3)]);
    }
    const info = await viewOnceDirect(server, "mlpw", before.direct + 1 + rows.length);
    assert.equal(info.sharedAnswers.direct - before.direct, 1 + rows.length);
    assert.equal(info.sharedAnswers.relayed, before.relayed);
  });

  await t.step(
    "a batched runModel function in Worker isolates: each answer, binary or JSON, equals its request alone",
    async () => {
      // 1 to 3 rows each, every request's own values: an answer cut from the wrong rows of a batch, or from another
      // request's inputs, differs from the request's answer alone.
      const requests = Array.from(
        { length: 48 },
        (_, i) => Array.from({ length: 1 + (i % 3) }, (_, r) => [i / 10, -r / 4, 0.5 - i / 40, (i + r) % 5]),
      );
      const binary = (rows: number[][]) =>
        infer(server.url, "mlpr", [
          { name: "x", shape: [rows.length, 4], datatype: "FP32", data: new Float32Array(rows.flat()), binary: true },
        ], { outputs: [{ name: "y", binary: true }] });
      const values = (answer: Awaited<ReturnType<typeof binary>>) => {
        assert.equal(answer.status, 200, answer.error ?? "");
        return [...new Float32Array(answer.result!.outputs.get("y")!.bytes!.slice().buffer)];
      };
      const alone: number[][] = [];
      for (const rows of requests) alone.push(values(await binary(rows)));
      const before = (await (await fetch(`${server.url}/v1/functions/mlpr`)).json()).sharedAnswers;
      // Twice over, the second time as /v1 JSON: both go through the isolates' answer rings.
      const together = await Promise.all([
        ...requests.map((rows) => binary(rows)),
        ...requests.map((rows) => post(server, "/v1/functions/mlpr", { x: rows })),
      ]);
      for (const [i, answer] of together.entries()) {
        if (i < requests.length) {
          assert.deepEqual(values(answer as Awaited<ReturnType<typeof binary>>), alone[i], `binary request ${i}`);
          continue;
        }
        const { response, text } = answer as Awaited<ReturnType<typeof post>>;
        assert.equal(response.status, 200, text);
        const j = i - requests.length;
        assert.deepEqual(JSON.parse(text).y.flat().map(Math.fround), alone[j], `JSON request ${j}`);
      }
      const info = await viewOnceDirect(server, "mlpr", before.direct + 2 * requests.length);
      assert.ok(info.recentBatchSizes.some((n: number) => n > 1), JSON.stringify(info.recentBatchSizes));
      assert.equal(info.sharedAnswers.direct - before.direct, 2 * requests.length);
    },
  );

  await t.step("an isolate that ends mid-batch answers the requests of every thread with an error", async () => {
    // 16 rows make a batch: all these requests run together, one of them poisoned.
    const answers = await Promise.all(
      Array.from({ length: 16 }, (_, i) => post(server, "/v1/functions/crash", { x: [[i === 7 ? -999 : i, 0, 0, 0]] })),
    );
    const threads = new Set<unknown>();
    for (const { response, text } of answers) {
      assert.equal(response.status, 500, text);
      assert.equal(JSON.parse(text).error.code, "isolate_crashed");
      threads.add((await requestLine(server, response.headers.get("x-request-id")!)).thread);
    }
    assert.deepEqual([...threads].sort(), [0, 1]);
    await server.waitForLog((l) => l.msg === "isolate respawned" && l.function === "crash", 30_000);
    // The new isolate serves the threads directly again.
    const again = await Promise.all(
      Array.from({ length: 16 }, (_, i) => post(server, "/v1/functions/crash", { x: [[i, 0, 0, 0]] })),
    );
    for (const { response, text } of again) assert.equal(response.status, 200, text);
    const info = await viewOnceDirect(server, "crash", 16);
    assert.deepEqual(info.sharedAnswers, { direct: 16, relayed: 0 });
  });

  await t.step("a client that goes away cancels its tensor request waiting in the queue", async () => {
    const info = async () => await (await fetch(`${server.url}/v1/functions/crash`)).json();
    const controller = new AbortController();
    const call = fetch(`${server.url}/v1/functions/crash`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x: [[1, 2, 3, 4]] }),
      signal: controller.signal,
    }).catch((error) => error);
    // One row of the 16 a batch waits for: it stays queued until its client goes away.
    const until = async (queued: number) => {
      for (let tries = 0; (await info()).queued !== queued; tries++) {
        assert.ok(tries < 500, `the queue never held ${queued}: ${JSON.stringify(await info())}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    await until(1);
    controller.abort();
    assert.ok((await call) instanceof Error);
    await until(0);
  });

  await t.step("a streaming handler streams NDJSON through a thread", async () => {
    const { response, text } = await post(server, "/v1/functions/count", { n: 3 });
    assert.equal(response.headers.get("content-type"), "application/x-ndjson");
    assert.deepEqual(text.trimEnd().split("\n").map((l) => JSON.parse(l)), [{ i: 0 }, { i: 1 }, { i: 2 }]);
  });

  await t.step("a function with auth is served whole by the main thread: 401 without a key, 200 with one", async () => {
    const refused = await post(server, "/v1/functions/guarded", {});
    assert.equal(refused.response.status, 401);
    assert.match(refused.response.headers.get("www-authenticate") ?? "", /^Bearer/);
    const line = await requestLine(server, refused.response.headers.get("x-request-id")!);
    assert.equal(line.thread, undefined, "the main thread's log line, not a thread's");
    const key = await fetch(`${server.url}/v1/functions/guarded/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(key.status, 201);
    const { key: secret } = await key.json();
    const allowed = await post(server, "/v1/functions/guarded", {}, { authorization: `Bearer ${secret}` });
    assert.equal(allowed.response.status, 200, allowed.text);
  });

  await t.step("deploys over HTTP go through whole, and the new version is invoked directly", async () => {
    const version = await deployOk(server, "hi", { "mod.ts": greeterModule("hi") });
    assert.ok(version >= 1);
    const { response, text } = await post(server, "/v1/functions/hi", { name: "there" });
    assert.equal(response.status, 200, text);
    assert.deepEqual(JSON.parse(text), { message: "hi there" });
  });

  await t.step(
    "a redeploy that changes the signature: a request sent the moment it answered decodes by the new one",
    async () => {
      const identity = (datatype: string) =>
        `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Identity on ${datatype}",
  signature: {
    inputs: [{ name: "x", datatype: "${datatype}", shape: [-1, 2] }],
    outputs: [{ name: "y", datatype: "${datatype}", shape: [-1, 2] }],
  },
  handler: ({ x }) => ({ y: x }),
});
`;
      // Each thread kept its copy of the signatures for up to 250 ms after a deploy answered: INT32 data after a
      // redeploy to INT32 was refused ("must be FP32") by a thread that still held the FP32 version.
      for (const datatype of ["FP32", "INT32", "FP32", "INT32", "FP32", "INT32"]) {
        await deployOk(server, "retyped", { "mod.ts": identity(datatype) });
        const answers = await Promise.all([0, 1, 2, 3].map(() =>
          post(server, "/v2/models/retyped/infer", {
            inputs: [{ name: "x", shape: [1, 2], datatype, data: [3, 4] }],
          })
        ));
        for (const { response, text } of answers) {
          assert.equal(response.status, 200, `${datatype}: ${text}`);
          assert.deepEqual(JSON.parse(text).outputs[0], { name: "y", datatype, shape: [1, 2], data: [3, 4] });
        }
      }
    },
  );

  await t.step(
    "a request sent the moment a DELETE answered meets 404 on every thread, as on the main thread",
    async () => {
      const identity = `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Identity on FP32",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 2] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 2] }],
  },
  handler: ({ x }) => ({ y: x }),
});
`;
      const int32 = { inputs: [{ name: "x", shape: [1, 2], datatype: "INT32", data: [3, 4] }] };
      // The main thread's answer for a function it does not know (the threads hand it such a request whole).
      const never = await post(server, "/v2/models/never-deployed/infer", int32);
      assert.equal(never.response.status, 404, never.text);
      // Each thread kept its copy of the signatures for up to 250 ms after a DELETE answered: INT32 data was refused
      // 400 ("must be FP32") by a thread that still held the deleted version, where the main thread answers 404.
      for (let round = 0; round < 3; round++) {
        await deployOk(server, "deleted", { "mod.ts": identity });
        const ok = await post(server, "/v2/models/deleted/infer", {
          inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [3, 4] }],
        });
        assert.equal(ok.response.status, 200, ok.text);
        const deleted = await fetch(`${server.url}/v1/functions/deleted`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${adminToken}` },
        });
        assert.deepEqual(await deleted.json(), { name: "deleted", deleted: true });
        const answers = await Promise.all([0, 1, 2, 3].map(() => post(server, "/v2/models/deleted/infer", int32)));
        for (const { response, text } of answers) {
          assert.equal(response.status, 404, text);
          assert.deepEqual(JSON.parse(text), JSON.parse(never.text.replaceAll("never-deployed", "deleted")));
        }
      }
    },
  );

  await t.step("a full queue answers 429 with Retry-After through a thread", async () => {
    const answers = await Promise.all(
      [0, 1, 2, 3].map(() => post(server, "/v1/functions/slow", { sleepMs: 600 })),
    );
    const statuses = answers.map((a) => a.response.status).sort();
    assert.ok(statuses.includes(429), String(statuses));
    assert.ok(statuses.includes(200), String(statuses));
    const refused = answers.find((a) => a.response.status === 429)!;
    assert.equal(JSON.parse(refused.text).error.code, "queue_full");
    assert.match(refused.response.headers.get("retry-after") ?? "", /^\d+$/);
  });

  /** Where the log stood once the next step had a request waiting (its polling of the board has begun then). */
  let queuedAt = 0;
  await t.step("a full queue is refused by the thread before the body is read", async () => {
    // Held until the test opens the gate: one request runs, one waits, the queue is full for as long as it takes.
    const gate = `open-${crypto.randomUUID()}`;
    const info = async () => await (await fetch(`${server.url}/v1/functions/gate`)).json();
    const until = async (done: (i: { queued: number; isolates: { status: string }[] }) => boolean) => {
      while (!done(await info())) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const busy = [post(server, "/v1/functions/gate", { file: gate })];
    await until((i) => i.isolates[0].status === "busy");
    busy.push(post(server, "/v1/functions/gate", { file: gate }));
    await until((i) => i.queued === 1);
    queuedAt = server.logs.length;
    // The main thread posts the queue's state on the admission board. A body over the function's limit is refused
    // with 413 before it is read, unless the board already shows the full queue: then the thread refuses it first
    // (429), with the pool's own reason, as Hono's route on the main thread gives it.
    let refused: { response: Response; text: string } | undefined;
    let last = "";
    for (let tries = 0; !refused; tries++) {
      assert.ok(tries < 500, `no thread refused the full queue before reading a body; last answer: ${last}`);
      const probe = await post(server, "/v1/functions/gate", { file: "mod.ts", pad: "x".repeat(300) });
      last = `${probe.response.status} ${probe.text}`;
      if (probe.response.status === 429) refused = probe;
      else assert.equal(probe.response.status, 413, last);
    }
    // A body that never arrives: only a refusal made before reading it can answer.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
    try {
      const head =
        "POST /v1/functions/gate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
      await conn.write(new TextEncoder().encode(head + '{"file":'));
      const buffer = new Uint8Array(4096);
      const n = await conn.read(buffer);
      const text = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
      assert.match(text, /^HTTP\/1\.1 429/);
      assert.match(text, /retry-after: \d+/i);
    } finally {
      conn.close();
      await Deno.writeTextFile(join(dir, "gate", gate), "open");
    }
    for (const r of await Promise.all(busy)) assert.equal(r.response.status, 200, r.text);
    await Deno.remove(join(dir, "gate", gate));
    assert.deepEqual(JSON.parse(refused.text).error, {
      code: "queue_full",
      message: "Function 'gate' has 1 requests waiting, its limit; retry later",
    });
    assert.match(refused.response.headers.get("retry-after") ?? "", /^\d+$/);
  });

  await t.step("the admission board is polled only while a direct function has requests waiting", async () => {
    const idleLines = (from: number) => server.logs.slice(from).filter((l) => l.msg === "admission board idle");
    const idleAfter = (from: number) =>
      server.waitForLog((l) => l.msg === "admission board idle" && server.logs.indexOf(l) >= from, 10_000);
    // The polling of the step before ends first.
    await idleAfter(queuedAt);
    const from = server.logs.length;
    // A request that finds an idle isolate starts no polling. (Before, each one started it, and a poll of the board
    // while this one runs, with no queue, ended it with a log line of its own.)
    const lone = await post(server, "/v1/functions/slow", { sleepMs: 100 });
    assert.equal(lone.response.status, 200, lone.text);
    // A request that waits in the queue starts it; once no queue holds a request, it stops.
    const gate = `open-${crypto.randomUUID()}`;
    const info = async () => await (await fetch(`${server.url}/v1/functions/gate`)).json();
    const until = async (done: (i: { queued: number; isolates: { status: string }[] }) => boolean) => {
      while (!done(await info())) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const calls = [post(server, "/v1/functions/gate", { file: gate })];
    await until((i) => i.isolates[0].status === "busy");
    calls.push(post(server, "/v1/functions/gate", { file: gate }));
    await until((i) => i.queued === 1);
    await Deno.writeTextFile(join(dir, "gate", gate), "open");
    for (const r of await Promise.all(calls)) assert.equal(r.response.status, 200, r.text);
    const idle = await idleAfter(from);
    assert.ok(Number(idle.polls) >= 1, JSON.stringify(idle));
    assert.equal(idleLines(from).length, 1, JSON.stringify(idleLines(from)));
    await Deno.remove(join(dir, "gate", gate));
  });

  await t.step("a wait past the deadline is refused by the thread with the pool's reason", async () => {
    const gate = `open-${crypto.randomUUID()}`;
    const info = async () => await (await fetch(`${server.url}/v1/functions/late`)).json();
    const until = async (done: (i: { queued: number; isolates: { status: string }[] }) => boolean) => {
      while (!done(await info())) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const held = [post(server, "/v1/functions/late", { file: gate })];
    await until((i) => i.isolates[0].status === "busy");
    held.push(post(server, "/v1/functions/late", { file: gate }));
    await until((i) => i.queued === 1);
    // With no batch finished yet, the running one's age stands for a batch's time: once it passes 1 s, a request
    // queued now would wait for two such, past the 2 s deadline, and the pool refuses it though its queue has room.
    // Bodies over the limit are 413 until the board shows that refusal; then the thread asks the main thread first.
    let refused: { response: Response; text: string } | undefined;
    try {
      let last = "";
      for (let tries = 0; !refused; tries++) {
        assert.ok(tries < 1000, `no thread refused a wait past the deadline; last answer: ${last}`);
        const probe = await post(server, "/v1/functions/late", { file: "mod.ts", pad: "x".repeat(300) });
        last = `${probe.response.status} ${probe.text}`;
        if (probe.response.status === 429) refused = probe;
        else {
          assert.equal(probe.response.status, 413, last);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    } finally {
      await Deno.writeTextFile(join(dir, "late", gate), "open");
    }
    const error = JSON.parse(refused.text).error;
    assert.equal(error.code, "queue_full");
    assert.match(error.message, /^Function 'late' would answer in about \d+ ms, past its 2000 ms limit; retry later$/);
    assert.match(refused.response.headers.get("retry-after") ?? "", /^\d+$/);
    // Both held requests are answered, each once (the queued one may have passed its deadline by then).
    const statuses = (await Promise.all(held)).map((r) => r.response.status);
    assert.equal(statuses[0], 200);
    assert.ok([200, 504].includes(statuses[1]), String(statuses));
    await Deno.remove(join(dir, "late", gate));
  });

  await t.step("a client that goes away cancels its request in the main thread's pool", async () => {
    const controller = new AbortController();
    const call = fetch(`${server.url}/v1/functions/slow`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sleepMs: 4000 }),
      signal: controller.signal,
    }).catch((error) => error);
    // The handler ignores its signal: only a cancel that reached the pool ends its isolate, after abortGraceMs.
    // Abort once the isolate holds the request, as the API shows it.
    while ((await (await fetch(`${server.url}/v1/functions/slow`)).json()).isolates[0].status !== "busy") {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    controller.abort();
    assert.ok((await call) instanceof Error);
    const stopped = await server.waitForLog((l) => l.msg === "isolate stopped" && l.function === "slow", 3500);
    assert.equal(stopped.code, "timeout");
  });

  await t.step("the hot tensor routes keep request ids, body limits, error shapes and request logs", async () => {
    const x = [[0.1, 0.2, 0.3, 0.4]];
    // A valid request id comes back and names the request's log line, which says the thread that served it.
    const ok = await post(server, "/v1/functions/mlp?trace=1", { x }, { "x-request-id": "hot-v1" });
    assert.equal(ok.response.status, 200, ok.text);
    assert.equal(ok.response.headers.get("x-request-id"), "hot-v1");
    assert.equal(ok.response.headers.get("content-type"), "application/json");
    const line = await requestLine(server, "hot-v1");
    assert.deepEqual([line.method, line.path, line.status], ["POST", "/v1/functions/mlp", 200]);
    assert.ok(line.thread === 0 || line.thread === 1, JSON.stringify(line));
    // One the request id middleware refuses is replaced by a UUID.
    const renamed = await post(server, "/v1/functions/mlp", { x }, { "x-request-id": "not valid!" });
    assert.equal(renamed.response.status, 200);
    assert.match(
      renamed.response.headers.get("x-request-id")!,
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    // Errors found once the body is read keep each route's shape and the request id.
    const badV1 = await post(server, "/v1/functions/mlp", { x: [[1, 2]] }, { "x-request-id": "hot-bad-v1" });
    assert.equal(badV1.response.status, 400);
    assert.equal(badV1.response.headers.get("x-request-id"), "hot-bad-v1");
    assert.equal(JSON.parse(badV1.text).error.code, "invalid_input");
    assert.equal((await requestLine(server, "hot-bad-v1")).status, 400);
    const badV2 = await post(server, "/v2/models/mlp/infer", {
      inputs: [{ name: "x", shape: [1, 4], datatype: "FP32" }],
    }, {
      "x-request-id": "hot-bad-v2",
    });
    assert.equal(badV2.response.status, 400);
    assert.equal(badV2.response.headers.get("x-request-id"), "hot-bad-v2");
    assert.equal(typeof JSON.parse(badV2.text).error, "string");
    // A body over the function's limit is refused with 413 on both routes, in each one's shape.
    const big = { x: Array.from({ length: 200 }, () => [0.123456, 0.123456, 0.123456, 0.123456]) };
    const tooBig = await post(server, "/v1/functions/mlp", big);
    assert.equal(tooBig.response.status, 413);
    assert.equal(
      JSON.parse(tooBig.text).error.message,
      "Request body is larger than this function's limit of 4096 bytes",
    );
    const tooBigV2 = await post(server, "/v2/models/mlp/infer", {
      inputs: [{ name: "x", shape: [200, 4], datatype: "FP32", data: big.x.flat() }],
    });
    assert.equal(tooBigV2.response.status, 413);
    assert.equal(JSON.parse(tooBigV2.text).error, "Request body is larger than this function's limit of 4096 bytes");
    // A chunked body (no content-length) and a pinned version are served as well.
    const chunked = await fetch(`${server.url}/v1/functions/mlp`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: ReadableStream.from([new TextEncoder().encode(JSON.stringify({ x }))]),
    });
    assert.equal(chunked.status, 200);
    assert.deepEqual(await chunked.json(), JSON.parse(ok.text));
    const pinned = await post(server, "/v2/models/mlp/versions/1/infer", {
      id: "p1",
      inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: x.flat() }],
    });
    assert.equal(pinned.response.status, 200, pinned.text);
    assert.equal(JSON.parse(pinned.text).id, "p1");
  });

  await t.step("metrics count what the threads answered", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const count = Number(/isolane_requests_total\{function="greet",status="200"\} (\d+)/.exec(text)?.[1]);
    assert.equal(count, 40);
    assert.match(text, /isolane_requests_total\{function="greet",status="400"\} 2/);
    // Answers that came to the threads on their links are counted as every other.
    // 48 + 32 answers alone and batched, then the answer larger than the ring, its reference and 48 around it.
    assert.match(text, /isolane_requests_total\{function="mlpw",status="200"\} 130\n/);
    assert.match(text, /isolane_requests_total\{function="crash",status="500"\} 16\n/);
    assert.match(text, /isolane_requests_total\{function="crash",status="200"\} 16\n/);
  });
});
