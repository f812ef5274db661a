import assert from "node:assert/strict";
import { AnswerRingReader, AnswerRingWriter, isAnswerRingOffer } from "./answer_ring.ts";
import { Doorbell } from "./op_ring.ts";
import type { WireTensor } from "./protocol.ts";

/** The answer to request `id`: tensors of varied names, types, shapes and byte lengths (some not whole words). */
function answer(id: number): WireTensor[] {
  const y = new Float32Array(1 + (id % 40));
  for (let i = 0; i < y.length; i++) y[i] = id * 1000 + i + 0.5;
  const tensors: WireTensor[] = [{ name: "y", datatype: "FP32", shape: [1, y.length], data: y.buffer }];
  if (id % 3 === 0) {
    const mask = new Uint8Array(id % 7).map((_, i) => (id + i) & 0xff);
    tensors.push({ name: "máscara", datatype: "BOOL", shape: [1, mask.length], data: mask.buffer });
  }
  return tensors;
}

function assertAnswer(id: number, tensors: WireTensor[]): void {
  const expected = answer(id);
  assert.equal(tensors.length, expected.length, `answer ${id}: tensors`);
  for (let t = 0; t < expected.length; t++) {
    assert.equal(tensors[t].name, expected[t].name);
    assert.equal(tensors[t].datatype, expected[t].datatype);
    assert.deepEqual(tensors[t].shape, expected[t].shape);
    assert.deepEqual(new Uint8Array(tensors[t].data), new Uint8Array(expected[t].data), `answer ${id}: bytes`);
  }
}

Deno.test("an answer ring carries answers in order across its end, and refuses one it has no room for", () => {
  // Room for a few answers only, so that records wrap many times.
  const ring = new SharedArrayBuffer(8 + 4 * 300);
  const reader = new AnswerRingReader(ring);
  const writer = new AnswerRingWriter(ring, new SharedArrayBuffer(4));
  const read: number[] = [];
  let next = 1;
  for (let round = 0; round < 300; round++) {
    const written: number[] = [];
    for (let i = 0; i < 1 + (round % 4); i++) {
      if (!writer.answer(next, answer(next))) break;
      written.push(next++);
    }
    assert.ok(written.length >= 1, `round ${round}: nothing fitted in an empty ring`);
    // Nothing is seen before it is published.
    assert.equal(reader.drain(() => assert.fail("read before publish")), 0);
    writer.publish();
    const count = reader.drain((id, tensors) => {
      assertAnswer(id, tensors);
      read.push(id);
    });
    assert.equal(count, written.length);
  }
  assert.deepEqual(read, Array.from({ length: next - 1 }, (_, i) => i + 1));
  // Larger than the ring: refused, and the ring still works after.
  const big = [{ name: "y", datatype: "FP32", shape: [1, 400], data: new Float32Array(400).buffer }];
  assert.equal(writer.answer(next, big), false);
  assert.equal(writer.answer(2 ** 31, answer(1)), false, "an id past 32 bits");
  assert.ok(writer.answer(next, answer(next)));
  writer.publish();
  const last: number[] = [];
  reader.drain((id, tensors) => {
    assertAnswer(id, tensors);
    last.push(id);
  });
  assert.deepEqual(last, [next]);
});

Deno.test("a full answer ring refuses until the reader drains it", () => {
  const ring = new SharedArrayBuffer(8 + 4 * 200);
  const reader = new AnswerRingReader(ring);
  const writer = new AnswerRingWriter(ring, new SharedArrayBuffer(4));
  let written = 0;
  while (writer.answer(written + 1, answer(1))) written++;
  assert.ok(written >= 2);
  writer.publish();
  let read = 0;
  reader.drain(() => read++);
  assert.equal(read, written);
  assert.ok(writer.answer(99, answer(99)), "room again once drained");
});

Deno.test("answers written by another thread reach the reader through the doorbell, none lost", async () => {
  const reader = new AnswerRingReader(new SharedArrayBuffer(8 + 4 * 4096));
  const bell = new Doorbell();
  const total = 3000;
  const seen = new Set<number>();
  const all = Promise.withResolvers<void>();
  bell.add(() => {
    reader.drain((id, tensors) => {
      assertAnswer(id, tensors);
      assert.ok(!seen.has(id), `answer ${id} twice`);
      seen.add(id);
    });
    if (seen.size === total) all.resolve();
  });
  const module = new URL("./answer_ring.ts", import.meta.url).href;
  // The writer retries an answer that does not fit yet: the reader frees room as it drains.
  const source = `
    import { AnswerRingWriter } from ${JSON.stringify(module)};
    self.onmessage = async ({ data }) => {
      const writer = new AnswerRingWriter(data.ring, data.bell);
      for (let id = 1; id <= ${total}; id++) {
        const y = new Float32Array(1 + (id % 40));
        for (let i = 0; i < y.length; i++) y[i] = id * 1000 + i + 0.5;
        const tensors = [{ name: "y", datatype: "FP32", shape: [1, y.length], data: y.buffer }];
        if (id % 3 === 0) {
          const mask = new Uint8Array(id % 7).map((_, i) => (id + i) & 0xff);
          tensors.push({ name: "máscara", datatype: "BOOL", shape: [1, mask.length], data: mask.buffer });
        }
        while (!writer.answer(id, tensors)) {
          writer.publish();
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        if (id % 7 === 0) writer.publish();
      }
      writer.publish();
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const offer = { k: "answer-ring", ring: reader.ring, bell: bell.buffer };
  assert.ok(isAnswerRingOffer(offer));
  worker.postMessage(offer);
  try {
    await all.promise;
    assert.equal(seen.size, total);
  } finally {
    worker.terminate();
    bell.close();
    URL.revokeObjectURL(url);
  }
});
