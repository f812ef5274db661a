/**
 * Image decoding (PNG by the `png` crate in WebAssembly, `png_wasm.ts`, or
 * pngjs; JPEG by mozjpeg in WebAssembly, `jpeg_wasm.ts`, or jpeg-js), checked
 * against limits from the header before any pixel is decoded, composited onto
 * white and turned upright by its EXIF orientation; and the resize-and-normalise
 * step that turns a region of an image into an NCHW float32 tensor, as
 * PaddleOCR's pre-processing does (BGR channel order, bilinear sampling with
 * half-pixel centres like OpenCV's INTER_LINEAR).
 *
 * Why JS and WebAssembly: user code may load no `.node` addon (the isolate drops
 * ffi before it imports the module), so a native decoder such as sharp would
 * have to be loaded by the runtime itself. pngjs, jpeg-js and mozjpeg's
 * WebAssembly need nothing.
 * @module
 */
import { Buffer } from "node:buffer";
import { constants, crc32, inflateSync } from "node:zlib";
import pngjs from "pngjs";
import jpeg from "jpeg-js";
import { imageSize } from "image-size";
import type { JpegDecoder } from "./jpeg_wasm.ts";
import { PaletteIndexError, type PngDecoder } from "./png_wasm.ts";

/** An RGBA image, 8 bits a channel. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** An axis-aligned region of an image, in pixels. */
export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** What the header of an image declares, read without decoding it. */
export interface ImageHeader {
  type: "png" | "jpeg";
  width: number;
  height: number;
  /** EXIF orientation (1 to 8; 1 is upright); JPEG only, 1 when absent. */
  orientation: number;
}

/** Limits checked from the header before decoding, and the decoders to use. */
export interface ImageLimits {
  /** Most pixels (width times height) an image may declare. */
  maxPixels: number;
  /** mozjpeg in WebAssembly (`jpeg_wasm.ts`), tried before jpeg-js when given. */
  jpeg?: JpegDecoder;
  /** The `png` crate in WebAssembly (`png_wasm.ts`), tried before pngjs when given. */
  png?: PngDecoder;
}

/** Why an image cannot be used, for the caller (the handler maps it to 400). */
export class UnusableImage extends Error {
  override name = "UnusableImage";
}

/**
 * Reads type, size and EXIF orientation from the header (image-size reads the
 * PNG IHDR chunk and the JPEG SOF and APP1 segments). Throws `UnusableImage`
 * for anything that is not a readable PNG or JPEG header.
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length === 0) {
    // What curl sends for `--data-binary @scan.png` when scan.png does not exist (it warns, then posts nothing).
    throw new UnusableImage("The image is empty (0 bytes): send a PNG or JPEG file as the body, or check its path");
  }
  const isPng = bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  if (!isPng && !isJpeg) throw new UnusableImage("Image is neither PNG nor JPEG");
  if (isPng && bytes.length < pngHeaderBytes) {
    throw new UnusableImage(
      `The PNG file ends inside its header (${bytes.length} bytes, the signature and IHDR take ${pngHeaderBytes}): ` +
        `it is truncated`,
    );
  }
  let size: { width?: number; height?: number; orientation?: number };
  try {
    // image-size reads through a DataView that ends where the ArrayBuffer ends, not where `bytes` does: a pooled
    // Buffer (what `Buffer.from(base64)` gives for a small image) would let it read the pool's other bytes.
    size = imageSize(bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice());
  } catch (error) {
    // image-size also parses the EXIF segment, and throws on a broken one; the frame header still gives the size, and
    // the image is shown as stored, as decoders do.
    const frame = isJpeg ? jpegFrame(bytes) : undefined;
    if (!frame) throw new UnusableImage(`Cannot read the image header: ${(error as Error).message}`);
    size = frame;
  }
  const { width, height } = size;
  if (!width || !height) throw new UnusableImage("Image header declares no size");
  const orientation = size.orientation && size.orientation >= 1 && size.orientation <= 8 ? size.orientation : 1;
  return { type: isPng ? "png" : "jpeg", width, height, orientation };
}

/** The PNG signature (8 bytes) and the IHDR chunk (12 + 13). */
const pngHeaderBytes = 33;

