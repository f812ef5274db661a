/**
 * Text recognition with PP-OCRv4's CTC model: a region resized to the model's
 * height, then greedy CTC decoding over the character dictionary.
 * @module
 */
import type { GpuLane, InferenceSession } from "isolane";
import { Tensor } from "isolane";
import { padTo, type Region, resizeNormalize, type RgbaImage } from "./image.ts";

const inputHeight = 48;
/** On the CPU, recognition inputs are padded to a multiple of this width, as PaddleOCR pads a batch. */
export const widthBucket = 32;
/** On a GPU lane every input has this one width (lines are padded, longer ones squeezed): see `padTo`. */
export const gpuWidth = 960;
const maxWidth = 3200;
const half = [0.5, 0.5, 0.5];

/** Loads PaddleOCR's dictionary: index 0 is the CTC blank, then one character a line, then a space. */
export function parseDictionary(text: string): string[] {
  const chars = text.split(/\r?\n/);
  if (chars.at(-1) === "") chars.pop();
  return ["", ...chars, " "];
}

/** Greedy CTC decoding: best class per step, repeats collapsed, blanks dropped. */
export function ctcDecode(probs: Float32Array, steps: number, classes: number, dictionary: string[]) {
  let text = "";
  let sum = 0;
  let kept = 0;
  let previous = -1;
  for (let t = 0; t < steps; t++) {
    let best = 0;
    let bestP = -Infinity;
    const row = t * classes;
    for (let k = 0; k < classes; k++) {
      if (probs[row + k] > bestP) {
        bestP = probs[row + k];
        best = k;
      }
    }
    if (best !== 0 && best !== previous) {
      text += dictionary[best] ?? "";
      sum += bestP;
      kept++;
    }
    previous = best;
  }
  return { text, score: kept > 0 ? sum / kept : 0 };
}

/** Reads the text in one region of an image. */
export async function recognizeText(
  session: InferenceSession,
  image: RgbaImage,
  region: Region,
  dictionary: string[],
  gpu: GpuLane | null,
): Promise<{ text: string; score: number }> {
  const width = Math.min(
    gpu ? gpuWidth : maxWidth,
    Math.max(16, Math.ceil((inputHeight * region.width) / region.height)),
  );
  const size = { width, height: inputHeight, mean: half, std: half };
  const resized = gpu ? gpu.resizeNormalize(image, { region, ...size }) : resizeNormalize(image, region, size);
  const padded = gpu ? gpuWidth : Math.min(maxWidth, Math.ceil(width / widthBucket) * widthBucket);
  const input = padTo(resized, { width, height: inputHeight }, { width: padded, height: inputHeight });
  const results = await session.run({
    [session.inputNames[0]]: new Tensor("float32", input, [1, 3, inputHeight, padded]),
  });
  const output = results[session.outputNames[0]];
  const [, steps, classes] = output.dims;
  return ctcDecode(output.data as Float32Array, steps, classes, dictionary);
}
