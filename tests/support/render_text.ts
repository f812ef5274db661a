/**
 * Renders lines of text into a PNG, for OCR tests: black DejaVu Sans on white,
 * drawn by pureimage (pure JS), so the test needs no system fonts.
 * @module
 */
import { Buffer } from "node:buffer";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import * as PImage from "pureimage";

const fontPath = fileURLToPath(new URL("../../node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf", import.meta.url));
let fontLoaded: Promise<void> | undefined;

/** Renders `lines` one under another and returns the PNG bytes. */
export async function renderTextPng(lines: string[], { width = 640, fontSize = 36 } = {}): Promise<Uint8Array> {
  fontLoaded ??= PImage.registerFont(fontPath, "DejaVu Sans").loadPromise().then(() => {});
  await fontLoaded;
  const lineHeight = Math.round(fontSize * 1.8);
  const image = PImage.make(width, lineHeight * lines.length + fontSize);
  const ctx = image.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, image.width, image.height);
  ctx.fillStyle = "#000000";
  ctx.font = `${fontSize}pt 'DejaVu Sans'`;
  lines.forEach((line, i) => ctx.fillText(line, 24, lineHeight * (i + 1)));
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on("data", (chunk: Buffer) => chunks.push(chunk));
  await PImage.encodePNGToStream(image, sink);
  return new Uint8Array(Buffer.concat(chunks));
}
