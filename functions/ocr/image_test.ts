import assert from "node:assert/strict";
import {
  compositeOnWhite,
  decodeImage,
  orient,
  padTo,
  readImageHeader,
  resizeNormalize,
  type RgbaImage,
} from "./image.ts";

function solid(width: number, height: number, rgb: [number, number, number]): RgbaImage {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([...rgb, 255], i * 4);
  return { width, height, data };
}

Deno.test("resizeNormalize keeps a solid colour, in BGR order, normalised", () => {
  const out = resizeNormalize(solid(7, 5, [255, 0, 51]), { x: 0, y: 0, width: 7, height: 5 }, {
    width: 3,
    height: 2,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
  });
  assert.equal(out.length, 3 * 3 * 2);
  const plane = (c: number) => Array.from(out.subarray(c * 6, c * 6 + 6));
  plane(0).forEach((v) => assert.ok(Math.abs(v - (51 / 255 - 0.5) / 0.5) < 1e-6)); // blue first
  plane(1).forEach((v) => assert.ok(Math.abs(v - -1) < 1e-6));
  plane(2).forEach((v) => assert.ok(Math.abs(v - 1) < 1e-6)); // red last
});

Deno.test("resizeNormalize interpolates between pixels like OpenCV's INTER_LINEAR", () => {
  // A 2x1 image black|white upsampled to 4x1: half-pixel centres give 0, 0.25, 0.75, 1.
  const image: RgbaImage = { width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 255, 255, 255, 255, 255]) };
  const out = resizeNormalize(image, { x: 0, y: 0, width: 2, height: 1 }, {
    width: 4,
    height: 1,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  });
  assert.deepEqual(Array.from(out.subarray(0, 4)).map((v) => Math.round(v * 100) / 100), [0, 0.25, 0.75, 1]);
});

Deno.test("resizeNormalize into a larger tensor writes the same values at its place and nothing else", () => {
  const image: RgbaImage = { width: 3, height: 2, data: Uint8Array.from({ length: 24 }, (_, i) => (i * 37) % 256) };
  const region = { x: 0, y: 0, width: 3, height: 2 };
  const size = { width: 5, height: 3, mean: [0.5, 0.4, 0.3], std: [0.2, 0.3, 0.4] };
  const alone = resizeNormalize(image, region, size);
  // A batch of two rows of 4x7 (height x width); the image goes into the second row.
  const tensor = new Float32Array(2 * 3 * 4 * 7).fill(42);
  const returned = resizeNormalize(image, region, size, { tensor, offset: 3 * 28, rowStride: 7, planeStride: 28 });
  assert.equal(returned, tensor);
  const expected = new Float32Array(tensor.length).fill(42);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 5; x++) expected[3 * 28 + c * 28 + y * 7 + x] = alone[c * 15 + y * 5 + x];
    }
  }
  assert.deepEqual(tensor, expected);
});

Deno.test("decodeImage refuses bytes that are neither PNG nor JPEG", () => {
  assert.throws(() => decodeImage(new TextEncoder().encode("GIF89a"), { maxPixels: 100 }), /neither PNG nor JPEG/);
});

Deno.test("readImageHeader reads a PNG's size from IHDR without the rest of the file", () => {
  const header = Uint8Array.from([
    0x89,
    0x50,
    0x4e,
    0x47,
    0x0d,
    0x0a,
    0x1a,
    0x0a,
    0,
    0,
    0,
    13,
    0x49,
    0x48,
    0x44,
    0x52,
    0,
    0,
    0x4e,
    0x20,
    0,
    0,
    0x4e,
    0x20,
    8,
    6,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
  assert.deepEqual(readImageHeader(header), { type: "png", width: 20000, height: 20000, orientation: 1 });
  assert.throws(() => decodeImage(header, { maxPixels: 40_000_000 }), /declares 20000x20000 pixels/);
});

Deno.test("compositeOnWhite puts transparent pixels on white and keeps opaque ones", () => {
  const image = { width: 3, height: 1, data: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 128]) };
  compositeOnWhite(image);
  assert.deepEqual(Array.from(image.data), [255, 255, 255, 255, 0, 0, 0, 255, 127, 127, 127, 255]);
});

Deno.test("orient turns each EXIF orientation upright", () => {
  // 2 x 1 pixels: A B, each one byte repeated.
  const px = (v: number) => [v, v, v, 255];
  const image = { width: 2, height: 1, data: Uint8Array.from([...px(1), ...px(2)]) };
  const read = (o: number) => {
    const out = orient(image, o);
    return { w: out.width, h: out.height, v: Array.from(out.data.filter((_, i) => i % 4 === 0)) };
  };
  assert.deepEqual(read(1), { w: 2, h: 1, v: [1, 2] });
  assert.deepEqual(read(2), { w: 2, h: 1, v: [2, 1] });
  assert.deepEqual(read(3), { w: 2, h: 1, v: [2, 1] });
  assert.deepEqual(read(6), { w: 1, h: 2, v: [1, 2] }); // stored turned counter-clockwise: A ends on top
  assert.deepEqual(read(8), { w: 1, h: 2, v: [2, 1] });
});

Deno.test("padTo pads each channel right and bottom with zeros", () => {
  // 3 channels of 2x1 -> 3x2
  const out = padTo(Float32Array.from([1, 2, 3, 4, 5, 6]), { width: 2, height: 1 }, { width: 3, height: 2 });
  assert.deepEqual(Array.from(out), [1, 2, 0, 0, 0, 0, 3, 4, 0, 0, 0, 0, 5, 6, 0, 0, 0, 0]);
  // Same width (a GPU canvas taller than the image): only rows are added.
  const taller = padTo(Float32Array.from([1, 2, 3, 4, 5, 6]), { width: 2, height: 1 }, { width: 2, height: 2 });
  assert.deepEqual(Array.from(taller), [1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0]);
});
