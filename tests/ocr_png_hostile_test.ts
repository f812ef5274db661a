/**
 * Hostile PNGs against the `ocr` example, through a real runtime, as base64 in
 * JSON and as an `image/png` body: truncated files, forged headers,
 * decompression bombs (a header that declares millions of pixels over a few
 * bytes of data), files without image data, and fast-check's mutations of a
 * real PNG. Each is answered 400 `invalid_input` with what is wrong, or read
 * correctly; never a 5xx, and the isolate keeps serving.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { deflateSync, inflateSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import pngjs from "pngjs";
import { renderTextPng } from "./support/render_text.ts";
import { chunk, encodePng } from "./support/png_encode.ts";
import { errorOf, startServer, type TestServer } from "./support/server.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));
const signature = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const iend = chunk("IEND", new Uint8Array());

function ihdr(width: number, height: number, bitDepth = 8, colourType = 0, interlace = 0): Uint8Array {
  const data = Buffer.alloc(13);
  data.writeUInt32BE(width, 0);
  data.writeUInt32BE(height, 4);
  data.set([bitDepth, colourType, 0, 0, interlace], 8);
  return chunk("IHDR", data);
}

const png = (...chunks: Uint8Array[]) => new Uint8Array(Buffer.concat([signature, ...chunks]));

/** The chunks of a PNG: type, where the chunk starts and its data. */
function chunksOf(file: Uint8Array): { type: string; at: number; data: Uint8Array }[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const out = [];
  for (let at = 8; at + 12 <= file.length;) {
    const length = view.getUint32(at);
    out.push({
      type: String.fromCharCode(...file.subarray(at + 4, at + 8)),
      at,
      data: file.subarray(at + 8, at + 8 + length),
    });
    at += 12 + length;
  }
  return out;
}

/** Sends `image` as base64 in JSON or as the body. */
function send(server: TestServer, image: Uint8Array, as: "json" | "body"): Promise<Response> {
  return as === "json"
    ? server.invoke("ocr", { image: Buffer.from(image).toString("base64") })
    : fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: image as Uint8Array<ArrayBuffer>,
    });
}

/**
 * `file` with its image data cut to `keep` of its scanlines' bytes and deflated again, uncompressed (zlib level 0),
 * so that the data is large enough for its size and its zlib stream is whole: only rows are missing.
 */
function rowsCut(file: Uint8Array, keep: number): Uint8Array {
  const chunks = chunksOf(file);
  const scanlines = inflateSync(Buffer.concat(chunks.filter((c) => c.type === "IDAT").map((c) => c.data)));
  const cut = deflateSync(scanlines.subarray(0, Math.floor(scanlines.length * keep)), { level: 0 });
  return png(file.subarray(8, chunks.find((c) => c.type === "IDAT")!.at), chunk("IDAT", cut), iend);
}

/** `file` with its zlib stream (uncompressed, level 0) cut at `keep` of its bytes, without its end, in whole chunks. */
function streamCut(file: Uint8Array, keep: number): Uint8Array {
  const chunks = chunksOf(file);
  const scanlines = inflateSync(Buffer.concat(chunks.filter((c) => c.type === "IDAT").map((c) => c.data)));
  const stream = deflateSync(scanlines, { level: 0 });
  const cut = stream.subarray(0, Math.floor(stream.length * keep));
  return png(file.subarray(8, chunks.find((c) => c.type === "IDAT")!.at), chunk("IDAT", cut), iend);
}

async function texts(response: Response): Promise<string[]> {
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.lines.map((l: { text: string }) => l.text);
}