/** Bit depths PNG allows for each colour type (PNG spec, 11.2.2). */
const pngBitDepths: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
/** Samples a pixel of each colour type has. */
const pngChannels: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Deflate's greatest ratio: a 258-byte match coded in 2 bits (1-bit length and distance codes). Image data that
 * inflates to more than this many times its compressed size cannot be in the file: it is truncated or forged.
 */
const deflateMaxRatio = 1032;

/**
 * Checks a PNG's structure before it is decoded: IHDR's fields are ones PNG allows, the chunks are whole up to IEND,
 * and the compressed image data (the IDAT chunks) can inflate to the size the header declares. Both decoders
 * otherwise accept a file whose data stops early (pngjs fills the rest with zeros), so a few hundred bytes that
 * declare 16 M pixels would be decoded and detected as a blank 64 MB image; and neither names what is wrong.
 * Returns the bytes the image data must inflate to (its scanlines, filter bytes included).
 * Throws `UnusableImage` with the reason.
 */
function checkPngStructure(bytes: Uint8Array, width: number, height: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [depth, colour, compression, filter, interlace] = bytes.subarray(24, 29);
  const first = String.fromCharCode(...bytes.subarray(12, 16));
  if (first !== "IHDR" || view.getUint32(8) !== 13) {
    throw new UnusableImage(`The PNG's first chunk is ${first} of ${view.getUint32(8)} bytes, not IHDR of 13 bytes`);
  }
  if (!pngBitDepths[colour]?.includes(depth)) {
    throw new UnusableImage(
      `The PNG's header declares colour type ${colour} at bit depth ${depth}, which PNG does not allow`,
    );
  }
  if (compression !== 0 || filter !== 0 || interlace > 1) {
    throw new UnusableImage(
      `The PNG's header declares compression ${compression}, filter ${filter} and interlace ${interlace}; PNG allows ` +
        `0, 0 and 0 or 1`,
    );
  }
  let compressed = 0;
  let ended = false;
  for (let at = pngHeaderBytes; at < bytes.length;) {
    if (at + 12 > bytes.length) break;
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + length > bytes.length) {
      throw new UnusableImage(
        `The PNG file is truncated: its ${type} chunk declares ${length} bytes, and ${bytes.length - at - 12} follow`,
      );
    }
    if (type === "IDAT") compressed += length;
    at += 12 + length;
    if (type === "IEND") {
      ended = true;
      break;
    }
  }
  if (compressed === 0) throw new UnusableImage("The PNG has no image data (no IDAT chunk)");
  if (!ended) throw new UnusableImage("The PNG file is truncated: it ends before its IEND chunk");
  // Scanlines as stored: a filter byte and the packed samples of each row, of each Adam7 pass when interlaced.
  const bits = depth * pngChannels[colour];
  const passes = interlace
    ? [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]]
    : [[0, 0, 1, 1]];
  let raw = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const columns = Math.ceil((width - x0) / dx);
    const rows = Math.ceil((height - y0) / dy);
    if (columns > 0 && rows > 0) raw += rows * (1 + Math.ceil((columns * bits) / 8));
  }
  if (raw > compressed * deflateMaxRatio) {
    throw new UnusableImage(
      `The PNG is truncated or forged: its image data (${compressed} bytes compressed) cannot hold the ${width}x${height} ` +
        `pixels its header declares (${raw} bytes)`,
    );
  }
  return raw;
}

/**
 * A JPEG's frame header (its SOF segment: the coding, by its marker, and the size), found by walking the segments
 * from the start; `undefined` when there is none before the data runs out.
 */
