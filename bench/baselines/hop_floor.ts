/**
 * The floor of a process-isolated runtime on this machine: what any runtime pays that runs a request's work in another
 * process, as isolane's process host does, and nothing else. `Deno.serve` (no router, no middleware, no limits, no
 * deadlines, no logs or metrics) reads each body whole and hands the bytes, unparsed, over a Unix socket to one of
 * `BENCH_CHILDREN` (default 2) child processes (`hop_floor_child.ts`; Workers with `BENCH_FLOOR_HOST=worker`, the frames then
 * transferred as messages), one frame in flight per child; the child parses
 * each body, runs the model once for all of a frame's rows (ONNX Runtime through onnxruntime-node, every core as
 * intra-op threads that do not spin, as isolane's CPU lanes run) and sends each answer's JSON back. A name ending in
 * `_batched` is a dynamic batcher at its cheapest: whatever is queued when a child is free goes in one frame, up to 64
 * requests, with no queue delay. `GET /v1/functions/:name` answers `{"status": "ready", "recentBatchSizes": [...]}` as
 * isolane's does, for `bench/ab_cpu.ts --floor`.
 *
 * Frames, little-endian: to the child `u32 length, u8 function, u16 count, count × (u32 length, bytes)`; back
 * `u32 length, u16 count, count × (u32 length, bytes)`. `BENCH_MODELS` is a JSON object of name → model path, as
 * `hono_ort.ts` takes; `echo` needs no model.
 * @module
 */
import { fileURLToPath } from "node:url";
import { readFrames, writeAll } from "./hop_floor_child.ts";

const models: Record<string, string> = JSON.parse(Deno.env.get("BENCH_MODELS") ?? "{}");
const names = ["echo", ...Object.keys(models)];
const childCount = Number(Deno.env.get("BENCH_CHILDREN") || 2);
const workers = Deno.env.get("BENCH_FLOOR_HOST") === "worker";

type Job = { body: Uint8Array; resolve: (answer: Uint8Array<ArrayBuffer>) => void };
type Child = { write: (frame: Uint8Array<ArrayBuffer>) => void; jobs: Job[] | null };
const queues = new Map(names.map((name) => [name, [] as Job[]]));
const batchSizes: number[] = [];
const idle: Child[] = [];
const childUrl = new URL("./hop_floor_child.ts", import.meta.url);

if (workers) {
  for (let i = 0; i < childCount; i++) {
    const worker = new Worker(childUrl, { type: "module" });
    await new Promise((resolve) => worker.onmessage = resolve); // "ready", once its sessions exist
    const child: Child = { write: (frame) => worker.postMessage(frame, [frame.buffer]), jobs: null };
    worker.onmessage = ({ data }: MessageEvent<Uint8Array<ArrayBuffer>>) => answered(child, data.subarray(4));
    idle.push(child);
  }
} else {
  const socketPath = `${await Deno.makeTempDir({ prefix: "hop-floor-" })}/s`;
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  for (let i = 0; i < childCount; i++) {
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", fileURLToPath(childUrl), socketPath],
      env: { BENCH_MODELS: JSON.stringify(models) },
      stdin: "null",
    }).spawn();
    const conn = await listener.accept();
    await readFrames(conn, () => {}, 1); // the child's "ready" frame, once its sessions exist
    const child: Child = { write: (frame) => void writeAll(conn, frame), jobs: null };
    idle.push(child);
    void readFrames(conn, (frame) => answered(child, frame));
  }
}

let pumping = false;
function pump() {
  if (pumping) return;
  pumping = true;
  queueMicrotask(() => {
    pumping = false;
    for (const [name, queue] of queues) {
      while (queue.length > 0 && idle.length > 0) {
        const batched = name.endsWith("_batched");
        const jobs = queue.splice(0, batched ? 64 : 1);
        if (batched) batchSizes.push(jobs.length) > 256 && batchSizes.shift();
        send(idle.pop()!, names.indexOf(name), jobs);
      }
    }
  });
}

function send(child: Child, fn: number, jobs: Job[]) {
  child.jobs = jobs;
  const size = 7 + jobs.reduce((n, job) => n + 4 + job.body.length, 0);
  const frame = new Uint8Array(size);
  const view = new DataView(frame.buffer);
  view.setUint32(0, size - 4, true);
  view.setUint8(4, fn);
  view.setUint16(5, jobs.length, true);
  let at = 7;
  for (const { body } of jobs) {
    view.setUint32(at, body.length, true);
    frame.set(body, at + 4);
    at += 4 + body.length;
  }
  child.write(frame);
}

function answered(child: Child, frame: Uint8Array<ArrayBuffer>) {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const jobs = child.jobs!;
  child.jobs = null;
  idle.push(child);
  let at = 2;
  for (const job of jobs) {
    const length = view.getUint32(at, true);
    job.resolve(frame.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  pump();
}

const json = { "content-type": "application/json" };
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  const name = new URL(req.url).pathname.slice("/v1/functions/".length);
  const queue = queues.get(name);
  if (!queue) return new Response('{"error":"no such function"}', { status: 404, headers: json });
  if (req.method === "GET") {
    return new Response(JSON.stringify({ status: "ready", recentBatchSizes: batchSizes }), { headers: json });
  }
  const body = new Uint8Array(await req.arrayBuffer());
  const answer = await new Promise<Uint8Array<ArrayBuffer>>((resolve) => {
    queue.push({ body, resolve });
    pump();
  });
  return new Response(answer, { headers: json });
});
console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${server.addr.port}`, children: childCount }));