Deno.test("ocr: hostile PNGs get 400 with the reason, or are read correctly", async (t) => {
  await using server = await startServer({ functionsDir });
  const good = await renderTextPng(["INVOICE 4711"], { width: 300 });
  const chunks = chunksOf(good);
  const idat = Buffer.concat(chunks.filter((c) => c.type === "IDAT").map((c) => c.data));
  const beforeIdat = good.subarray(8, chunks.find((c) => c.type === "IDAT")!.at);
  const lastChunk = chunks.at(-1)!;
  assert.equal(lastChunk.type, "IEND");

  const refused: [string, Uint8Array, RegExp][] = [
    // 16 bytes: a pooled Buffer (small base64) let the header reader take the size from the pool's other bytes.
    ["cut inside IHDR", good.subarray(0, 16), /The PNG file ends inside its header \(16 bytes/],
    [
      "cut inside IDAT",
      good.subarray(0, good.length >> 1),
      /The PNG file is truncated: its IDAT chunk declares \d+ bytes/,
    ],
    ["without IEND", good.subarray(0, lastChunk.at), /truncated: it ends before its IEND chunk/],
    [
      "4000x4000 over 27 bytes of data",
      png(ihdr(4000, 4000), chunk("IDAT", deflateSync(new Uint8Array(4001))), iend),
      /image data \(\d+ bytes compressed\) cannot hold the 4000x4000 pixels/,
    ],
    [
      "6000x6000 (past the WebAssembly decoder's size) over 29 bytes",
      png(ihdr(6000, 6000), chunk("IDAT", deflateSync(new Uint8Array(6001))), iend),
      /cannot hold the 6000x6000 pixels/,
    ],
    [
      "3000x3000 16-bit RGBA over 12 bytes",
      png(ihdr(3000, 3000, 16, 6), chunk("IDAT", deflateSync(new Uint8Array(100))), iend),
      /cannot hold the 3000x3000 pixels/,
    ],
    ["4000x4000 without IDAT", png(ihdr(4000, 4000), iend), /no image data \(no IDAT chunk\)/],
    [
      "bit depth 3",
      png(ihdr(10, 10, 3), chunk("IDAT", deflateSync(new Uint8Array(40))), iend),
      /colour type 0 at bit depth 3/,
    ],
    [
      "16-bit palette",
      png(ihdr(10, 10, 16, 3), chunk("PLTE", new Uint8Array(6)), chunk("IDAT", deflateSync(new Uint8Array(210))), iend),
      /colour type 3 at bit depth 16, which PNG does not allow/,
    ],
    ["interlace 7", png(ihdr(10, 10, 8, 0, 7), chunk("IDAT", deflateSync(new Uint8Array(110))), iend), /interlace 7/],
    [
      "an IDAT that declares 2 GB",
      (() => {
        const forged = good.slice();
        new DataView(forged.buffer).setUint32(chunks.find((c) => c.type === "IDAT")!.at, 0x7ffffff0);
        return forged;
      })(),
      /truncated: its IDAT chunk declares 2147483632 bytes/,
    ],
    [
      "a whole zlib stream that ends 7 rows early",
      rowsCut(good, 1 - 7 / pngjs.PNG.sync.read(Buffer.from(good)).height),
      /The PNG is truncated: its image data \(IDAT\) inflates to \d+ bytes, .* need \d+; the last rows are missing/,
    ],
    [
      "an 8-bit zlib stream cut short without its end, in whole chunks",
      streamCut(encodePng({ width: 40, height: 30, colorType: 0, bitDepth: 8, sample: (x, y) => [x * y % 200] }), 0.6),
      /The PNG is truncated: .*the last rows are missing/,
    ],
    [
      "a 16-bit zlib stream cut short without its end",
      streamCut(encodePng({ width: 40, height: 30, colorType: 0, bitDepth: 16, sample: (x) => [x * 1000] }), 0.6),
      /The PNG is truncated: .*the last rows are missing/,
    ],
    [
      "an interlaced PNG whose stream ends early",
      rowsCut(
        encodePng({ width: 40, height: 30, colorType: 2, bitDepth: 8, interlace: true, sample: () => [9, 99, 199] }),
        0.6,
      ),
      /The PNG is truncated: .*the last rows are missing/,
    ],
    [
      "a 16-bit PNG (pngjs only) whose stream ends early",
      rowsCut(encodePng({ width: 40, height: 30, colorType: 0, bitDepth: 16, sample: (x) => [x * 1000] }), 0.5),
      /The PNG is truncated: .*the last rows are missing/,
    ],
    [
      "a palette index past the palette's 2 entries (8-bit)",
      encodePng({
        width: 20,
        height: 10,
        colorType: 3,
        bitDepth: 8,
        sample: (x, y) => [x === 13 && y === 6 ? 2 : (x + y) % 2],
        palette: [[255, 255, 255], [0, 0, 0]],
      }),
      /pixel \(13, 6\) uses a palette index past its palette's 2 entries, .*11\.2\.3 PLTE/,
    ],
    [
      "a palette index past the palette's 3 entries (4-bit, with tRNS)",
      encodePng({
        width: 20,
        height: 10,
        colorType: 3,
        bitDepth: 4,
        sample: (x, y) => [x === 0 && y === 9 ? 15 : x % 3],
        palette: [[255, 255, 255], [0, 0, 0], [90, 1, 165]],
        paletteAlpha: [255, 0],
      }),
      /pixel \(0, 9\) uses a palette index past its palette's 3 entries/,
    ],
    [
      "IDAT that is not zlib",
      png(ihdr(10, 10), chunk("IDAT", Uint8Array.from({ length: 100 }, (_, i) => (i * 73 + 41) & 255)), iend),
      /Cannot decode the PNG image: /,
    ],
  ];
  for (const as of ["json", "body"] as const) {
    await t.step(`refused as ${as}: each with what is wrong`, async () => {
      for (const [name, image, reason] of refused) {
        const error = await errorOf(await send(server, image, as));
        assert.equal(error.status, 400, `${name}: ${JSON.stringify(error)}`);
        assert.equal(error.code, "invalid_input", name);
        assert.match(error.message, reason, name);
      }
    });
  }

  await t.step("reads unusual valid PNGs: many IDATs, bytes after IEND or the zlib stream, 16-bit", async () => {
    const manyIdats = png(
      beforeIdat,
      ...Array.from({ length: Math.ceil(idat.length / 7) }, (_, i) => chunk("IDAT", idat.subarray(i * 7, i * 7 + 7))),
      iend,
    );
    const trailing = new Uint8Array(Buffer.concat([good, Buffer.from("trailing bytes after IEND".repeat(40))]));
    const rgba = pngjs.PNG.sync.read(Buffer.from(good));
    const deep = encodePng({
      width: rgba.width,
      height: rgba.height,
      colorType: 2,
      bitDepth: 16,
      interlace: true,
      sample: (x, y) => [0, 1, 2].map((c) => rgba.data[(y * rgba.width + x) * 4 + c] * 257),
    });
    assert.equal(deep[24], 16);
    assert.equal(deep[28], 1);
    // Bytes after the zlib stream's end, inside the image data (libpng and zlib ignore them; pngjs refused the file),
    // in an 8-bit PNG (the crate) and a 16-bit one (pngjs).
    const afterStream = (file: Uint8Array) => {
      const chunks = chunksOf(file);
      const stream = Buffer.concat(chunks.filter((c) => c.type === "IDAT").map((c) => c.data));
      const head = chunks.filter((c) => c.type !== "IDAT" && c.type !== "IEND").map((c) => chunk(c.type, c.data));
      return png(...head, chunk("IDAT", Buffer.concat([stream, Buffer.from("bytes after the zlib stream")])), iend);
    };
    const extraStream = afterStream(good);
    // Not interlaced: pngjs refused that one (an interlaced one it read).
    const deepExtraStream = afterStream(encodePng({
      width: rgba.width,
      height: rgba.height,
      colorType: 2,
      bitDepth: 16,
      sample: (x, y) => [0, 1, 2].map((c) => rgba.data[(y * rgba.width + x) * 4 + c] * 257),
    }));
    const idatOf = (file: Uint8Array) =>
      Buffer.concat(chunksOf(file).filter((c) => c.type === "IDAT").map((c) => c.data));
    // zlib reads the same image data from either.
    assert.deepEqual(inflateSync(idatOf(extraStream)), inflateSync(idatOf(good)));
    assert.equal(deepExtraStream[24], 16);
    for (const image of [manyIdats, trailing, deep, extraStream, deepExtraStream]) {
      assert.deepEqual(await texts(await send(server, image, "json")), ["INVOICE 4711"]);
      assert.deepEqual(await texts(await send(server, image, "body")), ["INVOICE 4711"]);
    }
  });

  await t.step("fast-check: a mutated PNG gets 200 or 400, never 5xx", async () => {
    const small = await renderTextPng(["42"], { width: 96 });
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant("flip" as const),
        at: fc.nat(small.length - 1),
        value: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat(small.length - 1), value: fc.constant(0) }),
      fc.record({ kind: fc.constant("word" as const), at: fc.nat(small.length - 4), value: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), async (mutations, asBody) => {
        let image = small.slice();
        for (const { kind, at, value } of mutations) {
          if (kind === "flip") image[at % image.length] ^= value;
          else if (kind === "cut") image = image.slice(0, at);
          else if (at + 4 <= image.length) new DataView(image.buffer).setUint32(at, value);
        }
        const response = await send(server, image, asBody ? "body" : "json");
        const body = await response.json();
        assert.ok(response.status === 200 || response.status === 400, `${response.status}: ${JSON.stringify(body)}`);
        if (response.status === 400) assert.equal(body.error.code, "invalid_input", JSON.stringify(body));
      }),
      { numRuns: 150 },
    );
  });

  await t.step("after 300 hostile PNGs the isolate was never restarted and still reads", async () => {
    const images = refused.map(([, image]) => image);
    for (let i = 0; i < 300; i++) {
      const response = await send(server, images[i % images.length], i % 2 ? "json" : "body");
      assert.equal(response.status, 400);
      await response.body?.cancel();
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const restarts = [...metrics.matchAll(/^isolane_isolate_restarts_total\{[^}]*function="ocr"[^}]*\} (\S+)$/gm)];
    assert.equal(
      restarts.reduce((n, m) => n + Number(m[1]), 0),
      0,
      metrics.match(/^isolane_isolate_restarts.*$/gm)?.join("\n") ?? "",
    );
    assert.deepEqual(await texts(await send(server, good, "body")), ["INVOICE 4711"]);
  });
});
