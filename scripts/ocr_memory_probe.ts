/**
 * The `ocr` isolate's memory across large images: a runtime serves `functions/` on CPU lanes (process hosts), and
 * synthetic PNGs of 4 to 25 M pixels (a grid of dark squares) go to `ocr` one after another; after each,
 * the isolate's resident memory (`VmRSS`) and its peak (`VmHWM`) are read from `/proc/<pid>/status` (the pid from
 * `GET /v1/functions/ocr`). Memory that stays after a large image shows as a resident size that does not come back down.
 *
 * ```sh
 * deno run -A scripts/ocr_memory_probe.ts
 * ```
 * @module
 */
import { fileURLToPath } from "node:url";
import pngjs from "pngjs";
import { startServer } from "../tests/support/server.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));

/** A grey PNG of `width` × `height` (pngjs, as `tests/ocr_test.ts` makes its blank ones): white, a grid of dark 16-px squares. */
function gridPng(width: number, height: number): Uint8Array {
  const png = new pngjs.PNG({ width, height, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) png.data[y * width + x] = ((x >> 4) + (y >> 4)) % 7 === 0 ? 0 : 255;
  }
  return pngjs.PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false });
}

await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });
const sizes = [[2000, 2000], [4000, 3000], [6000, 4000], [3000, 8000], [5000, 5000], [2000, 2000], [6000, 4000]];
for (const [width, height] of sizes) {
  const started = performance.now();
  const response = await fetch(`${server.url}/v1/functions/ocr`, {
    method: "POST",
    headers: { "content-type": "image/png" },
    body: new Uint8Array(gridPng(width, height)),
  });
  await response.arrayBuffer();
  const ms = Math.round(performance.now() - started);
  const info = await (await fetch(`${server.url}/v1/functions/ocr`)).json();
  const pid = info.isolates[0].pid;
  if (!pid) throw new Error("The ocr isolate has no pid: it is not in a process host here");
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const mb = (key: string) => Math.round(Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)![1]) / 1024);
  console.log(`${width}x${height}: ${response.status} in ${ms} ms; resident ${mb("VmRSS")} MB, peak ${mb("VmHWM")} MB`);
}
