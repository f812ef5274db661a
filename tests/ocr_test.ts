/**
 * OCR on the images people have, served by a real runtime with the real
 * PP-OCRv4 models: text on a transparent background, lines tilted by ±15°,
 * word spacing in PNG and JPEG, a photo-like gradient, a JPEG stored sideways
 * with an EXIF orientation tag, and images whose header declares more pixels
 * than the limit (refused before decoding).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { deflateSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import pngjs from "pngjs";
import jpegJs from "jpeg-js";
import { encodeJpeg, renderSidewaysJpeg, renderText, renderTextPng } from "./support/render_text.ts";
import { errorOf, startServer, type TestServer } from "./support/server.ts";
import { chunk } from "./support/png_encode.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

interface Line {
  text: string;
  score: number;
  box: [number, number][];
}

async function read(server: TestServer, image: Uint8Array): Promise<Line[]> {
  const response = await server.invoke("ocr", { image: base64(image) });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.lines;
}

/** The angle of a box's top edge in degrees, clockwise positive (image y grows downwards). */
function topEdgeDegrees(box: [number, number][]): number {
  const [[x0, y0], [x1, y1]] = box;
  return (Math.atan2(y1 - y0, x1 - x0) * 180) / Math.PI;
}

/**
 * A grey PNG that declares `side` x `side` pixels; its IDAT holds the first
 * rows only (zeros deflate about 1000:1), so the file stays small while a
 * decoder that trusts the header would allocate for every declared pixel.
 */
function hugePng(side: number, rows: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit greyscale, deflate, adaptive filtering, no interlace
  const idat = deflateSync(new Uint8Array(rows * (side + 1)), { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array()),
  ]);
}

/** Where a JPEG's frame header (SOF segment) starts. */
function sofOffset(jpeg: Buffer): number {
  for (let i = 2; i < jpeg.length - 9;) {
    const marker = jpeg[i + 1];
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) return i;
    i += 2 + jpeg.readUInt16BE(i + 2);
  }
  throw new Error("No SOF segment");
}

/** A real JPEG whose SOF segment is rewritten to declare `side` x `side` pixels. */
function withJpegSize(jpeg: Uint8Array, side: number): Uint8Array {
  const out = Buffer.from(jpeg);
  for (let i = 2; i < out.length - 9;) {
    const marker = out[i + 1];
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      out.writeUInt16BE(side, i + 5);
      out.writeUInt16BE(side, i + 7);
      return out;
    }
    i += 2 + out.readUInt16BE(i + 2);
  }
  throw new Error("No SOF segment");
}

/** A white RGBA PNG of `width` x `height` pixels. */
function blankPng(width: number, height: number): Uint8Array {
  const png = new pngjs.PNG({ width, height });
  png.data.fill(255);
  return new Uint8Array(pngjs.PNG.sync.write(png));
}

