import assert from "node:assert/strict";
import { cropQuad, ctcDecode, ctcDecodeBest, parseDictionary } from "./recognize.ts";
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

Deno.test("ctcDecodeBest reads each step's best class and probability as ctcDecode reads the whole rows", () => {
  const dictionary = ["", "a", "b", " "];
  const best = [1, 1, 0, 1, 2, 2, 3, 0];
  const p = [0.9, 0.8, 0.99, 0.7, 0.6, 0.95, 0.55, 0.97];
  const rows = new Float32Array(best.length * 4);
  best.forEach((k, t) => {
    rows.fill((1 - p[t]) / 3, t * 4, t * 4 + 4);
    rows[t * 4 + k] = p[t];
  });
  const head = ctcDecodeBest(BigInt64Array.from(best, BigInt), Float32Array.from(p), dictionary);
  assert.equal(head.text, "aab ");
  assert.deepEqual(head, ctcDecode(rows, best.length, 4, dictionary));
  assert.ok(
    Math.abs(head.score - (Math.fround(0.9) + Math.fround(0.7) + Math.fround(0.6) + Math.fround(0.55)) / 4) < 1e-7,
  );
});

Deno.test("ctcDecode stops a step's scan only where its probabilities sum to 1", () => {
  const dictionary = ["", "a", "b", "c"];
  // Softmax rows: the blank, then "b" at 0.7 (the rest can only sum to 0.3).
  const softmax = Float32Array.from([0.97, 0.01, 0.01, 0.01, 0.1, 0.1, 0.7, 0.1]);
  assert.deepEqual(ctcDecode(softmax, 2, 4, dictionary), { text: "b", score: softmax[6] });
  // Scores that are not probabilities (logits): "a" passes one half, yet "c" is larger and must win.
  const logits = Float32Array.from([0.2, 0.6, 0.1, 2.0, 3.0, 0.1, 0.1, 0.1]);
  assert.deepEqual(ctcDecode(logits, 2, 4, dictionary), { text: "c", score: 2 });
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

Deno.test("cropQuad warps a line taller than the recogniser's 48 px straight to 48 px, upright or turned", async () => {
  const cv = await loadOpenCv();
  // 300 x 300: white above y = 150, black below.
  const size = 300;
  const data = new Uint8Array(size * size * 4);
  for (let i = 0; i < size * size; i++) data.set(i < (size * size) / 2 ? [255, 255, 255, 255] : [0, 0, 0, 255], i * 4);
  const image = { width: size, height: size, data };
  const wide = cropQuad(cv, image, [[10, 102], [210, 102], [210, 198], [10, 198]]);
  assert.deepEqual([wide.width, wide.height], [100, 48]);
  const grey = (crop: typeof wide, x: number, y: number) => crop.data[(y * crop.width + x) * 4];
  assert.equal(grey(wide, 50, 5), 255); // the quad's upper half is white
  assert.equal(grey(wide, 50, 42), 0);
  // 60 x 200, turned: its width becomes the height, 60 px, so it is warped to 0.8 of its size.
  const tall = cropQuad(cv, image, [[100, 50], [160, 50], [160, 250], [100, 250]]);
  assert.deepEqual([tall.width, tall.height], [160, 48]);
  assert.equal(grey(tall, 10, 24), 255); // the quad's top (white) ends on the left
  assert.equal(grey(tall, 150, 24), 0);
  // 20 px high: kept as it is.
  const small = cropQuad(cv, image, [[10, 140], [110, 140], [110, 160], [10, 160]]);
  assert.deepEqual([small.width, small.height], [100, 20]);
});
