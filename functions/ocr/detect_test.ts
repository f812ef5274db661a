import assert from "node:assert/strict";
import fc from "fast-check";
import { boxesFromMap, detectorSize, orderCorners, readingOrder, unclip } from "./detect.ts";
import { loadOpenCv } from "./opencv.ts";

Deno.test("detectorSize keeps within 960 px and rounds to multiples of 32", () => {
  assert.deepEqual(detectorSize(640, 200), { width: 640, height: 192 });
  assert.deepEqual(detectorSize(1920, 1080), { width: 960, height: 544 });
  assert.deepEqual(detectorSize(10, 10), { width: 32, height: 32 });
});

Deno.test("detectorSize keeps a long line's height: the shorter side is not shrunk below 256 px", () => {
  // The longest-side rule alone gave 960 x 32 here.
  assert.deepEqual(detectorSize(2643, 101), { width: 2656, height: 96 });
  // A tall receipt: its shorter side kept at 256 px.
  assert.deepEqual(detectorSize(600, 8000), { width: 256, height: 3424 });
  // Within 4 x 960 x 960 pixels in all.
  const { width, height } = detectorSize(40_000, 1000);
  assert.ok(width * height <= 4 * 960 * 960 * 1.01, `${width} x ${height}`);
  assert.deepEqual({ width, height }, { width: 10240, height: 256 });
  // Photos keep PaddleOCR's longest-side limit.
  assert.deepEqual(detectorSize(4000, 3000), { width: 960, height: 736 });
});

Deno.test("detectorSize stays within 4 x 960 x 960 pixels for every image within ocr's 40 M pixel limit", () => {
  // A line 1 to 31 px high is rounded up to 32 px, so its length alone must respect the area: 200000 x 10 gave
  // 200000 x 32 (6.4 M pixels) and 1000000 x 1 gave 32 M, which took the isolate past its memory limit.
  const shapes = [[200_000, 10], [1_000_000, 1], [40_000_000, 1], [1, 40_000_000], [100_000, 100], [400_000, 40]];
  for (const [w, h] of shapes) {
    const size = detectorSize(w, h);
    assert.ok(size.width * size.height <= 4 * 960 * 960, `${w} x ${h} -> ${size.width} x ${size.height}`);
    assert.ok(size.width % 32 === 0 && size.height % 32 === 0 && size.width >= 32 && size.height >= 32);
  }
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40_000_000 }), fc.integer({ min: 1, max: 40_000_000 }), (w, h) => {
      fc.pre(w * h <= 40_000_000);
      const size = detectorSize(w, h);
      return size.width * size.height <= 4 * 960 * 960 && size.width >= 32 && size.height >= 32;
    }),
    { numRuns: 2000 },
  );
});

Deno.test("orderCorners puts corners clockwise from the top-left", () => {
  assert.deepEqual(orderCorners([[10, 12], [0, 0], [0, 10], [10, 2]]), [[0, 0], [10, 2], [10, 12], [0, 10]]);
});

Deno.test("unclip grows a rectangle by area * ratio / perimeter on every side", () => {
  // 40 x 10: area 400, perimeter 100, ratio 2 -> 8 px a side.
  const grown = unclip([[0, 0], [40, 0], [40, 10], [0, 10]], 2);
  const xs = grown.map((p) => p[0]);
  const ys = grown.map((p) => p[1]);
  assert.ok(Math.abs(Math.min(...xs) + 8) < 0.05 && Math.abs(Math.max(...xs) - 48) < 0.05, `${xs}`);
  assert.ok(Math.abs(Math.min(...ys) + 8) < 0.05 && Math.abs(Math.max(...ys) - 18) < 0.05, `${ys}`);
});

Deno.test("boxesFromMap finds separate regions, rotated ones as rotated quadrilaterals", async () => {
  const cv = await loadOpenCv();
  const width = 120, height = 80;
  const map = new Float32Array(width * height);
  // An upright bar, a bar tilted by atan(1/4) (about 14°), and a faint one below the box threshold.
  for (let y = 10; y < 18; y++) for (let x = 10; x < 50; x++) map[y * width + x] = 0.9;
  for (let x = 60; x < 110; x++) {
    const y0 = Math.round(30 + (x - 60) / 4);
    for (let y = y0; y < y0 + 8; y++) map[y * width + x] = 0.95;
  }
  for (let y = 60; y < 66; y++) for (let x = 10; x < 40; x++) map[y * width + x] = 0.4;
  const boxes = readingOrder(boxesFromMap(cv, map, width, height));
  assert.equal(boxes.length, 2, JSON.stringify(boxes));
  const [upright, tilted] = boxes;
  assert.ok(Math.abs(upright.score - 0.9) < 0.01);
  const [p0, p1, p2, p3] = upright.quad;
  assert.ok(p0[0] < 10 && p0[1] < 10 && p2[0] > 50 && p2[1] > 18, JSON.stringify(upright.quad));
  assert.ok(Math.abs(p0[1] - p1[1]) < 0.5 && Math.abs(p0[0] - p3[0]) < 0.5);
  const [t0, t1] = tilted.quad;
  const angle = (Math.atan2(t1[1] - t0[1], t1[0] - t0[0]) * 180) / Math.PI;
  assert.ok(Math.abs(angle - 14) < 2, `tilted box at ${angle}°`);
});
