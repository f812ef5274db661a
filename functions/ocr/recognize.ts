/**
 * Text recognition with PP-OCRv4's CTC model: a detected quadrilateral cut out
 * upright by a perspective warp (PaddleOCR's `get_rotate_crop_image`), resized
 * to the model's height, then greedy CTC decoding over the character
 * dictionary, whose last class is the space (PaddleOCR's `use_space_char`).
 * @module
 */
import type { GpuLane, ModelSession } from "isolane";
import { Tensor } from "isolane";
import { padTo, resizeNormalize, type RgbaImage } from "./image.ts";
import type { Quad } from "./detect.ts";
import type { OpenCv } from "./opencv.ts";

const inputHeight = 48;
/** Recognition inputs are padded to a multiple of this width. */
export const widthBucket = 32;
/** Lines per recognition run on the CPU: PaddleOCR's `rec_batch_num` default (tools/infer/utility.py). */
export const recBatchSize = 6;
/**
 * On a GPU lane lines run up to {@link gpuBatchSize} a run, padded to a width that is a multiple of 320 px and to a
 * batch of 1, 2 or 4 lines (a session per shape: the reason is given at `gpuCanvasStep` in detect.ts). This is the
 * width warmed up at load.
 */
export const gpuWidth = 960;
/**
 * Lines per recognition run on a GPU lane. A run costs about the same at 1 or 2 lines (H200: 2×48×480 5.8 ms against
 * 1×48×960 6.5 ms, docs/gpu-results.md), while every line's output, 6,625 classes a step, was read back whole: 6 lines
 * at 960 px took 21 ms. With the CTC head (mod.ts) only each step's best class and probability come back; whether
 * larger batches now pay is not measured yet.
 */
export const gpuBatchSize = 4;
/** The widths GPU lanes run lines at are multiples of this. */
const gpuWidthStep = 320;
/**
 * The widest line input, in pixels at 48 px high. PaddleOCR has no limit; a limit of 3,200 squeezed a 72-word line
 * (7,668 px wide, 44 px high) to 43% of its width and it read as "ahaaaq"; at 8,000 it reads whole.
 */
const maxWidth = 8000;
/**
 * The most columns of one CPU batch (lines times padded width): six lines of 3,200 px, the widest batch before lines
 * could be wider. Six lines of 8,000 px in one run took the isolate to 1.6 GB resident; wider lines run in smaller
 * batches instead.
 */
const maxBatchColumns = recBatchSize * 3200;
const half = [0.5, 0.5, 0.5];

/** Loads PaddleOCR's dictionary: index 0 is the CTC blank, then one character a line, then a space. */
export function parseDictionary(text: string): string[] {
  const chars = text.split(/\r?\n/);
  if (chars.at(-1) === "") chars.pop();
  return ["", ...chars, " "];
}

/**
 * A step's best probability above this cannot be beaten by another class when the step's probabilities sum to 1
 * (within float32 rounding): the rest sum to less than one half.
 */
const certain = 0.5 + 1e-3;

/**
 * Greedy CTC decoding: best class per step, repeats collapsed, blanks dropped. The recogniser ends in a softmax, so
 * a step's scan stops at the first class above one half (most steps are the blank, class 0, at over 0.9): the same
 * answer as a full scan, checked on the first step, whose probabilities must sum to 1, or every step is scanned whole.
 */
export function ctcDecode(probs: Float32Array, steps: number, classes: number, dictionary: string[]) {
  let total = 0;
  for (let k = 0; k < classes && steps > 0; k++) total += probs[k];
  const stopAbove = Math.abs(total - 1) < 1e-3 ? certain : Infinity;
  let text = "";
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let t = 0; t < steps; t++) {
    const row = t * classes;
    const end = row + classes;
    let bestAt = row;
    let bestP = probs[row];
    for (let i = row + 1; i < end && bestP <= stopAbove; i++) {
      const p = probs[i];
      if (p > bestP) {
        bestP = p;
        bestAt = i;
      }
    }
    const best = bestAt - row;
    if (best !== 0 && best !== previous) {
      text += dictionary[best] ?? "";
      sum += bestP;
      kept++;
    }
    previous = best;
  }
  return { text, score: kept > 0 ? sum / kept : 0 };
}

/** The recogniser's output of each step's best class (ONNX `ArgMax` over the classes, int64), when declared. */
export const bestClassOutput = "classes";
/** The recogniser's output of each step's best probability (ONNX `ReduceMax` over the classes), when declared. */
export const bestProbOutput = "probs";

