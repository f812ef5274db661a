import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import pngjs from "pngjs";
import { encodePng, type PngSpec } from "../../tests/support/png_encode.ts";
import { renderTextPng } from "../../tests/support/render_text.ts";
import { decodeImage, UnusableImage } from "./image.ts";
import { loadPngDecoder, PaletteIndexError, wasmPngMaxPixels } from "./png_wasm.ts";

const wasm = fileURLToPath(new URL("../../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm", import.meta.url));

/** Samples that differ from pixel to pixel and channel to channel, from 0 to `max`. */
const v = (x: number, y: number, k: number, max: number) => ((x * 37 + y * 91 + k * 53) * 7919) % (max + 1);
const palette = Array.from({ length: 200 }, (_, i) => [i, 255 - i, (i * 77) % 256] as [number, number, number]);
const variants: Record<string, Omit<PngSpec, "width" | "height">> = {
  "RGBA 8": { colorType: 6, bitDepth: 8, sample: (x, y) => [0, 1, 2, 3].map((k) => v(x, y, k, 255)) },
  "RGB 8": { colorType: 2, bitDepth: 8, sample: (x, y) => [0, 1, 2].map((k) => v(x, y, k, 255)) },
  "grey 1": { colorType: 0, bitDepth: 1, sample: (x, y) => [v(x, y, 0, 1)] },
  "grey 2": { colorType: 0, bitDepth: 2, sample: (x, y) => [v(x, y, 0, 3)] },
  "grey 4": { colorType: 0, bitDepth: 4, sample: (x, y) => [v(x, y, 0, 15)] },
  "grey 8": { colorType: 0, bitDepth: 8, sample: (x, y) => [v(x, y, 0, 255)] },
  "grey + alpha 8": { colorType: 4, bitDepth: 8, sample: (x, y) => [v(x, y, 0, 255), v(x, y, 1, 255)] },
  "palette 4, with tRNS": {
    colorType: 3,
    bitDepth: 4,
    sample: (x, y) => [v(x, y, 0, 9)],
    palette: palette.slice(0, 10),
    paletteAlpha: [255, 0, 128],
  },
  "palette 8": { colorType: 3, bitDepth: 8, sample: (x, y) => [v(x, y, 0, 199)], palette },
};

function pngjsDecode(png: Uint8Array): Uint8Array {
  return new Uint8Array(pngjs.PNG.sync.read(Buffer.from(png)).data);
}

Deno.test("the png crate decodes every colour type and bit depth to 8, interlaced or not, as pngjs does", async () => {
  const decoder = await loadPngDecoder(wasm);
  for (const [name, spec] of Object.entries(variants)) {
    for (const interlace of [false, true]) {
      const png = encodePng({ width: 13, height: 11, interlace, ...spec });
      const image = decoder.decode(png, 13 * 11);
      assert.ok(image, name);
      assert.deepEqual([image.width, image.height], [13, 11], name);
      assert.deepEqual(image.data, pngjsDecode(png), `${name}${interlace ? ", interlaced" : ""}`);
    }
  }
  const text = await renderTextPng(["Total 93.50 PAID"], { width: 400, background: "transparent" });
  assert.deepEqual(decoder.decode(text, 400 * 1000)?.data, pngjsDecode(text));
});

Deno.test("16-bit PNGs and PNGs over the pixel limit are left to pngjs, which decodeImage then uses", async () => {
  const decoder = await loadPngDecoder(wasm);
  for (const colorType of [0, 2, 4, 6] as const) {
    const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
    const png = encodePng({
      width: 9,
      height: 7,
      colorType,
      bitDepth: 16,
      sample: (x, y) => Array.from({ length: channels }, (_, k) => v(x, y, k, 65535)),
    });
    assert.equal(decoder.decode(png, 63), undefined, `colour type ${colorType}`);
    const reference = { width: 9, height: 7, data: pngjsDecode(png) };
    const decoded = decodeImage(png, { maxPixels: 1000, png: decoder });
    // decodeImage composites onto white: the same for both, and opaque pixels are left as they are.
    const opaque = decodeImage(png, { maxPixels: 1000 });
    assert.deepEqual(decoded, opaque);
    if (colorType === 0 || colorType === 2) assert.deepEqual(decoded, reference);
  }
  const png = encodePng({ width: 8, height: 8, colorType: 0, bitDepth: 8, sample: () => [0] });
  assert.equal(decoder.decode(png, wasmPngMaxPixels + 1), undefined);
});

Deno.test("after files it cannot decode the decoder decodes the next one; decodeImage gives pngjs's reason", async () => {
  const decoder = await loadPngDecoder(wasm);
  const good = await renderTextPng(["Hello World"], { width: 640 });
  const pixels = 640 * 1000;
  for (let i = 0; i < 20; i++) {
    assert.throws(() => decoder.decode(good.subarray(0, 2000 + i), pixels));
    assert.throws(() => decoder.decode(good.subarray(0, 40), pixels));
  }
  assert.deepEqual(decoder.decode(good, pixels)?.data, pngjsDecode(good));
  // A file cut short is refused before either decoder sees it; one whose IDAT is corrupt gets pngjs's reason.
  assert.throws(
    () => decodeImage(good.subarray(0, 2000), { maxPixels: 1_000_000, png: decoder }),
    (error: unknown) =>
      error instanceof UnusableImage && /^The PNG file is truncated: its IDAT chunk/.test(error.message),
  );
  const corrupt = good.slice();
  corrupt.fill(0xff, 200, 260);
  assert.throws(
    () => decodeImage(corrupt, { maxPixels: 1_000_000, png: decoder }),
    (error: unknown) => error instanceof UnusableImage && /^Cannot decode the PNG image: /.test(error.message),
  );
});

Deno.test("a palette index past the palette is refused by either decoder, with the pixel; a short palette used within its entries is read", async () => {
  const decoder = await loadPngDecoder(wasm);
  const past = (bitDepth: 1 | 2 | 4 | 8, index: number) =>
    encodePng({
      width: 11,
      height: 5,
      colorType: 3,
      bitDepth,
      sample: (x, y) => [x === 7 && y === 3 ? index : 0],
      palette: [[200, 10, 10]],
    });
  for (const [bitDepth, index] of [[1, 1], [2, 3], [4, 9], [8, 255]] as const) {
    assert.throws(() => decoder.decode(past(bitDepth, index), 55), PaletteIndexError);
    assert.throws(
      () => decodeImage(past(bitDepth, index), { maxPixels: 1000, png: decoder }),
      (error: unknown) =>
        error instanceof UnusableImage &&
        /^The PNG is corrupt: pixel \(7, 3\) uses a palette index past its palette's 1 entries/.test(error.message),
    );
    // pngjs alone (what a palette PNG past the crate's size gets) refuses it too, with the index.
    assert.throws(
      () => decodeImage(past(bitDepth, index), { maxPixels: 1000 }),
      (error: unknown) =>
        error instanceof UnusableImage &&
        new RegExp(`^The PNG is corrupt: a pixel uses palette index ${index} past its palette's 1 entries`)
          .test(error.message),
    );
  }
  // Every entry of a short palette used, one of them the padding's first candidate colour: read as pngjs reads it.
  const colours: [number, number, number][] = [[0xa5, 0x01, 0x5a], [1, 2, 3], [250, 250, 250]];
  const within = encodePng({
    width: 11,
    height: 5,
    colorType: 3,
    bitDepth: 8,
    sample: (x, y) => [(x + y) % 3],
    palette: colours,
  });
  assert.deepEqual(decoder.decode(within, 55)?.data, pngjsDecode(within));
});