Deno.test("ocr: images as people have them", async (t) => {
  await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });
  assert.equal((await fetch(`${server.url}/readyz`)).status, 200);

  await t.step("keeps the spaces between words, in PNG and in JPEG", async () => {
    const text = ["Total 93.50 PAID", "INVOICE 4711"];
    const bitmap = await renderText(text, { width: 700 });
    for (const image of [await renderTextPng(text, { width: 700 }), await encodeJpeg(bitmap)]) {
      const lines = await read(server, image);
      assert.deepEqual(lines.map((l) => l.text), text);
    }
  });

  await t.step("reads a line wider than 960 px whole (4,512 px, 36 words)", async () => {
    // The detector's longest-side limit alone shrank such a line's glyphs to about 12 px and lost its middle.
    const words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa " +
      "quebec romeo sierra tango uniform victor whiskey xray yankee zulu one two three four five six seven eight nine ten";
    const png = await renderTextPng([words], { width: 4512 });
    const lines = await read(server, png);
    assert.deepEqual(lines.map((l) => l.text), [words]);
    const [p0, p1] = lines[0].box;
    assert.ok(p1[0] - p0[0] > 3500, `the box spans the line: ${JSON.stringify(lines[0].box)}`);
  });

  await t.step("reads lines of 72 words (7,700 px wide, 44 px high) whole, three of them in order", async () => {
    // Recognition squeezed lines to 3,200 px at 48 px high: such a line read as "ahaaaq".
    const words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa " +
      "quebec romeo sierra tango uniform victor whiskey xray yankee zulu one two three four five six seven eight nine ten";
    const text = [`${words} ${words}`, `one ${words} ${words}`, `two ${words} ${words}`];
    const lines = await read(server, await renderTextPng(text, { width: 9200 }));
    assert.deepEqual(lines.map((l) => l.text), text);
  });

  await t.step("reads black text on a transparent background", async () => {
    const png = await renderTextPng(["Hello Edge World 2025"], { width: 700, background: "transparent" });
    const lines = await read(server, png);
    assert.deepEqual(lines.map((l) => l.text), ["Hello Edge World 2025"]);
  });

  await t.step("reads lines tilted by ±15° and returns their rotated corners", async () => {
    for (const tilt of [15, -15]) {
      const png = await renderTextPng(["Hello Edge World 2025"], { width: 700, tiltDegrees: tilt });
      const lines = await read(server, png);
      assert.deepEqual(lines.map((l) => l.text), ["Hello Edge World 2025"], `tilt ${tilt}`);
      const angle = topEdgeDegrees(lines[0].box);
      assert.ok(Math.abs(angle - tilt) < 3, `top edge at ${angle}° for a ${tilt}° tilt`);
      // Clockwise from the top-left: the second corner is right of the first, the fourth below it.
      const [p0, p1, , p3] = lines[0].box;
      assert.ok(p1[0] > p0[0] && p3[1] > p0[1], JSON.stringify(lines[0].box));
    }
  });

  await t.step("keeps short upright lines upright that the angle classifier alone would turn", async () => {
    // PP-OCR's classifier gives these upright lines 180° with a probability above 0.9; read turned they were "e" and
    // "L". A line it turns is read as it came too, and that reading kept where the recogniser is surer of it.
    for (const text of ["a", "1"]) {
      const png = await renderTextPng([text], { width: 240, fontSize: 90 });
      const lines = await read(server, png);
      assert.deepEqual(lines.map((l) => l.text), [text]);
    }
  });

  await t.step("reads a line upside down, and vertical text either way (the angle classifier)", async () => {
    // Without PP-OCR's direction classifier the crop of a line turned 180° or -90° reaches the recogniser upside down
    // and reads as noise ("o ao la", "po a olla"); +90° was already turned upright by the crop's quarter turn.
    for (const tilt of [180, -90, 90, 170]) {
      const png = await renderTextPng(["Hello Edge World 2025"], { width: 700, tiltDegrees: tilt });
      const lines = await read(server, png);
      assert.deepEqual(lines.map((l) => l.text), ["Hello Edge World 2025"], `tilt ${tilt}`);
      assert.ok(lines[0].score > 0.9, `tilt ${tilt}: score ${lines[0].score}`);
    }
  });

  await t.step("reads a tilted line on a photo-like gradient, as JPEG", async () => {
    const bitmap = await renderText(["Hello Edge World 2025"], { width: 700, tiltDegrees: 12, background: "gradient" });
    const lines = await read(server, await encodeJpeg(bitmap, 80));
    assert.deepEqual(lines.map((l) => l.text), ["Hello Edge World 2025"]);
  });

  await t.step("turns a JPEG upright by its EXIF orientation", async () => {
    const jpeg = await renderSidewaysJpeg(["Total 93.50 PAID", "INVOICE 4711"], { width: 700 });
    const lines = await read(server, jpeg);
    assert.deepEqual(lines.map((l) => l.text), ["Total 93.50 PAID", "INVOICE 4711"]);
    // Boxes are in the upright image: lines run left to right, the second below the first.
    assert.ok(lines[0].box[1][0] - lines[0].box[0][0] > 200, JSON.stringify(lines[0].box));
    assert.ok(lines[1].box[0][1] > lines[0].box[3][1]);
  });

  await t.step("reads a JPEG whose EXIF segment is broken, as stored (no orientation)", async () => {
    // An APP1 "Exif" segment whose first IFD lies past the segment's end, as some editors leave one: the image data
    // is intact, and decoders show it as stored. Sent as the body (`curl --data-binary`), the header reader once
    // refused the whole file (400, "Offset is outside the bounds of the DataView"); as base64 in JSON it read it.
    const jpeg = await encodeJpeg(await renderText(["INVOICE 4711"], { width: 400 }));
    const tiff = [0x4d, 0x4d, 0x00, 0x2a, 0xff, 0xff, 0xff, 0xf0];
    const payload = [...new TextEncoder().encode("Exif\0\0"), ...tiff];
    const app1 = [0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 0xff, ...payload];
    const broken = Buffer.concat([jpeg.subarray(0, 2), Buffer.from(app1), jpeg.subarray(2)]);
    const response = await fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "image/jpeg" },
      body: new Uint8Array(broken),
    });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.deepEqual(body.lines.map((l: Line) => l.text), ["INVOICE 4711"]);
    const lines = await read(server, new Uint8Array(broken));
    assert.deepEqual(lines.map((l) => l.text), ["INVOICE 4711"]);
  });

  await t.step("says which JPEG codings it cannot read (arithmetic, lossless), and what to send instead", async () => {
    const jpeg = Buffer.from(await encodeJpeg(await renderText(["x"], { width: 64 })));
    for (const [marker, coding] of [[0xc9, "arithmetic-coded"], [0xc3, "lossless"]] as const) {
      const relabelled = Buffer.from(jpeg);
      relabelled[sofOffset(relabelled) + 1] = marker;
      const e = await errorOf(
        await fetch(`${server.url}/v1/functions/ocr`, {
          method: "POST",
          headers: { "content-type": "image/jpeg" },
          body: new Uint8Array(relabelled),
        }),
      );
      assert.equal(e.status, 400);
      assert.equal(e.code, "invalid_input");
      assert.match(e.message, new RegExp(`${coding} JPEG .*not supported.*baseline or progressive JPEG, or as PNG`));
    }
  });

  await t.step("answers images of extreme shapes within the pixel limit without ending its isolate", async () => {
    // 200000 x 10 and 1000000 x 1 are 2 M and 1 M pixels, a few KB as PNG: the detector's input once grew to
    // 200000 x 32 and 1000000 x 32 (the short side rounded up to 32 px, the long side kept), past the isolate's memory.
    for (const [width, height] of [[200_000, 10], [1, 200_000], [1, 1]]) {
      const response = await server.invoke("ocr", { image: base64(blankPng(width, height)) });
      const body = await response.json();
      assert.equal(response.status, 200, `${width} x ${height}: ${JSON.stringify(body)}`);
      assert.deepEqual(body.lines, [], `${width} x ${height}`);
    }
    const info = await (await fetch(`${server.url}/v1/functions/ocr`)).json();
    assert.deepEqual(info.isolates.map((i: { restarts: number }) => i.restarts), [0]);
  });

  await t.step("reads a 40-megapixel PNG and JPEG (6400 x 6250), the most pixels it accepts", async () => {
    const text = await renderText(["INVOICE 4711"], { width: 6400, fontSize: 300 });
    const png = new pngjs.PNG({ width: 6400, height: 6250 });
    png.data.fill(255);
    png.data.set(text.data.subarray(0, 6400 * text.height * 4), 6400 * 2000 * 4);
    // jpeg-js's own memory cap of 512 MB refused such a JPEG ("maxMemoryUsageInMB limit exceeded by at least 23MB").
    const jpeg = jpegJs.encode({ width: 6400, height: 6250, data: png.data }, 85).data;
    for (const image of [new Uint8Array(pngjs.PNG.sync.write(png)), new Uint8Array(jpeg)]) {
      const lines = await read(server, image);
      assert.deepEqual(lines.map((l) => l.text), ["INVOICE 4711"]);
      const [p0, , , p3] = lines[0].box;
      assert.ok(
        p0[1] > 2000 && p3[1] < 2000 + text.height,
        `the box is where the text is: ${JSON.stringify(lines[0].box)}`,
      );
    }
  });

  await t.step("says that an empty body is empty (curl sends one when its @file is missing)", async () => {
    const response = await fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: new Uint8Array(),
    });
    const e = await errorOf(response);
    assert.equal(e.status, 400);
    assert.equal(e.code, "invalid_input");
    assert.match(e.message, /^The image is empty \(0 bytes\): send a PNG or JPEG file as the body/);
  });

  await t.step("says how to send a data URL (what a browser's FileReader gives): its base64 part alone", async () => {
    const png = await renderTextPng(["x"], { width: 64 });
    const e = await errorOf(await server.invoke("ocr", { image: `data:image/png;base64,${base64(png)}` }));
    assert.equal(e.status, 400);
    assert.equal(e.code, "invalid_input");
    const [issue] = e.details as { path: string[]; message: string }[];
    assert.deepEqual(issue.path, ["image"]);
    assert.match(issue.message, /base64.*without the 'data:image\/png;base64,' prefix/);
  });

  await t.step("refuses a PNG and a JPEG that declare 20000x20000 pixels, from the header", async () => {
    const png = hugePng(20_000, 10_000);
    assert.ok(png.length > 100_000 && png.length < 1_000_000, `${png.length} bytes`);
    const jpeg = withJpegSize(await encodeJpeg(await renderText(["x"], { width: 64 })), 20_000);
    for (const image of [png, jpeg]) {
      const e = await errorOf(await server.invoke("ocr", { image: base64(image) }));
      assert.equal(e.status, 400);
      assert.equal(e.code, "invalid_input");
      assert.match(e.message, /declares 20000x20000 pixels \(400000000\), more than the limit of 40000000/);
    }
    // Nothing was decoded: the isolate that refused them still serves, and the process stayed small.
    const lines = await read(server, await renderTextPng(["INVOICE 4711"], { width: 400 }));
    assert.deepEqual(lines.map((l) => l.text), ["INVOICE 4711"]);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const rss = Number(/^isolane_process_resident_memory_bytes (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(rss > 0 && rss < 1.5 * 1024 ** 3, `resident memory ${rss} bytes`);
  });
});
