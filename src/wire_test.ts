import assert from "node:assert/strict";
import { encodeFrame, encodeRunFrame, FrameError, FrameReader } from "./wire.ts";

Deno.test("wire: messages with buffers survive framing, split at any byte", () => {
  const body = new Uint8Array([1, 2, 3, 250]).buffer;
  const message = { type: "run", jobs: [{ id: 7, body }, { id: 8, body: new ArrayBuffer(0) }], note: { $buf: "x" } };
  const frame = encodeFrame(message);
  const twice = new Uint8Array(frame.byteLength * 2);
  twice.set(frame);
  twice.set(frame, frame.byteLength);
  for (let split = 1; split < twice.byteLength; split += 3) {
    const reader = new FrameReader();
    reader.push(twice.subarray(0, split));
    const got: unknown[] = [];
    for (let m = reader.next(); m !== undefined; m = reader.next()) got.push(m);
    reader.push(twice.subarray(split));
    for (let m = reader.next(); m !== undefined; m = reader.next()) got.push(m);
    assert.equal(got.length, 2);
    for (const m of got as typeof message[]) {
      assert.deepEqual([...new Uint8Array(m.jobs[0].body)], [1, 2, 3, 250]);
      assert.equal(m.jobs[1].body.byteLength, 0);
      assert.deepEqual(m.note, { $buf: "x" });
    }
  }
});

Deno.test("wire: bytes that are not frames are refused", () => {
  const reader = new FrameReader();
  reader.push(new TextEncoder().encode("hello from a stray console.log\n"));
  assert.throws(() => reader.next(), FrameError);
});

Deno.test("wire: every message kind keeps its buffers where they were (bodies, tensors, nested)", () => {
  const bytes = (...b: number[]) => new Uint8Array(b).buffer;
  const messages = [
    {
      type: "run",
      jobs: [
        { id: 1, body: bytes(1), requestId: "r1", contentType: "text/plain" },
        { id: 2, body: new ArrayBuffer(0), tensors: [{ name: "x", datatype: "FP32", shape: [1], data: bytes(2, 3) }] },
      ],
    },
    {
      type: "results",
      results: [
        { id: 1, ok: true, body: bytes(4), tensors: [{ name: "y", datatype: "INT8", shape: [2], data: bytes(5, 6) }] },
        { id: 2, ok: false, error: { code: "invalid_input", message: "no" } },
      ],
    },
    { type: "item", id: 3, body: bytes(7) },
    { type: "init", deep: { list: [{ blob: bytes(8, 9) }] } },
  ];
  const reader = new FrameReader();
  for (const message of messages) reader.push(encodeFrame(message));
  for (const message of messages) {
    const got = reader.next();
    // deepEqual compares ArrayBuffers by content; the originals are untouched (no placeholder left in them).
    assert.deepEqual(got, message);
  }
  assert.equal(reader.next(), undefined);
  assert.ok(messages[0].jobs![0].body instanceof ArrayBuffer);
});

Deno.test("wire: a request's run and results take the binary form and survive framing, split at any byte", () => {
  const bytes = (...b: number[]) => new Uint8Array(b).buffer;
  const messages = [
    { type: "run", jobs: [{ id: 41, body: bytes(1, 2, 3), requestId: "req-é-ü-😀" }] },
    {
      type: "run",
      jobs: [
        { id: 2 ** 40, body: new ArrayBuffer(0), contentType: "text/plain; charset=utf-8" },
        { id: 43, body: bytes(9), requestId: "", contentType: "image/png" },
      ],
    },
    { type: "results", results: [{ id: 41, ok: true, body: bytes(7, 8) }, { id: 43, ok: true, body: bytes() }] },
  ];
  const frames = messages.map(encodeFrame);
  // Their magic is ISLJ (run) or ISLK (results), not ISLN.
  assert.deepEqual(frames.map((f) => new TextDecoder().decode(f.subarray(0, 4))), ["ISLJ", "ISLJ", "ISLK"]);
  const all = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
  frames.reduce((at, f) => (all.set(f, at), at + f.byteLength), 0);
  for (let split = 1; split < all.byteLength; split += 5) {
    const reader = new FrameReader();
    const got: unknown[] = [];
    for (const part of [all.subarray(0, split), all.subarray(split)]) {
      reader.push(part);
      for (let m = reader.next(); m !== undefined; m = reader.next()) got.push(m);
    }
    assert.deepEqual(got, messages);
  }
});

Deno.test("wire: a run or results with anything more than the binary form holds goes as JSON, whole", () => {
  const body = new Uint8Array([5]).buffer;
  const messages = [
    { type: "run", jobs: [{ id: 1, body, reply: { link: 1, id: 2 } }] },
    { type: "run", jobs: [{ id: 1, body }], extra: true },
    { type: "results", results: [{ id: 1, ok: true, body, streamed: true }] },
    { type: "results", results: [{ id: 1, ok: true, body }, { id: 2, ok: false, error: { code: "x", message: "y" } }] },
  ];
  for (const message of messages) {
    const frame = encodeFrame(message);
    assert.equal(new TextDecoder().decode(frame.subarray(0, 4)), "ISLN");
    const reader = new FrameReader();
    reader.push(frame);
    assert.deepEqual(reader.next(), message);
  }
});

Deno.test("wire: encodeRunFrame writes the bytes encodeFrame writes of a run, and nothing for a job that is not plain", () => {
  const bytes = (...b: number[]) => new Uint8Array(b).buffer;
  const plain = [
    [{ id: 41, body: bytes(1, 2, 3), requestId: "req-é-😀" }],
    [{ id: 2 ** 40, body: new ArrayBuffer(0), contentType: "text/plain" }, { id: 43, body: bytes(9) }],
  ];
  for (const jobs of plain) {
    const frame = encodeRunFrame(jobs);
    assert.ok(frame, "a run of plain jobs has a binary frame");
    assert.deepEqual([...frame], [...encodeFrame({ type: "run", jobs })]);
    const reader = new FrameReader();
    reader.push(frame);
    assert.deepEqual(reader.next(), { type: "run", jobs });
  }
  const tensors = [{ name: "x", datatype: "FP32", shape: [1], data: bytes(0, 0, 128, 63) }];
  assert.equal(encodeRunFrame([{ id: 1, body: bytes(1) }, { id: 2, body: new ArrayBuffer(0), tensors }]), undefined);
  assert.equal(encodeRunFrame([{ id: 1, body: bytes(1), reply: { link: 1, id: 2 } }]), undefined);
});
