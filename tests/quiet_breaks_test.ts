/**
 * Hostile clients and operators against the HTTP threads' quiet rings and answer rings (`http_threads.ts`,
 * `op_ring.ts`, `answer_ring.ts`): clients that go away while their requests wait quietly, deadlines that pass
 * there, answers larger than the answer ring. No request a client still waits for may be lost, hang or be answered
 * twice, and the request metrics must count each request once, by the status it was answered with.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startServer, type TestServer } from "./support/server.ts";
import { infer } from "./support/triton_client.ts";
import { adminToken, deployOk } from "./support/bundles.ts";

const mlpModel = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));

/**
 * One Worker isolate whose batches of at most 4 rows each take `ms` or more: requests wait behind it. A batch with
 * a -999 ends the isolate.
 */
function slowSource(ms: number, timeoutMs = 30000): string {
  return `import { defineFunction } from "isolane";
export default defineFunction({
  description: "4→16→3 MLP, one Worker isolate, slow batches",
  models: { mlp: "mlp.onnx" },
  device: "cpu",
  isolation: "worker",
  instances: 1,
  timeoutMs: ${timeoutMs},
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  dynamicBatching: { maxBatchSize: 4, maxQueueDelayMs: 0 },
  handler: async ({ x }, { models }) => {
    if (Array.from(x.data as Float32Array).includes(-999)) Deno.exit(1);
    await new Promise((resolve) => setTimeout(resolve, ${ms}));
    return models.mlp.run({ x });
  },
});
`;
}

async function functionsDir(sources: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-quiet-breaks-" });
  for (const [name, source] of Object.entries(sources)) {
    await Deno.mkdir(join(dir, name));
    await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
    await Deno.copyFile(mlpModel, join(dir, name, "mlp.onnx"));
  }
  return dir;
}

/** HTTP threads of the runtime under test: 2 unless the environment says (0 compares against the main thread alone). */
const threads = Deno.env.get("ISOLANE_HTTP_THREADS") ?? "2";

const row = (i: number) => [i / 7, -i / 11, 0.25, i % 5];

function v2Body(i: number): string {
  return JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 4], data: row(i) }] });
}

/** Sends a whole v2 JSON infer request on a connection of its own and closes it at once, without reading. */
async function sendAndLeave(server: TestServer, name: string, id: string, i: number): Promise<void> {
  const url = new URL(server.url);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const body = new TextEncoder().encode(v2Body(i));
  const head = `POST /v2/models/${name}/infer HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\n` +
    `x-request-id: ${id}\r\ncontent-length: ${body.byteLength}\r\n\r\n`;
  const bytes = new Uint8Array([...new TextEncoder().encode(head), ...body]);
  for (let n = 0; n < bytes.byteLength;) n += await conn.write(bytes.subarray(n));
  conn.close();
}

/** Every sample of `isolane_requests_total` for `name`, by status. */
function counts(metrics: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  const line = new RegExp(`^isolane_requests_total\\{function="${name}",status="(\\d+)"\\} (\\d+)$`, "gm");
  for (const m of metrics.matchAll(line)) out[m[1]] = Number(m[2]);
  return out;
}

async function answer(server: TestServer, name: string, i: number) {
  const got = await infer(server.url, name, [{
    name: "x",
    shape: [1, 4],
    datatype: "FP32",
    data: new Float32Array(row(i)),
  }]);
  const bytes = got.result?.outputs.get("y")?.bytes;
  return { status: got.status, y: bytes ? [...new Float32Array(bytes.slice().buffer)] : [], error: got.error };
}

