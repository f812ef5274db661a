/**
 * The `ocr` isolate's memory across large images: a runtime serves `functions/` on CPU lanes (process hosts), and
 * synthetic PNGs of 4 to 25 M pixels (a grid of dark squares, deflated) go to `ocr` one after another; after each,
 * the isolate's resident memory (`VmRSS`) and its peak (`VmHWM`) are read from `/proc/<pid>/status` (the pid from
 * `GET /v1/functions/ocr`). Memory that stays after a large image shows as a resident size that does not come back down.
 *
 * ```sh
 * deno run -A scripts/ocr_memory_probe.ts
 * ```
 * @module
 */
import { Buffer } from "node:buffer";
import { crc32, deflateSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { startServer } from "../tests/support/server.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit grey PNG of `width` × `height`: white with a grid of dark 16-px squares. */
function gridPng(width: number, height: number): Uint8Array {
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = ((x >> 4) + (y >> 4)) % 7 === 0 ? 0 : 255;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array()),
  ]);
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
