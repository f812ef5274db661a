/**
 * `functions/ocr` of this tree against another's (an older commit, say), in one process on CPU sessions: first
 * whether both read the same text with box corners within 3 px on a corpus of rendered images (sizes from 20 to
 * 120 pt, tilts, JPEG on a gradient, transparent, long lines), then the CPU-side time of each stage, the two trees
 * taken in turn on the same image and the same sessions, so that a busy machine slows both alike. The models' runs
 * are timed apart and left out of `det.cpu` and `rec.cpu`: they are the same for both trees.
 *
 *   git archive <rev> | tar -x -C /tmp/isolane-old && ln -s "$PWD/node_modules" /tmp/isolane-old/
 *   deno run -A scripts/ocr_ab.ts /tmp/isolane-old [--runs 40] [--served]
 *
 * With `--served`, then each tree's runtime (its `main.ts`) serving its own `functions/ocr` on CPU lanes, the same
 * images as bodies, requests to the two in turn.
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import { encodeJpeg, renderText, renderTextPng } from "../tests/support/render_text.ts";
import { loadOpenCv } from "../functions/ocr/opencv.ts";
import { sessionFacade } from "../src/inference/native.ts";
import type { InferenceSession } from "../src/sdk.ts";
import { openOcrCpuSessions, summary } from "./_ocr_cpu_stages.ts";
import { startServer, type TestServer } from "../tests/support/server.ts";
import type * as Image from "../functions/ocr/image.ts";
import type * as Detect from "../functions/ocr/detect.ts";
import type * as Recognize from "../functions/ocr/recognize.ts";
import type * as JpegWasm from "../functions/ocr/jpeg_wasm.ts";
import type { JpegDecoder } from "../functions/ocr/jpeg_wasm.ts";
import type * as PngWasm from "../functions/ocr/png_wasm.ts";
import type { PngDecoder } from "../functions/ocr/png_wasm.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { runs: { type: "string", default: "40" }, served: { type: "boolean", default: false } },
});
if (positionals.length !== 1) throw new Error("Usage: deno run -A scripts/ocr_ab.ts <other tree's root>");
const runs = Number(values.runs);
const root = fileURLToPath(new URL("..", import.meta.url));

interface Tree {
  image: typeof Image;
  detect: typeof Detect;
  recognize: typeof Recognize;
  /** mozjpeg in WebAssembly, where the tree has it (`functions/ocr/jpeg_wasm.ts`). */
  jpeg?: JpegDecoder;
  /** The `png` crate in WebAssembly, where the tree has it (`functions/ocr/png_wasm.ts`). */
  png?: PngDecoder;
}
async function tree(dir: string): Promise<Tree> {
  const at = (file: string) => pathToFileURL(`${dir}/functions/ocr/${file}`).href;
  const hasWasmJpeg = await Deno.stat(`${dir}/functions/ocr/jpeg_wasm.ts`).then(() => true, () => false);
  const wasm = `${dir}/node_modules/@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm`;
  const hasWasmPng = await Deno.stat(`${dir}/functions/ocr/png_wasm.ts`).then(() => true, () => false);
  const pngWasm = `${dir}/node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm`;
  return {
    image: await import(at("image.ts")),
    detect: await import(at("detect.ts")),
    recognize: await import(at("recognize.ts")),
    jpeg: hasWasmJpeg ? await (await import(at("jpeg_wasm.ts")) as typeof JpegWasm).loadJpegDecoder(wasm) : undefined,
    png: hasWasmPng ? await (await import(at("png_wasm.ts")) as typeof PngWasm).loadPngDecoder(pngWasm) : undefined,
  };
}
const trees: Record<string, Tree> = { other: await tree(positionals[0]), this: await tree(root) };

const sessions = await openOcrCpuSessions();
const { assets } = sessions;
let runMs = 0;
const timed = (session: InferenceSession): InferenceSession =>
  ({
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    run: async (feeds: Parameters<InferenceSession["run"]>[0]) => {
      const t = performance.now();
      try {
        return await session.run(feeds);
      } finally {
        runMs += performance.now() - t;
      }
    },
  }) as InferenceSession;
const det = timed(sessionFacade(sessions.det));
const rec = timed(sessionFacade(sessions.rec));
// A tree from before the recogniser's CTC head (functions/ocr/mod.ts) reads the whole output.
const recPlain = timed(sessionFacade(sessions.recPlain));
const cv = await loadOpenCv();
const dictionary = trees.this.recognize.parseDictionary(await Deno.readTextFile(`${assets}/ppocr_keys_v1.txt`));

/** One request through a tree's stages, each stage's time (ms) without the models' runs. */
async function pipeline(t: Tree, bytes: Uint8Array) {
  const ms: Record<string, number> = {};
  let start = performance.now();
  const image = t.image.decodeImage(bytes, { maxPixels: 40_000_000, jpeg: t.jpeg, png: t.png });
  ms.decode = performance.now() - start;
  runMs = 0;
  start = performance.now();
  const boxes = await t.detect.detectText(det, cv, image, null);
  ms["det.cpu"] = performance.now() - start - runMs;
  start = performance.now();
  const crops = boxes.map((b) => t.recognize.cropQuad(cv, image, b.quad));
  ms.crops = performance.now() - start;
  runMs = 0;
  start = performance.now();
  const head = "ctcDecodeBest" in t.recognize;
  const read = await t.recognize.recognizeLines(head ? rec : recPlain, crops, dictionary, null);
  ms["rec.cpu"] = performance.now() - start - runMs;
  ms.total = ms.decode + ms["det.cpu"] + ms.crops + ms["rec.cpu"];
  return { ms, lines: boxes.map((b, i) => ({ text: read[i].text.trim(), quad: b.quad })) };
}

