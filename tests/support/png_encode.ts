import { Buffer } from "node:buffer";
import { crc32, deflateSync } from "node:zlib";

/** What {@link encodePng} writes: PNG's colour types, bit depths and Adam7 interlacing. */
export interface PngSpec {
  width: number;
  height: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA. */
  colorType: 0 | 2 | 3 | 4 | 6;
  bitDepth: 1 | 2 | 4 | 8 | 16;
  interlace?: boolean;
  /** Each pixel's samples (channels of its colour type; a palette index for type 3), at the bit depth. */
  sample(x: number, y: number): number[];
  /** RGB triples, for colour type 3. */
  palette?: [number, number, number][];
  /** Alpha of each palette entry (tRNS), for colour type 3. */
  paletteAlpha?: number[];
}

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
export function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

const adam7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

/** A PNG of `spec`, every scanline unfiltered (filter type 0). */
export function encodePng(spec: PngSpec): Uint8Array {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[spec.colorType];
  const passes = spec.interlace ? adam7 : [[0, 0, 1, 1]];
  const rows: number[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    const xs: number[] = [];
    for (let x = x0; x < spec.width; x += dx) xs.push(x);
    if (xs.length === 0) continue;
    for (let y = y0; y < spec.height; y += dy) {
      rows.push(0);
      let bits = 0, acc = 0;
      for (const x of xs) {
        for (const v of spec.sample(x, y).slice(0, channels)) {
          if (spec.bitDepth === 16) rows.push(v >> 8, v & 255);
          else if (spec.bitDepth === 8) rows.push(v);
          else {
            acc = (acc << spec.bitDepth) | v;
            bits += spec.bitDepth;
            if (bits === 8) [bits, acc] = [0, rows.push(acc) && 0];
          }
        }
      }
      if (bits > 0) rows.push(acc << (8 - bits));
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(spec.width, 0);
  ihdr.writeUInt32BE(spec.height, 4);
  ihdr.set([spec.bitDepth, spec.colorType, 0, 0, spec.interlace ? 1 : 0], 8);
  const extra: Uint8Array[] = [];
  if (spec.palette) extra.push(chunk("PLTE", Uint8Array.from(spec.palette.flat())));
  if (spec.paletteAlpha) extra.push(chunk("tRNS", Uint8Array.from(spec.paletteAlpha)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extra,
    chunk("IDAT", deflateSync(Uint8Array.from(rows))),
    chunk("IEND", new Uint8Array()),
  ]);
}