Deno.test("clients that go away while requests wait quietly lose no other request, and each is counted once", async () => {
  const dir = await functionsDir({ slow: slowSource(10) });
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
    const alone: number[][] = [];
    for (let i = 0; i < 8; i++) {
      const a = await answer(server, "slow", i);
      assert.equal(a.status, 200, a.error ?? "");
      alone.push(a.y);
    }
    const clients = 12;
    const each = 6;
    const leavers = 48;
    const gone: string[] = [];
    const [answers] = await Promise.all([
      Promise.all(Array.from({ length: clients }, async (_, c) => {
        const got: { i: number; status: number; y: number[]; error?: string | undefined }[] = [];
        for (let k = 0; k < each; k++) {
          const i = (c + k) % 8;
          got.push({ i, ...(await answer(server, "slow", i)) });
        }
        return got;
      })),
      (async () => {
        for (let g = 0; g < leavers; g++) {
          const id = `gone-${g}`;
          gone.push(id);
          await sendAndLeave(server, "slow", id, g % 8);
        }
      })(),
    ]);
    for (const { i, status, y, error } of answers.flat()) {
      assert.equal(status, 200, error ?? "");
      assert.deepEqual(y, alone[i]);
    }
    const quiet = server.logs.find((l) =>
      l.msg === "requests wait in the HTTP threads' rings while every isolate is busy"
    );
    if (threads !== "0") {
      assert.ok(quiet, "the isolate was never busy with requests waiting: the test did not exercise the quiet rings");
    }
    const lines = await Promise.all(
      gone.map((id) => server.waitForLog((l) => l.msg === "request" && l.id === id, 20_000)),
    );
    const goneStatus: Record<string, number> = {};
    for (const l of lines) goneStatus[String(l.status)] = (goneStatus[String(l.status)] ?? 0) + 1;
    for (const id of gone) {
      assert.equal(server.logs.filter((l) => l.msg === "request" && l.id === id).length, 1, id);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const byStatus = counts(metrics, "slow");
    // A request whose client went away is answered 504 ("timeout": the client went away) if it was still queued,
    // else 200 to no one; either way once.
    assert.deepEqual(Object.keys(goneStatus).filter((s) => s !== "200" && s !== "504"), [], JSON.stringify(goneStatus));
    const expected: Record<string, number> = { "200": 8 + clients * each + (goneStatus["200"] ?? 0) };
    if (goneStatus["504"]) expected["504"] = goneStatus["504"];
    assert.deepEqual(byStatus, expected);
    const info = await (await fetch(`${server.url}/v1/functions/slow`)).json();
    assert.equal(info.queued, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deadlines that pass while requests wait quietly are answered 504, none hangs", async () => {
  const dir = await functionsDir({ late: slowSource(400, 150) });
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
    const answers = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      const started = performance.now();
      const a = await answer(server, "late", i);
      return { ...a, ms: performance.now() - started };
    }));
    for (const a of answers) {
      assert.equal(a.status, 504, a.error ?? "");
      assert.match(a.error ?? "", /(did not finish|had no free isolate) within 150 ms/);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.deepEqual(counts(metrics, "late"), { "504": 16 });
    if (Deno.env.get("QUIET_BREAKS_TIMES")) {
      // What the client saw, and what the runtime logged (from the request's arrival to its answer), in ms.
      const logged = server.logs.filter((l) => l.msg === "request" && String(l.path).includes("late"));
      console.log("client", answers.map((a) => Math.round(a.ms)).join(" "));
      console.log("server", logged.map((l) => l.ms).join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deadlines under load, four functions' rings at once: each of 64 requests answered once, 504 or refused", async () => {
  const names = ["late_a", "late_b", "late_c", "late_d"];
  const dir = await functionsDir(Object.fromEntries(names.map((name) => [name, slowSource(400, 150)])));
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
    const answers = await Promise.all(names.flatMap((name) =>
      Array.from({ length: 16 }, async (_, i) => {
        const started = performance.now();
        const a = await answer(server, name, i);
        return { name, ...a, ms: performance.now() - started };
      })
    ));
    // Past its deadline each is 504; under load the admission may refuse one whose expected wait already passes the
    // deadline (429, the pool's reason through the threads as through Hono), never a request the isolate took first,
    // so each function has 504s.
    const seen: Record<string, Record<string, number>> = {};
    for (const a of answers) {
      if (a.status === 429) {
        assert.match(
          a.error ?? "",
          /^Function 'late_[a-d]' would answer in about \d+ ms, past its 150 ms limit; retry later$/,
        );
      } else {
        assert.equal(a.status, 504, `${a.name}: ${a.error ?? ""}`);
        assert.match(a.error ?? "", /(did not finish|had no free isolate) within 150 ms/);
      }
      seen[a.name] ??= {};
      seen[a.name][a.status] = (seen[a.name][a.status] ?? 0) + 1;
    }
    for (const name of names) assert.ok(seen[name]["504"] > 0, `${name}: ${JSON.stringify(seen[name])}`);
    if (threads !== "0") {
      const quiet = server.logs.filter((l) =>
        l.msg === "requests wait in the HTTP threads' rings while every isolate is busy"
      );
      assert.ok(
        quiet.length > 0,
        "no isolate was busy with requests waiting: the test did not exercise the quiet rings",
      );
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of names) {
      assert.deepEqual(counts(metrics, name), seen[name], name);
      const logged = server.logs.filter((l) => l.msg === "request" && String(l.path).includes(`/${name}/`));
      assert.equal(logged.length, 16, `${name}: one log line per request`);
      assert.equal(new Set(logged.map((l) => l.id)).size, 16, `${name}: each request logged once`);
    }
    if (Deno.env.get("QUIET_BREAKS_TIMES")) {
      // How late each 504 came past the 150 ms deadline: as the client saw it, and as the thread logged it (from the
      // request's arrival there to its answer), in ms.
      const late = (ms: number[]) => ms.map((m) => Math.round(m - 150)).sort((a, b) => a - b).join(" ");
      const logged = server.logs.filter((l) =>
        l.msg === "request" && l.status === 504 && String(l.path).includes("/late_")
      );
      console.log("client", late(answers.filter((a) => a.status === 504).map((a) => a.ms)));
      console.log("server", late(logged.map((l) => Number(l.ms))));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an isolate that crashes mid-batch while requests wait quietly: the rest are served by the next one", async () => {
  const dir = await functionsDir({ crashq: slowSource(20) });
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
    const alone: number[][] = [];
    for (let i = 0; i < 8; i++) alone.push((await answer(server, "crashq", i)).y);
    const poisoned = new Set([5, 17]);
    const answers = await Promise.all(Array.from({ length: 32 }, async (_, k) => {
      if (!poisoned.has(k)) return { k, ...(await answer(server, "crashq", k % 8)) };
      const got = await infer(server.url, "crashq", [{
        name: "x",
        shape: [1, 4],
        datatype: "FP32",
        data: new Float32Array([-999, 0, 0, 0]),
      }]);
      return { k, status: got.status, y: [], error: got.error };
    }));
    const byStatus: Record<string, number> = { "200": 8 };
    for (const a of answers) {
      byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
      if (poisoned.has(a.k)) assert.equal(a.status, 500, a.error ?? "");
      else if (a.status === 200) assert.deepEqual(a.y, alone[a.k % 8]);
      // Batched with a poisoned row: the isolate's crash is its answer too.
      else assert.equal(a.status, 500, a.error ?? "");
      if (a.status === 500) assert.match(a.error ?? "", /The isolate stopped: the function called Deno.exit\(1\)/);
    }
    // Requests that waited behind the crash were served by the respawned isolate.
    assert.ok(byStatus["200"] > 8, JSON.stringify(byStatus));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.deepEqual(counts(metrics, "crashq"), byStatus);
    for (let i = 0; i < 8; i++) assert.deepEqual((await answer(server, "crashq", i)).y, alone[i]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Two Worker isolates whose answer to `[[n, seed]]` is `y = [[seed, seed + 1, …]]`, n values: sized at will. */
const sizedSource = `import { defineFunction, Tensor } from "isolane";
export default defineFunction({
  description: "Answers as many FP32 values as asked",
  device: "cpu",
  isolation: "worker",
  instances: 2,
  maxBodyBytes: 4096,
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [1, 2] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [1, -1] }],
  },
  handler: ({ x }) => {
    const [n, seed] = x.data as Float32Array;
    const y = new Float32Array(n);
    for (let i = 0; i < n; i++) y[i] = seed + i;
    return { y: new Tensor("float32", y, [1, n]) };
  },
});
`;

Deno.test("answers larger than the answer ring, mixed with small ones from two isolates, all arrive whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-quiet-breaks-" });
  await Deno.mkdir(join(dir, "sized"));
  await Deno.writeTextFile(join(dir, "sized", "mod.ts"), sizedSource);
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
    // 1 MiB of ring holds 262,142 values at most: 300,000 never fit, 200,000 fit only in an emptied ring.
    const sizes = [3, 300_000, 1, 200_000, 17, 1_000, 300_000, 5, 70_000, 2];
    const answers = await Promise.all(Array.from({ length: 40 }, async (_, k) => {
      const n = sizes[k % sizes.length];
      const got = await infer(server.url, "sized", [{
        name: "x",
        shape: [1, 2],
        datatype: "FP32",
        data: new Float32Array([n, k]),
      }]);
      return { k, n, got };
    }));
    for (const { k, n, got } of answers) {
      assert.equal(got.status, 200, got.error ?? "");
      const out = got.result!.outputs.get("y")!;
      assert.deepEqual(out.shape, [1, n]);
      const y = new Float32Array(out.bytes!.slice().buffer);
      assert.equal(y.length, n);
      for (let i = 0; i < n; i++) if (y[i] !== Math.fround(k + i)) assert.fail(`answer ${k}: y[${i}] = ${y[i]}`);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.deepEqual(counts(metrics, "sized"), { "200": 40 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** One Worker isolate, slow batches, whose answer to `[[seed, 0, 0, 0]]` is `[[seed + offset, 0, 0]]`. */
function versionSource(offset: number): string {
  return `import { defineFunction, Tensor } from "isolane";
export default defineFunction({
  description: "Says which version answered",
  device: "cpu",
  isolation: "worker",
  instances: 1,
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
  },
  dynamicBatching: { maxBatchSize: 4, maxQueueDelayMs: 0 },
  handler: async ({ x }) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const rows = x.dims[0];
    const y = new Float32Array(rows * 3);
    for (let r = 0; r < rows; r++) y[r * 3] = (x.data as Float32Array)[r * 4] + ${offset};
    return { y: new Tensor("float32", y, [rows, 3]) };
  },
});
`;
}

Deno.test("redeploys and a removal under load: every request answered once, by a version no older than the last seen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-quiet-breaks-" });
  const data = await Deno.makeTempDir({ prefix: "isolane-quiet-breaks-data-" });
  try {
    await using server = await startServer({
      functionsDir: dir,
      env: { ISOLANE_HTTP_THREADS: threads, ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_DATA: data },
    });
    assert.equal(await deployOk(server, "ver", { "mod.ts": versionSource(1000) }), 1);
    let removed = false;
    const seen: { status: number; offset: number; error?: string | undefined }[][] = [];
    const clients = Array.from({ length: 12 }, async (_, c) => {
      const mine: { status: number; offset: number; error?: string | undefined }[] = [];
      seen.push(mine);
      for (let k = 0; !removed || mine.at(-1)?.status === 200; k++) {
        const seed = (c * 100 + k) % 997;
        const got = await infer(server.url, "ver", [{
          name: "x",
          shape: [1, 4],
          datatype: "FP32",
          data: new Float32Array([seed, 0, 0, 0]),
        }]);
        const bytes = got.result?.outputs.get("y")?.bytes;
        const offset = bytes ? new Float32Array(bytes.slice().buffer)[0] - seed : -1;
        mine.push({ status: got.status, offset, error: got.error });
      }
    });
    /** Resolves once every client has had an answer from version `offset`: the load is on it. */
    const reached = async (offset: number) => {
      while (!seen.every((mine) => mine.some((a) => a.offset === offset))) {
        const failed = seen.flat().find((a) => a.status !== 200);
        if (failed) throw new Error(`answered ${failed.status} before the removal: ${failed.error}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    await reached(1000);
    assert.equal(await deployOk(server, "ver", { "mod.ts": versionSource(2000) }), 2);
    await reached(2000);
    assert.equal(await deployOk(server, "ver", { "mod.ts": versionSource(3000) }), 3);
    await reached(3000);
    const gone = await fetch(`${server.url}/v1/functions/ver`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(gone.status, 200, await gone.text());
    removed = true;
    await Promise.all(clients);
    const byStatus: Record<string, number> = {};
    for (const mine of seen) {
      let last = 0;
      for (const a of mine) {
        byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
        if (a.status === 200) {
          assert.ok([1000, 2000, 3000].includes(a.offset), String(a.offset));
          assert.ok(a.offset >= last, `version ${a.offset} answered after ${last}`);
          last = a.offset;
        } else assert.equal(a.status, 404, a.error ?? "");
      }
      assert.equal(mine.at(-1)!.status, 404);
    }
    assert.ok(byStatus["200"] > 0 && byStatus["404"] >= 12, JSON.stringify(byStatus));
    // A removed function's request series are dropped with it (with or without HTTP threads): nothing to compare.
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("SIGTERM while requests wait quietly: every request the runtime took is answered", async () => {
  const dir = await functionsDir({ slow: slowSource(100) });
  try {
    const server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
    try {
      assert.equal((await answer(server, "slow", 0)).status, 200);
      const requests = Array.from(
        { length: 24 },
        (_, k) => answer(server, "slow", k % 8).catch((error) => ({ status: 0, y: [], error: String(error) })),
      );
      // All taken before the signal (two batches of at most 4 running, the rest queued): wait for the queue to show them.
      for (let polls = 0;; polls++) {
        const info = await (await fetch(`${server.url}/v1/functions/slow`)).json();
        if (info.queued >= 16) break;
        if (polls > 2000) throw new Error(`the queue never held the requests: ${JSON.stringify(info)}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      server.kill("SIGTERM");
      const answers = await Promise.all(requests);
      for (const a of answers) assert.equal(a.status, 200, a.error ?? "");
      assert.equal((await server.stop()).code, 0);
    } finally {
      await server[Symbol.asyncDispose]();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
