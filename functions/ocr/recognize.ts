/**
 * Text recognition with PP-OCRv4's CTC model: a region resized to the model's
 * height, then greedy CTC decoding over the character dictionary.
 * @module
 */
import type { GpuLane, InferenceSession } from "isolane";
import { Tensor } from "isolane";
import { type Region, resizeNormalize, type RgbaImage } from "./image.ts";

const inputHeight = 48;
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
  const width = Math.min(maxWidth, Math.max(16, Math.ceil((inputHeight * region.width) / region.height)));
  const size = { width, height: inputHeight, mean: half, std: half };
  const input = gpu ? gpu.resizeNormalize(image, { region, ...size }) : resizeNormalize(image, region, size);
  const results = await session.run({
    [session.inputNames[0]]: new Tensor("float32", input, [1, 3, inputHeight, width]),
  });
  const output = results[session.outputNames[0]];
  const [, steps, classes] = output.dims;
  return ctcDecode(output.data as Float32Array, steps, classes, dictionary);
}
