/**
 * Text detection with PP-OCRv4's DB model: pre-processing, and the
 * post-processing of PaddleOCR's `DBPostProcess`: contours of the binarised
 * probability map, a minimum-area rectangle per contour, its mean probability
 * (box score), the polygon unclip (Clipper offset), and the minimum-area
 * rectangle of the unclipped polygon. Boxes are rotated quadrilaterals.
 * @module
 */
import type { GpuLane, ModelSession } from "isolane";
import { Tensor } from "isolane";
import ClipperLib from "clipper-lib";
import { resizeNormalize, type RgbaImage } from "./image.ts";
import type { OpenCv } from "./opencv.ts";

const mean = [0.485, 0.456, 0.406];
const std = [0.229, 0.224, 0.225];
/**
 * PaddleOCR's defaults: longest side, pixel threshold, box threshold, smallest side, most contours; the
 * unclip ratio is 2.0 where PaddleOCR's is 1.5: with 1.5 the crop hugs the glyphs and PP-OCRv4's
 * recogniser often gives the gap between words to the CTC blank rather than the space (its space class
 * peaked at 0.12 to 0.31 in word gaps of a JPEG); with 2.0 the space wins (0.91 to 1.00), measured on
 * the rendered lines of tests/ocr_test.ts.
 */
const limitSide = 960;
/**
 * On a GPU lane the detector sees a canvas of a few sizes (the image letterboxed into it): each side of its detector
 * size rounded up to a multiple of this, up to 960 px. Measured on the H200 (`scripts/ocr_gpu_probe.ts`,
 * docs/gpu-results.md): every change of input shape costs a CUDA session 60–100 ms in its convolutions, even back to a
 * shape it ran a moment before, whatever `cudnn_conv_algo_search` says. So the function asks for a session per shape
 * (`shapeSessions`), and the canvases are few: nine below 960 px. A side past 960 px (a long line, see
 * `detectorSize`) keeps its own size.
 */
export const gpuCanvasStep = 320;
/** The canvas GPU lanes warm up at load: the one photos and scans of up to 960 px a side get. */
export const gpuCanvas = limitSide;

/** The canvas a GPU lane runs the detector at, for a detector size (see {@link gpuCanvasStep}). */
export function gpuCanvasFor(size: { width: number; height: number }): { width: number; height: number } {
  const side = (v: number) => v > limitSide ? v : Math.ceil(v / gpuCanvasStep) * gpuCanvasStep;
  return { width: side(size.width), height: side(size.height) };
}
const pixelThreshold = 0.3;
const boxThreshold = 0.6;
const unclipRatio = 2.0;
const minSize = 3;
const maxCandidates = 1000;

/** A point in pixels. */
export type Point = [number, number];
/** Four corners, clockwise from the top-left. */
export type Quad = [Point, Point, Point, Point];

/** A detected text region: its four corners in image pixels, with the detector's confidence. */
export interface DetectedBox {
  quad: Quad;
  score: number;
}

/**
 * The detector's shorter side is not shrunk below this (or below the image's own): PaddleOCR's longest-side limit
 * alone brought a 2,643 × 101 line down to 960 × 32, its glyphs to 12 px, and the detector then found two of its
 * twenty words (tests/ocr_test.ts, "reads a line wider than 960 px").
 */
const minShortSide = 256;
/** The most pixels the detector's input may have (four times the side limit's square). */
const maxDetectorPixels = 4 * limitSide * limitSide;

/**
 * The detector's input size for an image, in multiples of 32: the longest side brought within 960 px (PaddleOCR's
 * `det_limit_side_len`), unless that would shrink the shorter side below 256 px (a long line's glyphs would become
 * too small to find); then the shorter side is kept at up to 256 px, within 3.7 M pixels in all (a side rounded
 * up to 32 px shortens the other).
 */
export function detectorSize(width: number, height: number): { width: number; height: number } {
  const bySide = limitSide / Math.max(width, height);
  const keepShort = Math.min(1, minShortSide / Math.min(width, height));
  const byArea = Math.sqrt(maxDetectorPixels / (width * height));
  const ratio = Math.min(1, Math.max(bySide, keepShort), byArea);
  const round32 = (v: number) => Math.max(32, Math.round((v * ratio) / 32) * 32);
  let [w, h] = [round32(width), round32(height)];
  // A side rounded up to 32 px (a line a few pixels high) or rounded to the nearer multiple can take the area past
  // the limit: 200000 x 10 gave 200000 x 32, 6.4 M pixels, past the isolate's memory. Shorten the longer side.
  if (w * h > maxDetectorPixels) {
    if (w >= h) w = Math.max(32, Math.floor(maxDetectorPixels / h / 32) * 32);
    else h = Math.max(32, Math.floor(maxDetectorPixels / w / 32) * 32);
  }
  return { width: w, height: h };
}

