/**
 * Text direction with PP-OCR's angle classifier (`ch_ppocr_mobile_v2.0_cls`), as PaddleOCR's `TextClassifier` does it
 * with `use_angle_cls=True` (tools/infer/predict_cls.py): each line resized to 48 px high, normalised as the
 * recogniser's input, padded to 192 px with zeros; the model answers the probability of the labels `0` and `180`, and
 * a line whose `180` is above {@link flipAbove} is turned half a turn before it is read. With it a line upside down,
 * or vertical text that reads bottom to top (turned a quarter turn the wrong way for the recogniser by the crop),
 * reads as upright text does.
 *
 * One difference: PaddleOCR squeezes a line wider than 192 px (at 48 px high) into 192 px. A line of 4,512 px, 36
 * words, squeezed 23 times, was judged upside down with a probability above 0.9 and then read as noise; so a wider line
 * is judged by its middle 192 px at its own scale (several words of it), which is what the classifier was trained on.
 * @module
 */
import type { GpuLane, ModelSession } from "isolane";
import { Tensor } from "isolane";
import { resizeNormalize, type RgbaImage } from "./image.ts";
import { type GpuLine, linesOnDevice, times } from "./recognize.ts";

const inputHeight = 48;
/** The classifier's input width: PaddleOCR's `cls_image_shape` "3, 48, 192". */
const inputWidth = 192;
/** A line is turned when the classifier gives `180` more than this: PaddleOCR's `cls_thresh` default. */
export const flipAbove = 0.9;
/** Lines per run on the CPU: PaddleOCR's `cls_batch_num` default. */
const cpuBatchSize = 6;
/** Lines per run on a GPU lane, padded to 1, 2 or 4 (a session per input shape, as the recogniser's). */
const gpuBatchSize = 4;
const half = [0.5, 0.5, 0.5];

/** The classifier's width for a line `width` × `height`: its width at 48 px high, at most 192. */
function clsWidth(width: number, height: number): number {
  return Math.max(1, Math.min(inputWidth, Math.ceil((inputHeight * width) / height)));
}

/** What the classifier sees of a CPU line: all of it, or its middle 192 px at 48 px high, in the line's pixels. */
function window(line: RgbaImage): { x: number; y: number; width: number; height: number } {
  const width = Math.min(line.width, Math.round((inputWidth * line.height) / inputHeight));
  return { x: Math.floor((line.width - width) / 2), y: 0, width, height: line.height };
}

/**
 * Which lines are upside down: `true` where the classifier gives `180` a probability above {@link flipAbove}. Lines
 * are CPU images (`cropQuad`) or, on a GPU lane, transforms (`gpuLine`), which the lane's warp kernel samples at the
 * classifier's size on the device.
 */
export async function upsideDown(
  session: ModelSession,
  lines: readonly (RgbaImage | GpuLine)[],
  gpu: GpuLane | null,
): Promise<boolean[]> {
  const flips: boolean[] = new Array(lines.length).fill(false);
  const batchSize = gpu ? gpuBatchSize : cpuBatchSize;
  const plane = 3 * inputHeight * inputWidth;
  for (let start = 0; start < lines.length; start += batchSize) {
    const batch = lines.slice(start, start + batchSize);
    const rows = gpu ? (batch.length <= 2 ? batch.length : gpuBatchSize) : batch.length;
    // The line itself (48 px high already), or its middle 192 px.
    const windows = batch.map((line) =>
      "transform" in line
        ? {
          ...line,
          transform: times(line.transform, [
            1,
            0,
            Math.max(0, Math.floor((line.width - inputWidth) / 2)),
            0,
            1,
            0,
            0,
            0,
            1,
          ]),
          width: Math.min(line.width, inputWidth),
        }
        : line
    );
    using onDevice = linesOnDevice(gpu, windows, inputWidth, rows);
    const input = new Float32Array(onDevice ? 0 : rows * plane);
    if (!onDevice) {
      batch.forEach((line, slot) => {
        if ("transform" in line) throw new TypeError("a GpuLine needs a GPU lane");
        const region = window(line);
        const size = { width: clsWidth(region.width, region.height), height: inputHeight, mean: half, std: half };
        // Straight into the batch, whose padding stays zero.
        const target = { tensor: input, offset: slot * plane, rowStride: inputWidth, planeStride: plane / 3 };
        resizeNormalize(line, region, size, target);
      });
    }
    const results = await session.run({
      [session.inputNames[0]]: onDevice ?? new Tensor("float32", input, [rows, 3, inputHeight, inputWidth]),
    });
    const probs = results[session.outputNames[0]].data as Float32Array;
    batch.forEach((_, slot) => (flips[start + slot] = probs[slot * 2 + 1] > flipAbove));
  }
  return flips;
}

/** `image` turned half a turn (a new image). */
export function turnHalf(image: RgbaImage): RgbaImage {
  const { data } = image;
  const turned = new Uint8Array(data.length);
  for (let i = 0, j = data.length - 4; j >= 0; i += 4, j -= 4) {
    turned[i] = data[j];
    turned[i + 1] = data[j + 1];
    turned[i + 2] = data[j + 2];
    turned[i + 3] = data[j + 3];
  }
  return { width: image.width, height: image.height, data: turned };
}

/** `line` turned half a turn: its pixel (x, y) is the old line's (width - 1 - x, 47 - y). */
export function turnLineHalf(line: GpuLine): GpuLine {
  return { ...line, transform: times(line.transform, [-1, 0, line.width - 1, 0, -1, inputHeight - 1, 0, 0, 1]) };
}
