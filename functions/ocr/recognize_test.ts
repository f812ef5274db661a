import assert from "node:assert/strict";
import { cropQuad, ctcDecode, parseDictionary } from "./recognize.ts";
import { loadOpenCv } from "./opencv.ts";

Deno.test("parseDictionary puts the CTC blank first and a space last", () => {
  assert.deepEqual(parseDictionary("a\nb\n"), ["", "a", "b", " "]);
});

Deno.test("ctcDecode collapses repeats and drops blanks", () => {
  const dictionary = ["", "a", "b", " "];
  // steps: a a blank a b b  -> "aab"
  const best = [1, 1, 0, 1, 2, 2];
  const probs = new Float32Array(best.length * 4);
  best.forEach((k, t) => (probs[t * 4 + k] = 0.9));
  const { text, score } = ctcDecode(probs, best.length, 4, dictionary);
  assert.equal(text, "aab");
  assert.ok(Math.abs(score - 0.9) < 1e-6);
});

Deno.test("cropQuad cuts a quadrilateral upright, and turns tall crops", async () => {
  const cv = await loadOpenCv();
  // 20 x 12: red left of x = 10, blue right of it.
  const width = 20, height = 12;
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set((i % width) < 10 ? [255, 0, 0, 255] : [0, 0, 255, 255], i * 4);
  const image = { width, height, data };
  const crop = cropQuad(cv, image, [[2, 2], [18, 2], [18, 8], [2, 8]]);
  assert.deepEqual([crop.width, crop.height], [16, 6]);
  const at = (x: number, y: number) =>
    Array.from(crop.data.subarray((y * crop.width + x) * 4, (y * crop.width + x) * 4 + 3));
  assert.deepEqual(at(1, 3), [255, 0, 0]);
  assert.deepEqual(at(14, 3), [0, 0, 255]);
  // Taller than 1.5 times its width: turned 90° counter-clockwise, so the top of the quad ends on the left.
  const tall = cropQuad(cv, image, [[8, 0], [12, 0], [12, 12], [8, 12]]);
  assert.deepEqual([tall.width, tall.height], [12, 4]);
  const tallAt = (x: number, y: number) =>
    Array.from(tall.data.subarray((y * tall.width + x) * 4, (y * tall.width + x) * 4 + 3));
  assert.deepEqual(tallAt(6, 3), [255, 0, 0]); // the quad's left column (red) is now the bottom row
  assert.deepEqual(tallAt(6, 0), [0, 0, 255]);
});