/**
 * Orders four corners clockwise from the top-left, as PaddleOCR's `get_mini_boxes`
 * does: the two leftmost points are the left side (upper one first), the two
 * rightmost the right side.
 */
export function orderCorners(points: readonly Point[]): Quad {
  const byX = [...points].sort((a, b) => a[0] - b[0]);
  const [l0, l1, r0, r1] = byX;
  const [topLeft, bottomLeft] = l0[1] <= l1[1] ? [l0, l1] : [l1, l0];
  const [topRight, bottomRight] = r0[1] <= r1[1] ? [r0, r1] : [r1, r0];
  return [topLeft, topRight, bottomRight, bottomLeft];
}

/** The minimum-area rectangle of `points`, as ordered corners, and its shorter side. */
function miniBox(cv: OpenCv, points: readonly Point[]): { quad: Quad; side: number } {
  const mat = cv.matFromArray(points.length, 1, cv.CV_32FC2, points.flat());
  try {
    const rect = cv.minAreaRect(mat);
    const corners = cv.RotatedRect.points(rect) as unknown as { x: number; y: number }[];
    return {
      quad: orderCorners(corners.map((p) => [p.x, p.y] as Point)),
      side: Math.min(rect.size.width, rect.size.height),
    };
  } finally {
    mat.delete();
  }
}

/** Mean probability inside a quadrilateral (PaddleOCR's `box_score_fast`). */
function boxScore(cv: OpenCv, map: Float32Array, width: number, height: number, quad: Quad): number {
  const xs = quad.map((p) => p[0]);
  const ys = quad.map((p) => p[1]);
  const x0 = Math.max(0, Math.min(width - 1, Math.floor(Math.min(...xs))));
  const x1 = Math.max(0, Math.min(width - 1, Math.ceil(Math.max(...xs))));
  const y0 = Math.max(0, Math.min(height - 1, Math.floor(Math.min(...ys))));
  const y1 = Math.max(0, Math.min(height - 1, Math.ceil(Math.max(...ys))));
  const w = x1 - x0 + 1;
  const h = y1 - y0 + 1;
  const mask = cv.Mat.zeros(h, w, cv.CV_8UC1);
  const polygon = cv.matFromArray(
    4,
    1,
    cv.CV_32SC2,
    quad.flatMap(([x, y]) => [Math.round(x - x0), Math.round(y - y0)]),
  );
  const polygons = new cv.MatVector();
  try {
    polygons.push_back(polygon);
    cv.fillPoly(mask, polygons, new cv.Scalar(1));
    let sum = 0;
    let count = 0;
    // `Mat.data` is a getter that makes a new view on each read: read it once.
    const inside = mask.data;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (inside[y * w + x]) {
          sum += map[(y0 + y) * width + x0 + x];
          count++;
        }
      }
    }
    return count > 0 ? sum / count : 0;
  } finally {
    polygons.delete();
    polygon.delete();
    mask.delete();
  }
}

/**
 * Grows a quadrilateral back by `area * ratio / perimeter` with Clipper's round
 * offset: DB shrinks text regions in training, so the map's regions are too tight.
 */
export function unclip(quad: Quad, ratio = unclipRatio): Point[] {
  let area = 0;
  let perimeter = 0;
  for (let i = 0; i < 4; i++) {
    const [x0, y0] = quad[i];
    const [x1, y1] = quad[(i + 1) % 4];
    area += x0 * y1 - x1 * y0;
    perimeter += Math.hypot(x1 - x0, y1 - y0);
  }
  const distance = (Math.abs(area) / 2) * ratio / perimeter;
  // Clipper works on integers: scale up so sub-pixel corners survive.
  const scale = 100;
  const offset = new ClipperLib.ClipperOffset();
  offset.AddPath(
    quad.map(([x, y]) => ({ X: Math.round(x * scale), Y: Math.round(y * scale) })),
    ClipperLib.JoinType.jtRound,
    ClipperLib.EndType.etClosedPolygon,
  );
  const solution: { X: number; Y: number }[][] = [];
  offset.Execute(solution, distance * scale);
  return (solution[0] ?? []).map((p) => [p.X / scale, p.Y / scale] as Point);
}