/**
 * Greedy CTC decoding from each step's best class and its probability (the recogniser's CTC head, {@link
 * bestClassOutput} and {@link bestProbOutput}): repeats collapsed, blanks dropped; the score is the mean probability
 * of the characters kept. The same answer as {@link ctcDecode} over the whole output, whose arg-max (the first best
 * class of a step) ONNX's `ArgMax` gives too.
 */
export function ctcDecodeBest(classes: BigInt64Array, probs: Float32Array, dictionary: string[]) {
  let text = "";
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let t = 0; t < classes.length; t++) {
    const best = Number(classes[t]);
    if (best !== 0 && best !== previous) {
      text += dictionary[best] ?? "";
      sum += probs[t];
      kept++;
    }
    previous = best;
  }
  return { text, score: kept > 0 ? sum / kept : 0 };
}

/**
 * The size of `quad`'s crop (before a vertical crop's quarter turn): as wide as its longer top or bottom edge and as
 * high as its longer side edge, scaled down so that the recogniser's 48 px is reached straight (a taller line is
 * warped to that height, not warped whole and then shrunk: the warp's cost goes with its output's pixels); vertical
 * when at least 1.5 times as high as wide.
 */
function cropSize(quad: Quad): { width: number; height: number; vertical: boolean } {
  const [p0, p1, p2, p3] = quad;
  const dist = (a: readonly number[], b: readonly number[]) => Math.hypot(a[0] - b[0], a[1] - b[1]);
  const fullWidth = Math.max(1, Math.round(Math.max(dist(p0, p1), dist(p2, p3))));
  const fullHeight = Math.max(1, Math.round(Math.max(dist(p0, p3), dist(p1, p2))));
  const vertical = fullHeight / fullWidth >= 1.5;
  const scale = Math.min(1, inputHeight / (vertical ? fullWidth : fullHeight));
  return {
    width: Math.max(1, Math.round(fullWidth * scale)),
    height: Math.max(1, Math.round(fullHeight * scale)),
    vertical,
  };
}

/**
 * Cuts a quadrilateral (clockwise from top-left) out of `image` as an upright
 * image: a perspective warp onto a rectangle as wide as its longer top or
 * bottom edge and as high as its longer side edge, bicubic, edges replicated.
 * A crop at least 1.5 times as high as wide is turned 90° counter-clockwise,
 * as PaddleOCR does for vertical text. A crop that would end up higher than the
 * recogniser's 48 px is warped straight to 48 px high (its width in proportion)
 * instead of being warped whole and shrunk afterwards: on a 2,000-px PNG with
 * 89-px lines that cut the crops from 6.2 to 1.9 ms. Only the quadrilateral's bounding box
 * (and two pixels around it, for the bicubic kernel) is copied into OpenCV.
 */
export function cropQuad(cv: OpenCv, image: RgbaImage, quad: Quad): RgbaImage {
  const margin = 2;
  const xs = quad.map((p) => p[0]);
  const ys = quad.map((p) => p[1]);
  const x0 = Math.max(0, Math.floor(Math.min(...xs)) - margin);
  const y0 = Math.max(0, Math.floor(Math.min(...ys)) - margin);
  const x1 = Math.min(image.width, Math.ceil(Math.max(...xs)) + margin + 1);
  const y1 = Math.min(image.height, Math.ceil(Math.max(...ys)) + margin + 1);
  const { width, height, vertical } = cropSize(quad);
  // RGB, not RGBA: OpenCV's bicubic warp takes a fifth less time on three channels, and gives the same values.
  const source = new cv.Mat(y1 - y0, x1 - x0, cv.CV_8UC3);
  // `Mat.data` is a getter that makes a new view on each read: read it once.
  const rgb = source.data;
  const rgba = image.data;
  let o = 0;
  for (let y = y0; y < y1; y++) {
    for (let i = (y * image.width + x0) * 4, end = i + (x1 - x0) * 4; i < end; i += 4) {
      rgb[o++] = rgba[i];
      rgb[o++] = rgba[i + 1];
      rgb[o++] = rgba[i + 2];
    }
  }
  const from = cv.matFromArray(4, 1, cv.CV_32FC2, quad.flatMap(([x, y]) => [x - x0, y - y0]));
  const to = cv.matFromArray(4, 1, cv.CV_32FC2, [0, 0, width, 0, width, height, 0, height]);
  const transform = cv.getPerspectiveTransform(from, to);
  const crop = new cv.Mat();
  try {
    cv.warpPerspective(
      source,
      crop,
      transform,
      new cv.Size(width, height),
      cv.INTER_CUBIC,
      cv.BORDER_REPLICATE,
      new cv.Scalar(),
    );
    if (vertical) cv.rotate(crop, crop, cv.ROTATE_90_COUNTERCLOCKWISE);
    const pixels = crop.cols * crop.rows;
    const warped = crop.data;
    const data = new Uint8Array(pixels * 4);
    for (let p = 0, i = 0; p < pixels; p++, i += 3) {
      data[p * 4] = warped[i];
      data[p * 4 + 1] = warped[i + 1];
      data[p * 4 + 2] = warped[i + 2];
      data[p * 4 + 3] = 255;
    }
    return { width: crop.cols, height: crop.rows, data };
  } finally {
    crop.delete();
    transform.delete();
    to.delete();
    from.delete();
    source.delete();
  }
}