function jpegFrame(bytes: Uint8Array): { marker: number; width: number; height: number } | undefined {
  let at = 2;
  while (at + 9 <= bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1];
    if (marker === 0xff) { // fill byte
      at++;
      continue;
    }
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    // SOF0 to SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { marker, height: (bytes[at + 5] << 8) | bytes[at + 6], width: (bytes[at + 7] << 8) | bytes[at + 8] };
    }
    if (marker === 0xda || length < 2) return undefined; // scan data before any frame header
    at += 2 + length;
  }
  return undefined;
}

/**
 * The coding of a frame marker that neither mozjpeg's build nor jpeg-js decodes: arithmetic (SOF9 to SOF11,
 * SOF13 to SOF15), lossless (SOF3, SOF7) or hierarchical (SOF5 to SOF7); `undefined` for baseline and progressive.
 */
function unsupportedCoding(marker: number | undefined): string | undefined {
  if (marker === undefined) return undefined;
  if (marker >= 0xc9) return "arithmetic-coded";
  if (marker === 0xc3 || marker === 0xc7) return "lossless";
  if (marker === 0xc5 || marker === 0xc6) return "hierarchical";
  return undefined;
}

/**
 * Decodes a PNG or JPEG into an upright RGBA image on white. The header is
 * checked against `limits` first, so an image that declares too many pixels is
 * refused without decoding it. Throws `UnusableImage` with the reason.
 */
export function decodeImage(bytes: Uint8Array, limits: ImageLimits): RgbaImage {
  const header = readImageHeader(bytes);
  const pixels = header.width * header.height;
  if (pixels > limits.maxPixels) {
    throw new UnusableImage(
      `Image declares ${header.width}x${header.height} pixels (${pixels}), more than the limit of ${limits.maxPixels}`,
    );
  }
  const scanlines = header.type === "png" ? checkPngStructure(bytes, header.width, header.height) : 0;
  let image: RgbaImage;
  try {
    if (header.type === "png") {
      // A PNG the WebAssembly decoder cannot decode goes to pngjs as well, whose message the client gets if it fails too.
      image = wasmPng(bytes, pixels, limits.png) ?? jsPng(bytes, scanlines, header);
    } else {
      // A JPEG mozjpeg cannot decode goes to jpeg-js as well, whose message the client gets if it fails too.
      image = wasmJpeg(bytes, pixels, limits.jpeg) ?? jsJpeg(bytes);
    }
  } catch (error) {
    if (error instanceof UnusableImage) throw error;
    const coding = header.type === "jpeg" ? unsupportedCoding(jpegFrame(bytes)?.marker) : undefined;
    if (coding) {
      throw new UnusableImage(
        `Cannot decode the JPEG image: ${coding} JPEG is not supported; save it as a baseline or progressive JPEG, ` +
          `or as PNG`,
      );
    }
    const message = (error as Error).message;
    // pngjs's words when zlib's stream stops before the image does.
    if (header.type === "png" && /read requests waiting|waitng on finished stream/.test(message)) {
      throw new UnusableImage("Cannot decode the PNG image: its compressed image data (IDAT) is corrupt or cut short");
    }
    // pngjs's words for a palette index past the palette's entries, which the png crate decodes as black.
    const index = header.type === "png" ? /^index (\d+) not in palette/.exec(message) : null;
    if (index) {
      throw new UnusableImage(paletteIndexMessage(`a pixel uses palette index ${index[1]}`, paletteEntries(bytes)));
    }
    throw new UnusableImage(`Cannot decode the ${header.type.toUpperCase()} image: ${message}`);
  }
  if (image.width * image.height > limits.maxPixels) {
    throw new UnusableImage(`Image has more than ${limits.maxPixels} pixels`);
  }
  compositeOnWhite(image);
  return orient(image, header.orientation);
}

/**
 * Decodes a PNG with the `png` crate in WebAssembly, if it is given and takes it; `undefined` otherwise or when it
 * fails, except on a palette index past the palette, which refuses the file (pngjs would refuse it too, later).
 */
function wasmPng(bytes: Uint8Array, pixels: number, decoder: PngDecoder | undefined): RgbaImage | undefined {
  try {
    return decoder?.decode(bytes, pixels);
  } catch (error) {
    if (error instanceof PaletteIndexError) {
      throw new UnusableImage(
        paletteIndexMessage(`pixel (${error.x}, ${error.y}) uses a palette index`, error.entries),
      );
    }
    return undefined;
  }
}