/** Text regions of a probability map (`width` x `height`), in the map's pixels. */
export function boxesFromMap(cv: OpenCv, map: Float32Array, width: number, height: number): DetectedBox[] {
  const bitmap = new cv.Mat(height, width, cv.CV_8UC1);
  // `Mat.data` is a getter that makes a new view on each read: read it once.
  const bits = bitmap.data;
  // The map may be longer (a GPU lane's canvas below the image): only its first `height` rows are the image's.
  for (let i = 0; i < width * height; i++) bits[i] = map[i] > pixelThreshold ? 255 : 0;
  const contours = new cv.MatVector();
  const hierarchy = new cv.Mat();
  const boxes: DetectedBox[] = [];
  try {
    cv.findContours(bitmap, contours, hierarchy, cv.RETR_LIST, cv.CHAIN_APPROX_SIMPLE);
    for (let i = 0; i < Math.min(contours.size(), maxCandidates); i++) {
      const contour = contours.get(i);
      // `data32S` is a getter too.
      const xy = contour.data32S;
      const points: Point[] = [];
      for (let j = 0; j < xy.length; j += 2) points.push([xy[j], xy[j + 1]]);
      contour.delete();
      if (points.length < 2) continue;
      const { quad, side } = miniBox(cv, points);
      if (side < minSize) continue;
      const score = boxScore(cv, map, width, height, quad);
      if (score < boxThreshold) continue;
      const grown = unclip(quad);
      if (grown.length < 3) continue;
      const mini = miniBox(cv, grown);
      if (mini.side < minSize + 2) continue;
      boxes.push({ quad: mini.quad, score });
    }
  } finally {
    hierarchy.delete();
    contours.delete();
    bitmap.delete();
  }
  return boxes;
}

/**
 * Reading order, as PaddleOCR's `sorted_boxes`: by the top-left corner, top to
 * bottom, and left to right among boxes whose tops are within half a line.
 */
export function readingOrder(boxes: DetectedBox[]): DetectedBox[] {
  const height = (b: DetectedBox) => Math.hypot(b.quad[3][0] - b.quad[0][0], b.quad[3][1] - b.quad[0][1]);
  const sorted = [...boxes].sort((a, b) => a.quad[0][1] - b.quad[0][1] || a.quad[0][0] - b.quad[0][0]);
  for (let i = 0; i < sorted.length - 1; i++) {
    for (let j = i; j >= 0; j--) {
      const [a, b] = [sorted[j], sorted[j + 1]];
      const sameLine = Math.abs(b.quad[0][1] - a.quad[0][1]) < Math.min(height(a), height(b)) / 2;
      if (sameLine && b.quad[0][0] < a.quad[0][0]) [sorted[j], sorted[j + 1]] = [b, a];
      else break;
    }
  }
  return sorted;
}

/** Runs the detector on an image; boxes come back in the image's pixels, in reading order. */
export async function detectText(
  session: ModelSession,
  cv: OpenCv,
  image: RgbaImage,
  gpu: GpuLane | null,
): Promise<DetectedBox[]> {
  const size = detectorSize(image.width, image.height);
  const region = { x: 0, y: 0, width: image.width, height: image.height };
  // On a GPU lane, pre-processing runs as isolane's kernel on the lane's stream (same result up to float32
  // rounding), and the input is letterboxed into one of a few canvases (see `gpuCanvasStep`).
  const canvas = gpu ? gpuCanvasFor(size) : size;
  // On a GPU lane the tensor stays on the device from the kernel to the run: only the RGBA image crosses.
  using onDevice = gpu?.resizeNormalizeToDevice(image, { region, ...size, mean, std, canvas });
  const input = onDevice ??
    new Tensor("float32", resizeNormalize(image, region, { ...size, mean, std }), [1, 3, size.height, size.width]);
  const results = await session.run({ [session.inputNames[0]]: input });
  const output = results[session.outputNames[0]].data as Float32Array;
  // Only the image's part of the canvas can hold text: post-process that.
  const map = canvas.width === size.width ? output : new Float32Array(size.width * size.height);
  if (map !== output) {
    for (let y = 0; y < size.height; y++) {
      map.set(output.subarray(y * canvas.width, y * canvas.width + size.width), y * size.width);
    }
  }
  const sx = image.width / size.width;
  const sy = image.height / size.height;
  // Boxes grown by unclip may reach past the edge: keep them inside the image.
  const clamp = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  const boxes = boxesFromMap(cv, map, size.width, size.height).map((b) => ({
    quad: b.quad.map(([x, y]) => [clamp(x * sx, image.width - 1), clamp(y * sy, image.height - 1)]) as Quad,
    score: b.score,
  })).filter((b) => {
    const [p0, p1, , p3] = b.quad;
    return Math.hypot(p1[0] - p0[0], p1[1] - p0[1]) > 3 && Math.hypot(p3[0] - p0[0], p3[1] - p0[1]) > 3;
  });
  return readingOrder(boxes);
}
