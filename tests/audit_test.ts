/**
 * What an audit of issues 14, 15 and 17 found, tried as a user would against a
 * real server: nested `/v2` data that is not nested as its shape says (ragged
 * rows, one level too deep) must be refused, not flattened into other rows; a
 * BYTES string with a lone surrogate is not text; `"outputs": []` returns
 * every output, as Triton does; a definition's options are checked where they
 * are nested (`dynamicBatching`), and batching needs inputs with rows; a
 * batch whose handler call fails answers each request as if sent alone; a
 * JSON function may take its batches as a list (`batchHandler`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, until } from "./support/server.ts";
import { v2FunctionsDir } from "./support/tiny_models.ts";

const encoder = new TextEncoder();

async function post(url: string, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  // No content type, as Triton's client sends it.
  const response = await fetch(url, { method: "POST", body: encoder.encode(body) });
  return { status: response.status, body: await response.json() };
}

const batchable = (shape: number[]) =>
  `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Identity with dynamic batching",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: ${JSON.stringify(shape)} }],
    outputs: [{ name: "y", datatype: "FP32", shape: ${JSON.stringify(shape)} }],
  },
  dynamicBatching: { maxBatchSize: 8, maxQueueDelayMs: 50 },
  handler: ({ x }) => ({ y: x }),
});
`;

Deno.test("audit of issues 14 and 17: data nested as its shape, well-formed strings, outputs: [], batching", async (t) => {
  const functionsDir = await v2FunctionsDir();
  const add = async (name: string, source: string) => {
    await Deno.mkdir(join(functionsDir, name));
    await Deno.writeTextFile(join(functionsDir, name, "mod.ts"), source);
  };
  await add("fixedrows", batchable([2, 2]));
  await add(
    "typo",
    batchable([-1, 2]).replace("maxQueueDelayMs: 50", "maxQueueDelayMs: 50, maxQueueDelayMicroseconds: 50"),
  );
  // Cuts each string after its first UTF-16 unit: half of a surrogate pair, for an emoji.
  await add(
    "cut",
    `import { defineFunction, Tensor } from "isolane";
export default defineFunction({
  description: "First UTF-16 unit of each string",
  signature: {
    inputs: [{ name: "text", datatype: "BYTES", shape: [-1] }],
    outputs: [{ name: "first", datatype: "BYTES", shape: [-1] }],
  },
  handler: ({ text }) => ({ first: new Tensor("string", (text.data as string[]).map((s) => s.slice(0, 1)), text.dims) }),
});
`,
  );
  // Refuses a batch that holds a negative row: a batched call that fails is retried request by request.
  await add(
    "picky",
    `import { defineFunction, InputError } from "isolane";
export default defineFunction({
  description: "Identity that refuses negative rows",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1] }],
  },
  dynamicBatching: { maxBatchSize: 4, maxQueueDelayMs: 10000 },
  handler({ x }) {
    if ((x.data as Float32Array).some((v) => v < 0)) throw new InputError("negative rows are refused");
    return { y: x };
  },
});
`,
  );
  // A JSON function that opts in to batches: each answer says how many requests its call served.
  const listed = (batching: string) =>
    `import { defineFunction, InputError, z } from "isolane";
const double = (x: number, batch: number) => {
  if (x < 0) throw new InputError("negative x is refused");
  return { y: x * 2, batch };
};
export default defineFunction({
  description: "Doubles x, alone or in batches",
  input: z.object({ x: z.number() }),
  output: z.object({ y: z.number(), batch: z.number() }),
  ${batching}
  handler: ({ x }) => double(x, 1),
  batchHandler: (inputs) => inputs.map(({ x }) => double(x, inputs.length)),
});
`;
  await add("listed", listed("dynamicBatching: { maxBatchSize: 4, maxQueueDelayMs: 10000 },"));
  await add("unbatched", listed(""));
  // Each row's value names a marker file the call waits for; each answer says how many rows its call had; a call
  // whose signal aborts throws.
  await Deno.mkdir(join(functionsDir, "gate", "state"), { recursive: true });
  await Deno.writeTextFile(
    join(functionsDir, "gate", "mod.ts"),
    `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Waits for the markers its rows name; answers the rows of its call",
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1] }],
  },
  dynamicBatching: { maxBatchSize: 8, maxQueueDelayMs: 0 },
  abortGraceMs: 200,
  async handler({ x }, { signal }) {
    for (const v of new Set(x.data as Float32Array)) {
      const marker = new URL("./state/m" + v, import.meta.url);
      while (!(await Deno.stat(marker).then(() => true, () => false))) {
        if (signal.aborted) throw new Error("aborted");
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    return { y: { data: new Float32Array(x.dims[0]).fill(x.dims[0]), dims: x.dims } };
  },
});
`,
  );
  await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });
  const infer = (model: string, body: string) => post(`${server.url}/v2/models/${model}/infer`, body);
  const x = (shape: number[], data: unknown) =>
    `{"inputs":[{"name":"x","datatype":"FP32","shape":${JSON.stringify(shape)},"data":${JSON.stringify(data)}}]}`;

  await t.step("nested data must be nested as the shape says; flat and matching nesting pass", async () => {
    const refused: [number[], unknown][] = [
      // Ragged rows: flattened, [5] would move into the second row.
      [[2, 4], [[1, 2, 3, 4, 5], [6, 7, 8]]],
      // One level deeper than the shape.
      [[1, 4], [[[1, 2, 3, 4]]]],
      // Rows of the wrong width whose total is right.
      [[2, 4], [[1, 2], [3, 4], [5, 6], [7, 8]]],
      // A number beside a row.
      [[2, 4], [1, [2, 3, 4, 5, 6, 7, 8]]],
    ];
    for (const [shape, data] of refused) {
      const { status, body } = await infer("mlp", x(shape, data));
      assert.equal(status, 400, `${JSON.stringify(data)}: ${JSON.stringify(body)}`);
      assert.equal(typeof body.error, "string");
      assert.match(body.error as string, /nested|rectangular/, JSON.stringify(body));
    }
    const flat = await infer("mlp", x([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]));
    const nested = await infer("mlp", x([2, 4], [[1, 2, 3, 4], [5, 6, 7, 8]]));
    assert.equal(flat.status, 200, JSON.stringify(flat.body));
    assert.deepEqual(nested, flat);
    const none = await infer("mlp", x([0, 4], []));
    assert.equal(none.status, 200, JSON.stringify(none.body));
  });

  await t.step("a BYTES string with a lone surrogate is 400 on /v2 and /v1, not replaced by U+FFFD", async () => {
    const v2 = await infer(
      "strings",
      '{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["a","\\ud800"]}]}',
    );
    assert.equal(v2.status, 400, JSON.stringify(v2.body));
    assert.match(v2.body.error as string, /element 1 .*not BYTES: a lone surrogate/);
    const v1 = await fetch(`${server.url}/v1/functions/strings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"text":["\\udc00b"]}',
    });
    const body = await v1.json();
    assert.equal(v1.status, 400, JSON.stringify(body));
    assert.equal(body.error.code, "invalid_input");
    const ok = await infer(
      "strings",
      '{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["\\ud83d\\ude00"]}]}',
    );
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    // The rule is the request's: a handler that returns half a pair is not the client's fault (no 400).
    const cut = await infer(
      "cut",
      '{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["\\ud83d\\ude00","ab"]}]}',
    );
    assert.equal(cut.status, 200, JSON.stringify(cut.body));
    assert.deepEqual((cut.body.outputs as { data: string[] }[])[0].data, ["\ufffd", "a"]);
  });

  await t.step("binary BYTES with more or fewer elements than the shape say which", async () => {
    const element = (text: string) => [...new Uint8Array(Uint32Array.of(text.length).buffer), ...encoder.encode(text)];
    const send = async (shape: number[], blob: number[]) => {
      const header = encoder.encode(JSON.stringify({
        inputs: [{ name: "text", datatype: "BYTES", shape, parameters: { binary_data_size: blob.length } }],
      }));
      const response = await fetch(`${server.url}/v2/models/strings/infer`, {
        method: "POST",
        headers: { "Inference-Header-Content-Length": String(header.length) },
        body: new Uint8Array([...header, ...blob]),
      });
      return { status: response.status, body: await response.json() };
    };
    const more = await send([1], [...element("a"), ...element("bc")]);
    assert.equal(more.status, 400);
    assert.match(more.body.error, /BYTES tensor 'text' has 6 bytes after its 1 elements; its shape needs 1/);
    const partial = await send([1], [...element("a"), 9, 9]);
    assert.match(partial.body.error, /has 2 bytes after its 1 elements/);
    const fewer = await send([2], element("a"));
    assert.equal(fewer.status, 400);
    assert.match(fewer.body.error, /BYTES tensor 'text' has 1 elements; its shape needs 2/);
  });

  await t.step(
    "a request whose client goes away while its batch runs leaves the batch running for the others",
    async () => {
      const marker = (v: number) => Deno.writeTextFile(join(functionsDir, "gate", "state", `m${v}`), "go");
      // C holds the isolate; A and B queue behind it and then run as one batch.
      const c = post(`${server.url}/v2/models/gate/infer`, x([1, 1], [1]));
      await until(server, "gate", (info) => info.isolates[0].status === "busy");
      const leaving = new AbortController();
      const a = fetch(`${server.url}/v2/models/gate/infer`, {
        method: "POST",
        body: encoder.encode(x([1, 1], [2])),
        headers: { "x-request-id": "leaves" },
        signal: leaving.signal,
      }).catch((error) => error);
      const b = infer("gate", x([1, 1], [2]));
      await until(server, "gate", (info) => info.queued === 2);
      await marker(1);
      assert.equal((await c).status, 200);
      await until(server, "gate", (info) => info.queued === 0 && info.isolates[0].status === "busy");
      leaving.abort();
      assert.equal((await a).name, "AbortError");
      await server.waitForLog((l) => l.msg === "request" && l.id === "leaves");
      // The batch runs on past A's abort grace (200 ms): A's leaving must not end the isolate that B's answer needs.
      await new Promise((resolve) => setTimeout(resolve, 600));
      await marker(2);
      const answer = await b;
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      // Two rows: B was answered by the batch it shared with A, not run again alone after A left.
      assert.deepEqual((answer.body.outputs as { data: number[] }[])[0].data, [2]);
      const info = await (await fetch(`${server.url}/v1/functions/gate`)).json();
      assert.deepEqual(info.recentBatchSizes, [1, 2]);
      assert.equal(info.isolates[0].restarts, 0);
    },
  );

  await t.step('"outputs": [] returns every output, as when outputs are left out (Triton)', async () => {
    const request = (outputs: string) =>
      `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["ab"]}]${outputs}}`;
    const all = await infer("strings", request(""));
    const empty = await infer("strings", request(',"outputs":[]'));
    assert.equal(all.status, 200);
    assert.deepEqual((all.body.outputs as { name: string }[]).map((o) => o.name), ["upper", "length"]);
    assert.deepEqual(empty, all);
  });

  await t.step("dynamicBatching: a nested unknown key names its place; inputs must have rows first", async () => {
    const info = async (name: string) => await (await fetch(`${server.url}/v1/functions/${name}`)).json();
    const typo = await info("typo");
    assert.equal(typo.status, "failed");
    assert.match(
      typo.error,
      /Unknown option 'dynamicBatching\.maxQueueDelayMicroseconds'; known options of dynamicBatching: maxBatchSize, maxQueueDelayMs, preferredBatchSizes/,
    );
    const fixed = await info("fixedrows");
    assert.equal(fixed.status, "failed");
    assert.match(fixed.error, /dynamicBatching .*first dimension.*'x' has shape \[2,2\]/);
  });

  await t.step(
    "a batch whose handler call fails is retried request by request: only the bad request fails",
    async () => {
      // Four rows fill the batch (maxBatchSize 4) at once; the queue delay of 10 s sends no smaller one first.
      const answers = await Promise.all([1, 2, -3, 4].map((v) => infer("picky", x([1, 1], [v]))));
      assert.deepEqual(answers.map((a) => a.status), [200, 200, 400, 200], JSON.stringify(answers));
      assert.match(answers[2].body.error as string, /negative rows are refused/);
      assert.deepEqual(
        answers.filter((a) => a.status === 200).map((a) => (a.body.outputs as { data: number[] }[])[0].data),
        [[1], [2], [4]],
      );
      const info = await (await fetch(`${server.url}/v1/functions/picky`)).json();
      assert.deepEqual(info.recentBatchSizes, [4], "the four ran as one batch first");
    },
  );

  await t.step("a JSON function's batchHandler gets the requests queued together; a bad one fails alone", async () => {
    const call = (body: string) =>
      fetch(`${server.url}/v1/functions/listed`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    // Four requests fill a batch (maxBatchSize 4) at once; the queue delay of 10 s sends no smaller one first.
    const four = await Promise.all([1, 2, 3, 4].map((x) => call(`{"x":${x}}`)));
    assert.deepEqual(four, [1, 2, 3, 4].map((x) => ({ status: 200, body: { y: 2 * x, batch: 4 } })));
    // A body its schema refuses is answered alone; the other three are one call.
    const invalid = await Promise.all(['{"x":1}', '{"x":"a"}', '{"x":3}', '{"x":4}'].map(call));
    assert.deepEqual(invalid.map((a) => a.status), [200, 400, 200, 200]);
    assert.equal(invalid[1].body.error.code, "invalid_input");
    assert.deepEqual(invalid.filter((a) => a.status === 200).map((a) => a.body.batch), [3, 3, 3]);
    // A call that throws is run again request by request through handler: only the bad request fails.
    const thrown = await Promise.all([1, -2, 3, 4].map((x) => call(`{"x":${x}}`)));
    assert.deepEqual(thrown.map((a) => a.status), [200, 400, 200, 200]);
    assert.match(thrown[1].body.error.message, /negative x is refused/);
    assert.deepEqual(thrown.filter((a) => a.status === 200).map((a) => a.body), [
      { y: 2, batch: 1 },
      { y: 6, batch: 1 },
      { y: 8, batch: 1 },
    ]);
    const unbatched = await (await fetch(`${server.url}/v1/functions/unbatched`)).json();
    assert.equal(unbatched.status, "failed");
    assert.match(unbatched.error, /'batchHandler' takes the requests that dynamicBatching queues together/);
  });

  await Deno.remove(functionsDir, { recursive: true });
});
