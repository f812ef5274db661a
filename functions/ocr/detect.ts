/**
 * Text detection with PP-OCRv4's DB model: pre-processing, and the
 * post-processing that turns its probability map into boxes (threshold,
 * connected components, box score, unclip).
 * @module
 */
import type { GpuLane, InferenceSession } from "isolane";
import { Tensor } from "isolane";
import { padTo, type Region, resizeNormalize, type RgbaImage } from "./image.ts";

const mean = [0.485, 0.456, 0.406];
const std = [0.229, 0.224, 0.225];
/** PaddleOCR's defaults: longest side, pixel threshold, box threshold, unclip ratio. */
const limitSide = 960;
/** On a GPU lane the detector always sees this square canvas. */
export const gpuCanvas = limitSide;
const pixelThreshold = 0.3;
const boxThreshold = 0.6;
const unclipRatio = 1.5;

/** The detector's input size for an image: within the side limit, multiples of 32. */
export function detectorSize(width: number, height: number): { width: number; height: number } {
  const ratio = Math.min(1, limitSide / Math.max(width, height));
  const round32 = (v: number) => Math.max(32, Math.round((v * ratio) / 32) * 32);
  return { width: round32(width), height: round32(height) };
}

/** A detected text region in image pixels, with the detector's confidence. */
export interface DetectedBox extends Region {
  score: number;
}

/** Connected regions of the binarised map, each as its bounding box and mean probability. */
export function boxesFromMap(map: Float32Array, width: number, height: number): DetectedBox[] {
  const seen = new Uint8Array(width * height);
  const stack: number[] = [];
  const boxes: DetectedBox[] = [];
  for (let start = 0; start < map.length; start++) {
    if (seen[start] || map[start] <= pixelThreshold) continue;
    let minX = width, minY = height, maxX = 0, maxY = 0, sum = 0, count = 0;
    seen[start] = 1;
    stack.push(start);
    while (stack.length > 0) {
      const i = stack.pop()!;
      const x = i % width;
      const y = (i - x) / width;
      sum += map[i];
      count++;
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
      const neighbours = [
        x > 0 ? i - 1 : -1,
        x < width - 1 ? i + 1 : -1,
        y > 0 ? i - width : -1,
        y < height - 1 ? i + width : -1,
      ];
      for (const n of neighbours) {
        if (n >= 0 && !seen[n] && map[n] > pixelThreshold) {
          seen[n] = 1;
          stack.push(n);
        }
      }
    }
    const w = maxX - minX + 1;
    const h = maxY - minY + 1;
    const score = sum / count;
    if (Math.min(w, h) < 3 || score < boxThreshold) continue;
    // DB shrinks text regions when training; unclip grows them back by area * ratio / perimeter.
    const d = (w * h * unclipRatio) / (2 * (w + h));
    const x0 = Math.max(0, minX - d);
    const y0 = Math.max(0, minY - d);
    const x1 = Math.min(width, maxX + 1 + d);
    const y1 = Math.min(height, maxY + 1 + d);
    boxes.push({ x: x0, y: y0, width: x1 - x0, height: y1 - y0, score });
  }
  return boxes;
}

/** Runs the detector on an image; boxes come back in the image's pixels, in reading order. */
export async function detectText(
  session: InferenceSession,
  image: RgbaImage,
  gpu: GpuLane | null,
): Promise<DetectedBox[]> {
  const size = detectorSize(image.width, image.height);
  const region = { x: 0, y: 0, width: image.width, height: image.height };
  // On a GPU lane, pre-processing runs as isolane's kernel on the lane's stream (same result up to float32
  // rounding), and the input is letterboxed into one fixed canvas so that ONNX Runtime never re-tunes.
  const canvas = gpu ? { width: limitSide, height: limitSide } : size;
  const input = gpu
    ? padTo(gpu.resizeNormalize(image, { region, ...size, mean, std }), size, canvas)
    : resizeNormalize(image, region, { ...size, mean, std });
  const results = await session.run({
    [session.inputNames[0]]: new Tensor("float32", input, [1, 3, canvas.height, canvas.width]),
  });
  const map = results[session.outputNames[0]].data as Float32Array;
  const sx = image.width / size.width;
  const sy = image.height / size.height;
  const boxes = boxesFromMap(map, canvas.width, canvas.height).map((b) => {
    const x = b.x * sx;
    const y = b.y * sy;
    // Boxes grown by unclip may reach into the canvas's padding: keep them inside the image.
    const width = Math.min(b.width * sx, image.width - x);
    const height = Math.min(b.height * sy, image.height - y);
    return { x, y, width, height, score: b.score };
  });
  // Reading order: top to bottom, then left to right within a line.
  return boxes.sort((a, b) => (Math.abs(a.y - b.y) < Math.min(a.height, b.height) / 2 ? a.x - b.x : a.y - b.y));
}
