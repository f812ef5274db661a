/**
 * `ocr`'s image decoding (`decodeImage` with the `png` crate's decoder) of this tree against another's (an older
 * commit, say), in one process: a PNG of text, palette PNGs whose palette is shorter than its bit depth can index
 * (padded and checked for indices past it, `png_wasm.ts`) or full, and a 16-bit PNG (pngjs, after the check that its
 * image data inflates to every row, `image.ts`). Rounds alternate between the two, so that a busy machine slows both
 * alike; medians of the rounds' mean time per decode.
 *
 *   git archive <rev> functions/ocr | tar -x -C /tmp/isolane-old
 *   deno run -A bench/ab_png_decode.ts /tmp/isolane-old [--rounds 7] [--reps 15]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import { encodePng } from "../tests/support/png_encode.ts";
import { renderTextPng } from "../tests/support/render_text.ts";
import type * as Image from "../functions/ocr/image.ts";
import type * as PngWasm from "../functions/ocr/png_wasm.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { rounds: { type: "string", default: "7" }, reps: { type: "string", default: "15" } },
});
if (positionals.length !== 1) throw new Error("Usage: deno run -A bench/ab_png_decode.ts <other tree's root>");
const roots = { other: pathToFileURL(`${positionals[0]}/`).href, this: new URL("../", import.meta.url).href };
const wasm = fileURLToPath(new URL("../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm", import.meta.url));

async function decoderOf(root: string) {
  const image: typeof Image = await import(new URL("functions/ocr/image.ts", root).href);
  const png: typeof PngWasm = await import(new URL("functions/ocr/png_wasm.ts", root).href);
  const decoder = await png.loadPngDecoder(wasm);
  return (bytes: Uint8Array) => image.decodeImage(bytes, { maxPixels: 40_000_000, png: decoder });
}
const decoders = { other: await decoderOf(roots.other), this: await decoderOf(roots.this) };

const palette = Array.from(
  { length: 16 },
  (_, i) => [i * 16, 255 - i * 16, (i * 77) % 256] as [number, number, number],
);
const stripes = (x: number, y: number) => [((x >> 3) + (y >> 3)) % 16];
const images: Record<string, Uint8Array> = {
  "RGB text, 640 px": await renderTextPng(["Total 93.50 PAID", "INVOICE 4711"], { width: 640 }),
  "palette 8-bit, 16 entries, 2000x460": encodePng({
    width: 2000,
    height: 460,
    colorType: 3,
    bitDepth: 8,
    sample: stripes,
    palette,
  }),
  "palette 4-bit, 16 entries (full), 2000x460": encodePng({
    width: 2000,
    height: 460,
    colorType: 3,
    bitDepth: 4,
    sample: stripes,
    palette,
  }),
  "16-bit grey, 2000x460 (pngjs)": encodePng({
    width: 2000,
    height: 460,
    colorType: 0,
    bitDepth: 16,
    sample: (x, y) => [(x * 31 + y * 7) % 65536],
  }),
};
const rounds = Number(values.rounds);
const reps = Number(values.reps);
const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[xs.length >> 1];
console.log(`load average ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
for (const [name, bytes] of Object.entries(images)) {
  const ms: Record<"other" | "this", number[]> = { other: [], this: [] };
  for (let r = 0; r < rounds; r++) {
    for (const which of r % 2 ? ["this", "other"] as const : ["other", "this"] as const) {
      const started = performance.now();
      for (let k = 0; k < reps; k++) decoders[which](bytes);
      ms[which].push((performance.now() - started) / reps);
    }
  }
  console.log(`${name}: other ${median(ms.other).toFixed(2)} ms, this ${median(ms.this).toFixed(2)} ms`);
}
console.log(`load average ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
