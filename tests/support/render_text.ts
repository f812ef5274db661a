/**
 * Renders lines of text for OCR tests: DejaVu Sans drawn by pureimage (pure
 * JS), so the tests need no system fonts. Black on white by default; also on a
 * transparent background, on a photo-like gradient, tilted, as JPEG, and as a
 * JPEG stored sideways with an EXIF orientation tag (written by piexifjs).
 * @module
 */
import { Buffer } from "node:buffer";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import * as PImage from "pureimage";
import piexif from "piexifjs";

const fontPath = fileURLToPath(new URL("../../node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf", import.meta.url));
let fontLoaded: Promise<void> | undefined;

type Bitmap = ReturnType<typeof PImage.make>;

/** How to render. */
export interface RenderOptions {
  /** Canvas width in pixels (default 640); the height follows from the lines. */
  width?: number;
  /** Font size in points (default 36). */
  fontSize?: number;
  /** `white` (default), `transparent` (alpha 0, RGB 0: what PNG encoders store), or a photo-like `gradient`. */
  background?: "white" | "transparent" | "gradient";
  /** Clockwise tilt of the text in degrees, about the canvas centre (default 0). */
  tiltDegrees?: number;
}

/** Renders `lines` one under another into a pureimage bitmap. */
export async function renderText(lines: string[], options: RenderOptions = {}): Promise<Bitmap> {
  const { width = 640, fontSize = 36, background = "white", tiltDegrees = 0 } = options;
  fontLoaded ??= PImage.registerFont(fontPath, "DejaVu Sans").loadPromise().then(() => {});
  await fontLoaded;
  const lineHeight = Math.round(fontSize * 1.8);
  // A tilted block needs room above and below for its far ends.
  const extra = Math.ceil(Math.abs(Math.sin((tiltDegrees * Math.PI) / 180)) * width);
  const image = PImage.make(width, lineHeight * lines.length + fontSize + extra);
  const ctx = image.getContext("2d");
  if (background === "white") {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, image.width, image.height);
  } else if (background === "gradient") {
    // Light, uneven paper: a diagonal gradient with faint speckle, as a phone photo of a page looks.
    let seed = 7;
    for (let y = 0; y < image.height; y++) {
      for (let x = 0; x < image.width; x++) {
        seed = (seed * 1664525 + 1013904223) >>> 0;
        const t = (x / image.width + y / image.height) / 2;
        const noise = ((seed >>> 24) / 255 - 0.5) * 16;
        const v = (c: number) => Math.max(0, Math.min(255, Math.round(c + noise)));
        image.setPixelRGBA_i(x, y, v(250 - 70 * t), v(240 - 60 * t), v(215 - 40 * t), 255);
      }
    }
  } else {
    image.data.fill(0);
  }
  ctx.fillStyle = background === "gradient" ? "#1a1a30" : "#000000";
  ctx.font = `${fontSize}pt 'DejaVu Sans'`;
  ctx.translate(image.width / 2, image.height / 2);
  ctx.rotate((tiltDegrees * Math.PI) / 180);
  ctx.translate(-image.width / 2, -image.height / 2);
  const top = extra / 2;
  lines.forEach((line, i) => ctx.fillText(line, 24, top + lineHeight * (i + 1)));
  return image;
}

async function collect(write: (sink: PassThrough) => Promise<void>): Promise<Uint8Array> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on("data", (chunk: Buffer) => chunks.push(chunk));
  await write(sink);
  return new Uint8Array(Buffer.concat(chunks));
}

/** Encodes a bitmap as PNG (RGBA). */
export function encodePng(image: Bitmap): Promise<Uint8Array> {
  return collect((sink) => PImage.encodePNGToStream(image, sink));
}

/** Encodes a bitmap as baseline JPEG at `quality` (default 90). */
export function encodeJpeg(image: Bitmap, quality = 90): Promise<Uint8Array> {
  return collect((sink) => PImage.encodeJPEGToStream(image, sink, quality));
}

/** Renders `lines` one under another and returns the PNG bytes. */
export async function renderTextPng(lines: string[], options: RenderOptions = {}): Promise<Uint8Array> {
  return encodePng(await renderText(lines, options));
}

/**
 * Renders `lines` upright, stores the raster turned 90° counter-clockwise and
 * tags the JPEG with EXIF orientation 6 ("turn 90° clockwise to display"), as a
 * phone held sideways does. A reader that ignores the tag sees vertical text.
 */
export async function renderSidewaysJpeg(lines: string[], options: RenderOptions = {}): Promise<Uint8Array> {
  const upright = await renderText(lines, options);
  const sideways = PImage.make(upright.height, upright.width);
  for (let y = 0; y < upright.height; y++) {
    for (let x = 0; x < upright.width; x++) {
      // Counter-clockwise: upright (x, y) lands at (y, width - 1 - x).
      sideways.setPixelRGBA(y, upright.width - 1 - x, upright.getPixelRGBA(x, y));
    }
  }
  const jpeg = await encodeJpeg(sideways);
  const exif = piexif.dump({ "0th": { [piexif.ImageIFD.Orientation]: 6 } });
  const tagged = piexif.insert(exif, Buffer.from(jpeg).toString("binary"));
  return new Uint8Array(Buffer.from(tagged, "binary"));
}