const text1 = ["Hello World", "isolane serves 42 models"];
const text2 = ["INVOICE 4711", "Total 93.50 PAID", "Thank you for your order"];
const long = ["The quick brown fox jumps over the lazy dog 0123456789 times, said Mr. O'Neil (2024)."];
const corpus: [string, Uint8Array][] = [];
for (const fontSize of [20, 28, 36, 48, 64, 96]) {
  corpus.push([`PNG ${fontSize} pt`, await renderTextPng(text1, { width: Math.max(640, fontSize * 16), fontSize })]);
}
for (const tilt of [-15, -5, 8, 15]) {
  corpus.push([`PNG tilted ${tilt}°`, await renderTextPng(text2, { width: 900, tiltDegrees: tilt, fontSize: 40 })]);
}
for (const fontSize of [40, 44, 52, 70, 80, 120]) {
  const bitmap = await renderText(text2, { width: fontSize * 20, background: "gradient", fontSize, tiltDegrees: -7 });
  corpus.push([`JPEG gradient ${fontSize} pt`, await encodeJpeg(bitmap, 80)]);
}
for (const fontSize of [30, 50, 72]) {
  corpus.push([`PNG long line ${fontSize} pt`, await renderTextPng(long, { width: fontSize * 45, fontSize })]);
}
corpus.push(["PNG transparent", await renderTextPng(text1, { width: 640, background: "transparent" })]);

let same = 0;
for (const [name, bytes] of corpus) {
  const [a, b] = [await pipeline(trees.other, bytes), await pipeline(trees.this, bytes)];
  let corner = 0;
  for (const [i, line] of a.lines.entries()) {
    for (const [k, [x, y]] of line.quad.entries()) {
      const other = b.lines[i]?.quad[k] ?? [Infinity, Infinity];
      corner = Math.max(corner, Math.abs(x - other[0]), Math.abs(y - other[1]));
    }
  }
  const texts = [a, b].map((r) => JSON.stringify(r.lines.map((l) => l.text)));
  const ok = texts[0] === texts[1] && a.lines.length === b.lines.length && corner <= 3;
  if (ok) same++;
  console.log(`${ok ? "same" : "DIFFERENT"} ${name}: largest corner difference ${corner.toFixed(2)} px`);
  if (!ok) console.log(`  other ${texts[0]}\n  this  ${texts[1]}`);
}
console.log(`${same} of ${corpus.length} images: same text, corners within 3 px`);

const wide = ["Invoice 4711", "Total 93.50 PAID"];
const images = {
  "PNG, 640 px, 2 lines of 36 pt": await renderTextPng(text1, { width: 640 }),
  "PNG, 2,000 px, 2 lines of 100 pt": await renderTextPng(wide, { width: 2000, fontSize: 100 }),
  "JPEG, 640 px, 2 lines of 36 pt": await encodeJpeg(await renderText(text1, { width: 640 })),
  "JPEG, 2,000 px, 2 lines of 100 pt on a gradient": await encodeJpeg(
    await renderText(wide, { width: 2000, fontSize: 100, background: "gradient" }),
  ),
};
for (const [name, bytes] of Object.entries(images)) {
  const series: Record<string, Record<string, number[]>> = { other: {}, this: {} };
  for (let i = 0; i < runs + 3; i++) {
    for (const key of i % 2 ? ["this", "other"] : ["other", "this"]) {
      const { ms } = await pipeline(trees[key], bytes);
      if (i < 3) continue;
      for (const [stage, v] of Object.entries(ms)) (series[key][stage] ??= []).push(v);
    }
  }
  console.log(`\n${name}, ${runs} runs each, in turn (ms, CPU-side only):`);
  for (const stage of Object.keys(series.this)) {
    const [o, t] = [summary(series.other[stage]), summary(series.this[stage])];
    console.log(`  ${stage.padEnd(8)} other p50 ${o.p50} (p90 ${o.p90})  this p50 ${t.p50} (p90 ${t.p90})`);
  }
}
await sessions.close();

// Served: each tree's runtime serving its own `functions/ocr` on CPU lanes, requests in turn (PNG and JPEG bodies).
if (values.served) {
  const servers: Record<string, TestServer> = {};
  for (const [key, dir] of [["other", positionals[0]], ["this", root]]) {
    servers[key] = await startServer({
      functionsDir: `${dir}/functions`,
      entry: `${dir}/main.ts`,
      env: { CUDA_VISIBLE_DEVICES: "", ISOLANE_LOG_LEVEL: "info", ISOLANE_SERVE_FUNCTIONS: "ocr" },
    });
  }
  try {
    for (const [name, bytes] of Object.entries(images)) {
      const type = bytes[0] === 0x89 ? "image/png" : "image/jpeg";
      const series: Record<string, number[]> = { other: [], this: [] };
      for (let i = 0; i < runs + 2; i++) {
        for (const key of i % 2 ? ["this", "other"] : ["other", "this"]) {
          const started = performance.now();
          const response = await fetch(`${servers[key].url}/v1/functions/ocr`, {
            method: "POST",
            headers: { "content-type": type },
            body: new Uint8Array(bytes),
          });
          await response.arrayBuffer();
          if (!response.ok) throw new Error(`ocr on ${key}: ${response.status}`);
          if (i >= 2) series[key].push(performance.now() - started);
        }
      }
      const [o, t] = [summary(series.other), summary(series.this)];
      console.log(`served, ${name}: other p50 ${o.p50} (p90 ${o.p90})  this p50 ${t.p50} (p90 ${t.p90}) ms`);
    }
  } finally {
    for (const server of Object.values(servers)) await server.stop();
  }
}