/**
 * A text line for a GPU lane: where {@link cropQuad}'s crop, turned for vertical text and resized to the recogniser's
 * 48 px (`resizeNormalize`'s half-pixel centres), reads `image`, as one 3×3 transform from the line's pixels to the
 * image's, for isolane's warp kernel (`gpu.warpPerspectiveToDevice`): the crop is never cut on the CPU and the line
 * never crosses to the host. One bicubic sampling instead of the CPU path's two (the warp, then the resize): the same
 * pixels where the crop is warped straight to 48 px high, a smoother upscale for lines below that.
 */
export interface GpuLine {
  image: RgbaImage;
  /** The line's width at 48 px high. */
  width: number;
  /** Line pixels (x, y, 1) → image pixels, row by row. */
  transform: number[];
}

/** {@link GpuLine} of `quad` (clockwise from top-left) in `image`: the geometry of {@link cropQuad}. */
export function gpuLine(cv: OpenCv, image: RgbaImage, quad: Quad): GpuLine {
  const { width, height, vertical } = cropSize(quad);
  // Crop pixels → image pixels (OpenCV's inverse map of the warp onto the crop).
  const from = cv.matFromArray(4, 1, cv.CV_32FC2, [0, 0, width, 0, width, height, 0, height]);
  const to = cv.matFromArray(4, 1, cv.CV_32FC2, quad.flat());
  const m = cv.getPerspectiveTransform(from, to);
  const crop = Array.from(m.data64F as Float64Array);
  m.delete();
  to.delete();
  from.delete();
  // The turned crop's pixels → the crop's (`cv.ROTATE_90_COUNTERCLOCKWISE`: x = width - 1 - y', y = x').
  const [turnedWidth, turnedHeight] = vertical ? [height, width] : [width, height];
  const turn = vertical ? [0, -1, width - 1, 1, 0, 0, 0, 0, 1] : [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const lineWidth = Math.min(maxWidth, Math.max(16, Math.ceil((inputHeight * turnedWidth) / turnedHeight)));
  // The line's pixels → the turned crop's (the resize, half-pixel centres).
  const sx = turnedWidth / lineWidth;
  const sy = turnedHeight / inputHeight;
  const resize = [sx, 0, 0.5 * sx - 0.5, 0, sy, 0.5 * sy - 0.5, 0, 0, 1];
  return { image, width: lineWidth, transform: times(crop, times(turn, resize)) };
}

/**
 * Lines given as transforms ({@link gpuLine}) warped on the lane's device into one batch `rows` × 3 × 48 × `width`,
 * normalised as the recogniser's input (and the angle classifier's), for a run to read there; rows past the lines and
 * columns past each line's width are zeros. `undefined` off a GPU lane, or when a line is a CPU image.
 */
export function linesOnDevice(
  gpu: GpuLane | null,
  lines: readonly (RgbaImage | GpuLine)[],
  width: number,
  rows: number,
): ReturnType<GpuLane["warpPerspectiveToDevice"]> | undefined {
  if (!gpu || lines.length === 0 || !lines.every((line) => "transform" in line)) return undefined;
  return gpu.warpPerspectiveToDevice((lines[0] as GpuLine).image, {
    crops: (lines as GpuLine[]).map(({ transform, width }) => ({ transform, width })),
    width,
    height: inputHeight,
    rows,
    mean: half,
    std: half,
  });
}

/** The product of two 3×3 matrices, row by row. */
export function times(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(9);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) out[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
  }
  return out;
}

