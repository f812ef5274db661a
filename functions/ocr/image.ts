/**
 * Image decoding (PNG and JPEG, by well-kept npm libraries) and the
 * resize-and-normalise step that turns a region of an image into an NCHW
 * float32 tensor, as PaddleOCR's pre-processing does (BGR channel order,
 * bilinear sampling with half-pixel centres like OpenCV's INTER_LINEAR).
 * @module
 */
import { Buffer } from "node:buffer";
import pngjs from "pngjs";
import jpeg from "jpeg-js";

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

/** Decodes a PNG or JPEG; throws a sentence-case error for anything else. */
export function decodeImage(bytes: Uint8Array): RgbaImage {
  const isPng = bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  if (isPng) {
    const png = pngjs.PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return {
      width: png.width,
      height: png.height,
      data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
    };
  }
  if (isJpeg) {
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512 });
    return { width: img.width, height: img.height, data: img.data };
  }
  throw new Error("Image is neither PNG nor JPEG");
}

/**
 * Samples `region` of `image` into an `outWidth` x `outHeight` tensor in NCHW
 * BGR order, each channel normalised as `(v / 255 - mean[c]) / std[c]`.
 */
export function resizeNormalize(
  image: RgbaImage,
  region: Region,
  out: { width: number; height: number; mean: readonly number[]; std: readonly number[] },
): Float32Array {
  const { width: ow, height: oh } = out;
  const plane = ow * oh;
  const tensor = new Float32Array(3 * plane);
  const sx = region.width / ow;
  const sy = region.height / oh;
  const maxX = image.width - 1;
  const maxY = image.height - 1;
  const scale = [0, 1, 2].map((c) => 1 / (255 * out.std[c]));
  const shift = [0, 1, 2].map((c) => out.mean[c] / out.std[c]);
  for (let y = 0; y < oh; y++) {
    const fy = Math.min(Math.max(region.y + (y + 0.5) * sy - 0.5, 0), maxY);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, maxY);
    const wy = fy - y0;
    for (let x = 0; x < ow; x++) {
      const fx = Math.min(Math.max(region.x + (x + 0.5) * sx - 0.5, 0), maxX);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, maxX);
      const wx = fx - x0;
      const i00 = (y0 * image.width + x0) * 4;
      const i01 = (y0 * image.width + x1) * 4;
      const i10 = (y1 * image.width + x0) * 4;
      const i11 = (y1 * image.width + x1) * 4;
      for (let c = 0; c < 3; c++) {
        const src = 2 - c; // BGR from RGBA
        const top = image.data[i00 + src] * (1 - wx) + image.data[i01 + src] * wx;
        const bottom = image.data[i10 + src] * (1 - wx) + image.data[i11 + src] * wx;
        tensor[c * plane + y * ow + x] = (top * (1 - wy) + bottom * wy) * scale[c] - shift[c];
      }
    }
  }
  return tensor;
}

/**
 * Pads a 3-channel NCHW tensor of `from` size with zeros (right and bottom) to
 * `to` size. On CUDA, ONNX Runtime re-tunes its kernels whenever an input shape
 * changes (about half a second a time on an H100 for PP-OCRv4), so the GPU path
 * feeds fixed shapes.
 */
export function padTo(
  tensor: Float32Array,
  from: { width: number; height: number },
  to: { width: number; height: number },
): Float32Array {
  if (from.width === to.width && from.height === to.height) return tensor;
  const out = new Float32Array(3 * to.width * to.height);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < from.height; y++) {
      const src = (c * from.height + y) * from.width;
      out.set(tensor.subarray(src, src + from.width), (c * to.height + y) * to.width);
    }
  }
  return out;
}
