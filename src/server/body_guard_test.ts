import assert from "node:assert/strict";
import { guardBodyRead } from "./body_guard.ts";
import { IsolaneError } from "../errors.ts";

Deno.test("guardBodyRead: one shared timer answers each stalled read at its own deadline, in deadline order", async () => {
  const never = () => new Promise<never>(() => {});
  const settled: string[] = [];
  const watch = (name: string, read: Promise<unknown>) =>
    read.then(
      (value) => settled.push(`${name} ${value}`),
      (error: IsolaneError) => settled.push(`${name} ${error.code}: ${error.message}`),
    );
  // The later deadline is armed first; the earlier one must re-arm the timer, not wait for it.
  // The deadline timer is unref'd (a server's listener keeps its process alive); here this interval does.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    const late = watch("late", guardBodyRead(never, 150));
    const early = watch("early", guardBodyRead(never, 30));
    const quick = watch("quick", guardBodyRead(() => Promise.resolve("body"), 60));
    await Promise.all([late, early, quick]);
  } finally {
    clearInterval(keepAlive);
  }
  assert.deepEqual(settled, [
    "quick body",
    "early request_timeout: The request body did not arrive within 30 ms (the function's timeoutMs); send it whole",
    "late request_timeout: The request body did not arrive within 150 ms (the function's timeoutMs); send it whole",
  ]);
});

Deno.test("guardBodyRead: a connection cut while reading is the client's fault (400), other errors pass", async () => {
  const cut = guardBodyRead(() => Promise.reject(new Deno.errors.ConnectionReset("reset")), 1000);
  await assert.rejects(
    cut,
    (e: IsolaneError) => e.code === "invalid_input" && /ended before it was complete/.test(e.message),
  );
  const other = guardBodyRead(() => Promise.reject(new TypeError("not a body")), 1000);
  await assert.rejects(other, TypeError);
  assert.equal(await guardBodyRead(() => Promise.resolve(7)), 7);
});

Deno.test("decodeContentEncoding: gzip and deflate bodies of many slices inflate exactly; bad and cut data are 400", async () => {
  const { decodeContentEncoding } = await import("./body_guard.ts");
  // 300 KB that compresses only so much: inflated a slice (1 KiB at a 1 MiB limit) at a time, in order.
  const text = new TextEncoder().encode(
    Array.from({ length: 30_000 }, (_, i) => `${i * 7919 % 100_003},`).join(""),
  );
  for (const encoding of ["gzip", "deflate"] as const) {
    const packed = new Uint8Array(
      await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream(encoding))).arrayBuffer(),
    );
    assert.ok(packed.length > 4 * 1024, `${encoding}: ${packed.length} bytes, several slices`);
    assert.deepEqual(await decodeContentEncoding(packed, encoding, 1024 * 1024), text);
    await assert.rejects(
      decodeContentEncoding(packed, encoding, text.length - 1),
      (e: IsolaneError) => e.code === "body_too_large",
    );
    // A stream cut short is refused, not inflated as far as it goes (Deno's DecompressionStream("deflate") did that).
    await assert.rejects(
      decodeContentEncoding(packed.subarray(0, packed.length >> 1), encoding, 1024 * 1024),
      (e: IsolaneError) => e.code === "invalid_input" && e.message === `Request body is not valid ${encoding} data`,
    );
    const garbage = packed.slice();
    garbage.fill(0x55, 20, 2000);
    await assert.rejects(
      decodeContentEncoding(garbage, encoding, 1024 * 1024),
      (e: IsolaneError) => e.code === "invalid_input",
    );
  }
});

Deno.test("decodeContentEncoding: a gzip body of several members inflates whole; data after the last is refused", async () => {
  const { decodeContentEncoding } = await import("./body_guard.ts");
  const gzip = async (text: string) =>
    new Uint8Array(
      await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
    );
  const members = [await gzip('{"message":'), await gzip('"hello"'), await gzip("}")];
  const body = new Uint8Array(members.reduce((n, m) => n + m.length, 0));
  let at = 0;
  for (const member of members) {
    body.set(member, at);
    at += member.length;
  }
  // Deno's DecompressionStream("gzip") failed on the second member: such a body was refused as invalid gzip data.
  const decoded = await decodeContentEncoding(body, "gzip", 1024);
  assert.equal(new TextDecoder().decode(decoded), '{"message":"hello"}');
  // Alone in its buffer: the routes take the buffer as the body.
  assert.equal(decoded.buffer.byteLength, decoded.byteLength);
  // The limit counts every member.
  await assert.rejects(decodeContentEncoding(body, "gzip", 18), (e: IsolaneError) => e.code === "body_too_large");
  const trailing = new Uint8Array([...body, 1, 2, 3]);
  await assert.rejects(
    decodeContentEncoding(trailing, "gzip", 1024),
    (e: IsolaneError) => e.code === "invalid_input" && e.message === "Request body is not valid gzip data",
  );
});

Deno.test("decodeContentEncoding: bytes after the end of a deflate (zlib) stream are refused, as after gzip", async () => {
  const { decodeContentEncoding } = await import("./body_guard.ts");
  const deflate = async (text: string) =>
    new Uint8Array(
      await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer(),
    );
  const packed = await deflate('{"message":"hello"}');
  assert.equal(new TextDecoder().decode(await decodeContentEncoding(packed, "deflate", 1024)), '{"message":"hello"}');
  // Garbage, one byte, and a second zlib stream (deflate has no members: only the first was inflated, the rest dropped).
  for (const tail of [[1, 2, 3], [0], [...await deflate('{"more":1}')]]) {
    await assert.rejects(
      decodeContentEncoding(new Uint8Array([...packed, ...tail]), "deflate", 1024),
      (e: IsolaneError) => e.code === "invalid_input" && e.message === "Request body is not valid deflate data",
      `${tail.length} bytes after the stream`,
    );
  }
});

Deno.test("decodeContentEncoding: an unsupported Content-Encoding is 415, its value echoed at most 64 characters long", async () => {
  const { decodeContentEncoding } = await import("./body_guard.ts");
  const long = "x".repeat(5000);
  await assert.rejects(
    decodeContentEncoding(new Uint8Array([1]), long, 1024),
    (e: IsolaneError) =>
      e.code === "unsupported_media_type" &&
      e.message === `Content-Encoding '${"x".repeat(64)}…' is not supported; use gzip or deflate`,
  );
  await assert.rejects(
    decodeContentEncoding(new Uint8Array([1]), "br", 1024),
    (e: IsolaneError) => e.message === "Content-Encoding 'br' is not supported; use gzip or deflate",
  );
});