/**
 * Reads the text of upright line images (see `cropQuad`), in the order of
 * `images`. On the CPU as PaddleOCR's `TextRecognizer` does: lines sorted by
 * aspect ratio, {@link recBatchSize} a run (fewer for lines wider than 3,200 px), each batch as wide as its widest
 * line (rounded up to {@link widthBucket}) with the narrower lines padded with
 * zeros. On a GPU lane up to {@link gpuBatchSize} lines a run at a width of a
 * multiple of 320 px, resized by isolane's kernel on the lane's stream.
 */
export async function recognizeLines(
  session: ModelSession,
  images: readonly (RgbaImage | GpuLine)[],
  dictionary: string[],
  gpu: GpuLane | null,
): Promise<{ text: string; score: number }[]> {
  const widthOf = (image: RgbaImage | GpuLine) =>
    "transform" in image
      ? image.width
      : Math.min(maxWidth, Math.max(16, Math.ceil((inputHeight * image.width) / image.height)));
  const gpuPadded = (width: number) => Math.min(maxWidth, Math.ceil(width / gpuWidthStep) * gpuWidthStep);
  const batchSize = gpu ? gpuBatchSize : recBatchSize;
  const order = images.map((_, i) => i).sort((a, b) => widthOf(images[a]) - widthOf(images[b]));
  const answers: { text: string; score: number }[] = new Array(images.length);
  // Lines by width, so the last line of a batch is its widest.
  const batches: number[][] = [];
  for (const index of order) {
    const batch = batches.at(-1);
    const columns = batch ? (batch.length + 1) * Math.ceil(widthOf(images[index]) / widthBucket) * widthBucket : 0;
    if (batch && batch.length < batchSize && columns <= maxBatchColumns) batch.push(index);
    else batches.push([index]);
  }
  for (const batch of batches) {
    const widest = Math.max(...batch.map((i) => widthOf(images[i])));
    const padded = gpu ? gpuPadded(widest) : Math.min(maxWidth, Math.ceil(widest / widthBucket) * widthBucket);
    const plane = 3 * inputHeight * padded;
    // GPU lanes: a batch of 3 runs as 4 (a zero image in the last row), so that there are three batch sizes.
    const rows = gpu ? (batch.length <= 2 ? batch.length : gpuBatchSize) : batch.length;
    const lines = batch.map((index) => images[index]);
    using onDevice = linesOnDevice(gpu, lines, padded, rows);
    const input = new Float32Array(onDevice ? 0 : rows * plane);
    if (!onDevice) {
      batch.forEach((index, slot) => {
        const image = images[index];
        if ("transform" in image) throw new TypeError("a GpuLine needs a GPU lane");
        const width = widthOf(image);
        const region = { x: 0, y: 0, width: image.width, height: image.height };
        const size = { width, height: inputHeight, mean: half, std: half };
        if (gpu) {
          const resized = gpu.resizeNormalize(image, { region, ...size });
          input.set(
            padTo(resized, { width, height: inputHeight }, { width: padded, height: inputHeight }),
            slot * plane,
          );
        } else {
          // Straight into the batch, whose padding stays zero.
          const target = { tensor: input, offset: slot * plane, rowStride: padded, planeStride: inputHeight * padded };
          resizeNormalize(image, region, size, target);
        }
      });
    }
    const results = await session.run({
      [session.inputNames[0]]: onDevice ?? new Tensor("float32", input, [rows, 3, inputHeight, padded]),
    });
    const best = results[bestClassOutput];
    if (best) {
      // The model declared with its CTC head (mod.ts): each step's best class and its probability.
      const steps = best.dims[1];
      const classes = best.data as BigInt64Array;
      const probs = results[bestProbOutput].data as Float32Array;
      batch.forEach((index, slot) => {
        const at = slot * steps;
        answers[index] = ctcDecodeBest(classes.subarray(at, at + steps), probs.subarray(at, at + steps), dictionary);
      });
      continue;
    }
    const output = results[session.outputNames[0]];
    const [, steps, classes] = output.dims;
    const probs = output.data as Float32Array;
    batch.forEach((index, slot) => {
      const rows = probs.subarray(slot * steps * classes, (slot + 1) * steps * classes);
      answers[index] = ctcDecode(rows, steps, classes, dictionary);
    });
  }
  return answers;
}