/** Why a palette index past the palette refuses a PNG: PNG makes it an error, and decoders differ on its colour. */
function paletteIndexMessage(what: string, entries: number | undefined): string {
  return `The PNG is corrupt: ${what} past its palette's ${entries ?? "declared"} entries, ` +
    `which PNG (ISO/IEC 15948, 11.2.3 PLTE) makes an error; re-save the image from its source`;
}

/** Entries of a PNG's PLTE chunk (its first, before the image data); `undefined` when it has none. */
function paletteEntries(bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = pngHeaderBytes; at + 12 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === "PLTE") return Math.floor(length / 3);
    if (type === "IDAT") return undefined;
    at += 12 + length;
  }
  return undefined;
}

/**
 * How many bytes the image data inflates to, at most `limit + 1` (more is as good as `limit + 1`: pngjs and the
 * crate ignore the excess), a stream cut short included (what it holds so far); `undefined` when zlib refuses the
 * data (pngjs then says why). `stream`: the zlib stream's bytes, where bytes follow its end in the IDAT chunks
 * (which zlib ignores, and pngjs refuses), else `undefined`.
 */
function inflatedBytes(bytes: Uint8Array, limit: number): { inflated: number | undefined; stream?: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  for (let at = pngHeaderBytes; at + 12 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === "IDAT") parts.push(bytes.subarray(at + 8, at + 8 + length));
    if (type === "IEND") break;
    at += 12 + length;
  }
  const data = Buffer.concat(parts);
  try {
    // A stream that stops without its end gives what it holds, not an error: pngjs decodes that too, with zeros.
    const options = { maxOutputLength: limit, finishFlush: constants.Z_SYNC_FLUSH, info: true };
    const { buffer, engine } = inflateSync(data, options) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    const read = engine.bytesWritten;
    return { inflated: buffer.length, ...(read < data.length ? { stream: data.subarray(0, read) } : {}) };
  } catch (error) {
    return { inflated: (error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" ? limit + 1 : undefined };
  }
}

/** `bytes` (a PNG) with its IDAT chunks replaced by one holding `stream`, in the place of the first. */
function withImageData(bytes: Uint8Array, stream: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [bytes.subarray(0, pngHeaderBytes)];
  let placed = false;
  for (let at = pngHeaderBytes; at + 12 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type !== "IDAT") out.push(bytes.subarray(at, at + 12 + length));
    else if (!placed) {
      placed = true;
      const idat = Buffer.alloc(12 + stream.length);
      idat.writeUInt32BE(stream.length, 0);
      idat.write("IDAT", 4, "latin1");
      idat.set(stream, 8);
      idat.writeUInt32BE(crc32(idat.subarray(4, 8 + stream.length)), 8 + stream.length);
      out.push(idat);
    }
    if (type === "IEND") break;
    at += 12 + length;
  }
  return Buffer.concat(out);
}

/**
 * Decodes a PNG with pngjs, after checking that its image data inflates to all of its `scanlines` bytes: pngjs fills
 * the rows of a stream that ends early with zeros (the png crate refuses it), which would be read as blank rows.
 * This costs a second inflate, on this path only (16-bit PNGs, PNGs past the crate's size, files the crate refused).
 */
function jsPng(bytes: Uint8Array, scanlines: number, header: ImageHeader): RgbaImage {
  const { inflated, stream } = inflatedBytes(bytes, scanlines);
  if (inflated !== undefined && inflated < scanlines) {
    throw new UnusableImage(
      `The PNG is truncated: its image data (IDAT) inflates to ${inflated} bytes, and the ${header.width}x` +
        `${header.height} pixels its header declares need ${scanlines}; the last rows are missing`,
    );
  }
  // Bytes after the zlib stream's end (libpng and the crate ignore them) make pngjs fail: it gets the stream alone.
  const file = stream ? withImageData(bytes, stream) : bytes;
  const png = pngjs.PNG.sync.read(Buffer.from(file.buffer, file.byteOffset, file.byteLength));
  return {
    width: png.width,
    height: png.height,
    data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
  };
}

