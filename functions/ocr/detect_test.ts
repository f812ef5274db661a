import assert from "node:assert/strict";
import { boxesFromMap, detectorSize } from "./detect.ts";

Deno.test("detectorSize keeps within 960 px and rounds to multiples of 32", () => {
  assert.deepEqual(detectorSize(640, 200), { width: 640, height: 192 });
  assert.deepEqual(detectorSize(1920, 1080), { width: 960, height: 544 });
  assert.deepEqual(detectorSize(10, 10), { width: 32, height: 32 });
});

Deno.test("boxesFromMap finds separate regions and grows them back (unclip)", () => {
  const width = 40, height = 20;
  const map = new Float32Array(width * height);
  const fill = (x0: number, y0: number, x1: number, y1: number, p: number) => {
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) map[y * width + x] = p;
  };
  fill(2, 2, 12, 6, 0.9);
  fill(20, 10, 36, 16, 0.95);
  fill(30, 1, 33, 4, 0.4); // above the pixel threshold, below the box threshold: dropped
  const boxes = boxesFromMap(map, width, height);
  assert.equal(boxes.length, 2);
  const [a, b] = boxes;
  assert.ok(a.x < 2 && a.y < 2 && a.x + a.width > 12 && a.y + a.height > 6);
  assert.ok(Math.abs(a.score - 0.9) < 1e-6);
  assert.ok(b.x < 20 && b.x + b.width > 36);
});
