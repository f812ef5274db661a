import assert from "node:assert/strict";
import { decodeImage, padTo, resizeNormalize, type RgbaImage } from "./image.ts";

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

Deno.test("decodeImage refuses bytes that are neither PNG nor JPEG", () => {
  assert.throws(() => decodeImage(new TextEncoder().encode("GIF89a")), /neither PNG nor JPEG/);
});

Deno.test("padTo pads each channel right and bottom with zeros", () => {
  // 3 channels of 2x1 -> 3x2
  const out = padTo(Float32Array.from([1, 2, 3, 4, 5, 6]), { width: 2, height: 1 }, { width: 3, height: 2 });
  assert.deepEqual(Array.from(out), [1, 2, 0, 0, 0, 0, 3, 4, 0, 0, 0, 0, 5, 6, 0, 0, 0, 0]);
});