/** Decodes a JPEG with mozjpeg, if it is given and takes it; `undefined` otherwise or when it fails. */
function wasmJpeg(bytes: Uint8Array, pixels: number, decoder: JpegDecoder | undefined): RgbaImage | undefined {
  try {
    return decoder?.decode(bytes, pixels);
  } catch {
    return undefined;
  }
}

function jsJpeg(bytes: Uint8Array): RgbaImage {
  // The header check bounds the pixels; jpeg-js's own memory cap stays as a second guard, above what a JPEG of 40 M
  // pixels takes (512 MB refused one: "maxMemoryUsageInMB limit exceeded by at least 23MB").
  const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
  return { width: img.width, height: img.height, data: img.data };
}

/**
 * Composites a straight-alpha RGBA image onto white, in place: text drawn on a
 * transparent background would otherwise be black on black (transparent pixels
 * are usually stored as RGB 0).
 */
export function compositeOnWhite(image: RgbaImage): void {
  const d = image.data;
  for (let i = 3; i < d.length; i += 4) {
    const a = d[i];
    if (a === 255) continue;
    const white = 255 - a;
    d[i - 3] = Math.round((d[i - 3] * a) / 255 + white);
    d[i - 2] = Math.round((d[i - 2] * a) / 255 + white);
    d[i - 1] = Math.round((d[i - 1] * a) / 255 + white);
    d[i] = 255;
  }
}

/**
 * Turns an image upright by its EXIF orientation (1 to 8, TIFF 6.0 / EXIF 2.3
 * tag 0x0112): 2 mirrored, 3 rotated 180°, 4 flipped, 5 transposed, 6 needs a
 * 90° clockwise turn, 7 transversed, 8 needs a 90° counter-clockwise turn.
 */
export function orient(image: RgbaImage, orientation: number): RgbaImage {
  if (orientation <= 1 || orientation > 8) return image;
  const { width: w, height: h } = image;
  const swap = orientation >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  // One 32-bit word a pixel; a view needs 4-byte alignment, which a pooled Buffer may not have.
  const bytes = image.data.byteOffset % 4 === 0 ? image.data : image.data.slice();
  const src = new Uint32Array(bytes.buffer, bytes.byteOffset, w * h);
  const out = new Uint32Array(ow * oh);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number, sy: number;
      switch (orientation) {
        case 2:
          [sx, sy] = [w - 1 - x, y];
          break;
        case 3:
          [sx, sy] = [w - 1 - x, h - 1 - y];
          break;
        case 4:
          [sx, sy] = [x, h - 1 - y];
          break;
        case 5:
          [sx, sy] = [y, x];
          break;
        case 6:
          [sx, sy] = [y, h - 1 - x];
          break;
        case 7:
          [sx, sy] = [w - 1 - y, h - 1 - x];
          break;
        default:
          [sx, sy] = [w - 1 - y, x];
          break;
      }
      out[y * ow + x] = src[sy * w + sx];
    }
  }
  return { width: ow, height: oh, data: new Uint8Array(out.buffer) };
}

/** Where {@link resizeNormalize} writes: into a larger NCHW tensor, its top-left corner at `offset`. */
export interface TensorTarget {
  /** The tensor written into; every value outside the written rectangle is left as it is. */
  tensor: Float32Array;
  /** Index of the first value written (of channel 0, row 0). */
  offset: number;
  /** Values from one row to the next (the target's width). */
  rowStride: number;
  /** Values from one channel to the next (the target's width times its height). */
  planeStride: number;
}

/**
 * Samples `region` of `image` into an `outWidth` x `outHeight` tensor in NCHW
 * BGR order, each channel normalised as `(v / 255 - mean[c]) / std[c]`; into
 * `target` when given (and returns its tensor), so that a padded batch needs no
 * second copy. Each column's source pixels and weights are computed once, not
 * once a row (the values are the same to the bit).
 */
