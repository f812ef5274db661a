import assert from "node:assert/strict";
import { Doorbell, type RingInfer, RingReader, RingWriter } from "./op_ring.ts";
import type { Job } from "./protocol.ts";

function request(id: number): RingInfer {
  return {
    k: "infer",
    id,
    version: 3,
    name: id % 2 ? "mlp" : "résumé-ocr",
    requestId: `req-${id}-${"x".repeat(id % 7)}`,
    shared: [
      { name: "x", datatype: "FP32", shape: [1, 1024], offset: id * 4096, bytes: 4096 },
      ...(id % 3 ? [] : [{ name: "mask", datatype: "BOOL", shape: [1, id % 5, 2], offset: 8, bytes: (id % 5) * 2 }]),
    ],
  };
}

/** Turns of the event loop, so that the writer's end-of-turn publish has run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("a ring carries requests in order across its end, and refuses one it has no room for", async () => {
  // Room for a few requests only, so that records wrap many times.
  const ring = new SharedArrayBuffer(8 + 4 * 200);
  const bell = new SharedArrayBuffer(4);
  const writer = new RingWriter(ring, bell);
  const reader = new RingReader(ring);
  const read: RingInfer[] = [];
  let next = 1;
  for (let round = 0; round < 200; round++) {
    const written: number[] = [];
    for (let i = 0; i < 1 + (round % 3); i++) {
      if (!writer.infer(request(next))) break;
      written.push(next++);
    }
    assert.ok(written.length >= 1, `round ${round}: nothing fitted in an empty ring`);
    await turn();
    const before = read.length;
    assert.equal(reader.drain({ infer: (op) => read.push(op) }), written.length);
    assert.deepEqual(read.slice(before).map((op) => op.id), written);
  }
  assert.deepEqual(read, read.map((op) => request(op.id)));
  // Full: refused whole, and nothing half-written is read.
  let fitted = 0;
  while (writer.infer(request(next + fitted))) fitted++;
  await turn();
  const last: RingInfer[] = [];
  reader.drain({ infer: (op) => last.push(op) });
  assert.deepEqual(last, Array.from({ length: fitted }, (_, i) => request(next + i)));
  assert.ok(writer.infer(request(1)), "a drained ring takes requests again");
});

Deno.test("a request with a number past 32 bits is refused, not truncated", () => {
  const writer = new RingWriter(new SharedArrayBuffer(4096), new SharedArrayBuffer(4));
  const big = request(1);
  big.shared[0].shape = [1, 2 ** 33];
  assert.equal(writer.infer(big), false);
});

Deno.test("a thread's requests reach the main thread through the doorbell, every one once", async () => {
  const count = 4_000;
  const ring = new SharedArrayBuffer(4 * 2 ** 16);
  const reader = new RingReader(ring);
  const ids: number[] = [];
  let rings = 0;
  let all!: () => void;
  const done = new Promise<void>((resolve) => (all = resolve));
  const doorbell = new Doorbell();
  doorbell.add(() => {
    rings++;
    reader.drain({ infer: (op) => ids.push(op.id) });
    if (ids.length >= count) all();
  });
  const source = `
    import { RingWriter } from ${JSON.stringify(new URL("./op_ring.ts", import.meta.url).href)};
    self.onmessage = async ({ data: { ring, bell, count } }) => {
      const writer = new RingWriter(ring, bell);
      const tensor = [{ name: "x", datatype: "FP32", shape: [1, 1024], offset: 0, bytes: 4096 }];
      for (let id = 1; id <= count;) {
        // Bursts of a few, as an HTTP thread's turns are; a full ring waits for the main thread.
        for (let i = 0; i < 4 && id <= count; i++) {
          if (!writer.infer({ k: "infer", id, version: 1, name: "mlp", requestId: "r" + id, shared: tensor })) break;
          id++;
        }
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    };
  `;
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), { type: "module" });
  try {
    worker.postMessage({ ring, bell: doorbell.buffer, count });
    await done;
    assert.deepEqual(ids, Array.from({ length: count }, (_, i) => i + 1));
    assert.ok(rings >= 1 && rings <= count, String(rings));
  } finally {
    worker.terminate();
    doorbell.close();
  }
});

Deno.test("infer requests, job runs and id lists cross a small ring in the order written, whatever the drains", async () => {
  const ring = new SharedArrayBuffer(8 + 4 * 997);
  const writer = new RingWriter(ring, new SharedArrayBuffer(4));
  const reader = new RingReader(ring);
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  const tensors = () =>
    Array.from({ length: random(3) }, () => ({
      name: `t${random(20)}`,
      datatype: ["FP32", "INT64"][random(2)],
      shape: Array.from({ length: random(4) }, () => random(100)),
      offset: random(1e6),
      bytes: random(1e5),
    }));
  const job = (id: number): Job => {
    const requestId = random(2) ? "r".repeat(random(40)) : undefined;
    return {
      id,
      body: new ArrayBuffer(0),
      reply: { link: 1 + random(3), id: id * 3 },
      shared: tensors(),
      ...(requestId ? { requestId } : {}),
    };
  };
  const text = (j: Job) => JSON.stringify([j.id, j.reply, j.requestId ?? "", j.shared]);
  const written: string[] = [];
  const read: string[] = [];
  const sink = {
    jobs: (jobs: Job[]) => read.push(...jobs.map(text)),
    ids: (ids: number[]) => read.push(`ids ${ids}`),
    infer: (op: RingInfer) => read.push(JSON.stringify(op)),
  };
  let id = 0;
  let refused = 0;
  for (let step = 0; step < 20_000; step++) {
    // About 40 records between drains: more than the ring holds.
    const what = random(41);
    if (what < 16) {
      const jobs = Array.from({ length: 1 + random(4) }, () => job(++id));
      if (writer.jobs(jobs)) written.push(...jobs.map(text));
      else refused++;
    } else if (what < 28) {
      const ids = Array.from({ length: random(10) }, () => random(1000));
      if (writer.ids(ids)) written.push(`ids ${ids}`);
      else refused++;
    } else if (what < 40) {
      const op: RingInfer = {
        k: "infer",
        id: ++id,
        version: random(5),
        name: `fn${random(5)}`,
        requestId: "r".repeat(random(40)),
        shared: tensors(),
      };
      if (writer.infer(op)) written.push(JSON.stringify(op));
      else refused++;
    } else {
      await Promise.resolve();
      reader.drain(sink);
    }
  }
  await turn();
  reader.drain(sink);
  assert.ok(refused > 0, "the ring never filled: the test did not cross its end under pressure");
  assert.equal(read.length, written.length);
  assert.deepEqual(read, written);
});

Deno.test("a ring published before its drain was added is read when it is added, and later ones on the bell", async () => {
  const ring = new SharedArrayBuffer(4096);
  const bell = new SharedArrayBuffer(4);
  const writer = new RingWriter(ring, bell);
  const reader = new RingReader(ring);
  assert.ok(writer.ids([1, 2]));
  await turn();
  const doorbell = new Doorbell(bell);
  const read: number[][] = [];
  let next!: () => void;
  doorbell.add(() => {
    reader.drain({ ids: (ids) => read.push(ids) });
    if (read.length === 2) next();
  });
  try {
    assert.deepEqual(read, [[1, 2]]);
    const second = new Promise<void>((resolve) => (next = resolve));
    assert.ok(writer.ids([3]));
    // A wait on the bell does not keep the event loop alive (the runtime's server does): this timer does here.
    const alive = setTimeout(() => {}, 10_000);
    await second;
    clearTimeout(alive);
    assert.deepEqual(read, [[1, 2], [3]]);
  } finally {
    doorbell.close();
  }
});

Deno.test("a writer rings for requests the reader has not asked it to keep quiet about, and asks again after publishing", async () => {
  const ring = new SharedArrayBuffer(8 + 4 * 4096);
  const bell = new SharedArrayBuffer(4);
  const rung = new Int32Array(bell);
  // The reader's ask, by function: quiet while true.
  const asked = new Map<string, boolean>([["mlp", true]]);
  const writer = new RingWriter(ring, bell, { quiet: (name) => asked.get(name) ?? false });
  const reader = new RingReader(ring);
  const drained = () => {
    const ids: number[] = [];
    reader.drain({ infer: (op) => ids.push(op.id) });
    return ids;
  };

  // Quiet: published, not rung; the next drain takes it.
  assert.ok(writer.infer(request(1)));
  await turn();
  assert.equal(Atomics.load(rung, 0), 0, "rung for a request the reader asked to keep quiet about");
  assert.deepEqual(drained(), [1]);

  // Asked at the write, lifted before the publish: rung (the reader may have drained before it was published).
  assert.ok(writer.infer(request(3)));
  asked.set("mlp", false);
  await turn();
  assert.equal(Atomics.load(rung, 0), 1, "not rung although the ask was lifted before the request was published");
  assert.deepEqual(drained(), [3]);
  Atomics.store(rung, 0, 0);

  // A quiet request with a loud one in the same turn: rung.
  asked.set("mlp", true);
  assert.ok(writer.infer(request(5)));
  assert.ok(writer.infer(request(2)));
  await turn();
  assert.equal(Atomics.load(rung, 0), 1, "not rung for a function the reader did not ask about");
  assert.deepEqual(drained(), [5, 2]);
});