export function resizeNormalize(
  image: RgbaImage,
  region: Region,
  out: { width: number; height: number; mean: readonly number[]; std: readonly number[] },
  target?: TensorTarget,
): Float32Array {
  const { width: ow, height: oh } = out;
  const tensor = target?.tensor ?? new Float32Array(3 * ow * oh);
  const offset = target?.offset ?? 0;
  const rowStride = target?.rowStride ?? ow;
  const plane = target?.planeStride ?? ow * oh;
  const sx = region.width / ow;
  const sy = region.height / oh;
  const maxX = image.width - 1;
  const maxY = image.height - 1;
  const rowBytes = image.width * 4;
  const data = image.data;
  // BGR from RGBA: channel 0 reads byte 2, channel 2 byte 0.
  const [scaleB, scaleG, scaleR] = [0, 1, 2].map((c) => 1 / (255 * out.std[c]));
  const [shiftB, shiftG, shiftR] = [0, 1, 2].map((c) => out.mean[c] / out.std[c]);
  const left = new Int32Array(ow);
  const right = new Int32Array(ow);
  const weight = new Float64Array(ow);
  for (let x = 0; x < ow; x++) {
    const fx = Math.min(Math.max(region.x + (x + 0.5) * sx - 0.5, 0), maxX);
    const x0 = Math.floor(fx);
    left[x] = x0 * 4;
    right[x] = Math.min(x0 + 1, maxX) * 4;
    weight[x] = fx - x0;
  }
  for (let y = 0; y < oh; y++) {
    const fy = Math.min(Math.max(region.y + (y + 0.5) * sy - 0.5, 0), maxY);
    const y0 = Math.floor(fy);
    const top = y0 * rowBytes;
    const bottom = Math.min(y0 + 1, maxY) * rowBytes;
    const wy = fy - y0;
    const vy = 1 - wy;
    const b = offset + y * rowStride;
    const g = b + plane;
    const r = g + plane;
    for (let x = 0; x < ow; x++) {
      const wx = weight[x];
      const vx = 1 - wx;
      const t0 = top + left[x];
      const t1 = top + right[x];
      const b0 = bottom + left[x];
      const b1 = bottom + right[x];
      const topB = data[t0 + 2] * vx + data[t1 + 2] * wx;
      const bottomB = data[b0 + 2] * vx + data[b1 + 2] * wx;
      tensor[b + x] = (topB * vy + bottomB * wy) * scaleB - shiftB;
      const topG = data[t0 + 1] * vx + data[t1 + 1] * wx;
      const bottomG = data[b0 + 1] * vx + data[b1 + 1] * wx;
      tensor[g + x] = (topG * vy + bottomG * wy) * scaleG - shiftG;
      const topR = data[t0] * vx + data[t1] * wx;
      const bottomR = data[b0] * vx + data[b1] * wx;
      tensor[r + x] = (topR * vy + bottomR * wy) * scaleR - shiftR;
    }
  }
  return tensor;
}

/**
 * Pads a 3-channel NCHW tensor of `from` size with zeros (right and bottom) to
 * `to` size: how a GPU lane letterboxes its fixed shapes, and how recognition lines of one batch reach the
 * batch's width.
 */
export function padTo(
  tensor: Float32Array,
  from: { width: number; height: number },
  to: { width: number; height: number },
): Float32Array {
  if (from.width === to.width && from.height === to.height) return tensor;
  const out = new Float32Array(3 * to.width * to.height);
  if (from.width === to.width) {
    // Rows of equal width: each channel is one block.
    const plane = from.width * from.height;
    for (let c = 0; c < 3; c++) out.set(tensor.subarray(c * plane, (c + 1) * plane), c * to.width * to.height);
    return out;
  }
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < from.height; y++) {
      const src = (c * from.height + y) * from.width;
      out.set(tensor.subarray(src, src + from.width), (c * to.height + y) * to.width);
    }
  }
  return out;
}
