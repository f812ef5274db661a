/**
 * PNG decoding by the Rust `png` crate compiled to WebAssembly, as Squoosh
 * ships it (`@jsquash/png`): every colour type, bit depths of 1 to 8, palettes
 * with transparency and Adam7 interlacing, to 8-bit RGBA, the same bytes as
 * pngjs gives, in about 0.6 of its time (a 640 × 166 PNG in 1.3 ms against
 * 2.2 here, a 2,000 × 460 one in 12 against 23). 16-bit PNGs stay with pngjs,
 * which rounds them to 8 bits where the crate truncates.
 *
 * The package's own wasm-bindgen glue keeps one instance in a module
 * variable, and an instance cannot be renewed: a file the crate refuses
 * leaves its buffers behind (the error is thrown past Rust's destructors),
 * and WebAssembly memory only grows. So the module is instantiated here with
 * the few imports its `decode` calls, and, as `jpeg_wasm.ts` does for JPEG,
 * an instance that failed on a file or decoded a large image is dropped; the
 * next image gets a fresh one (instantiating the compiled module takes well
 * under a millisecond), and the memory of the old goes with it.
 *
 * A palette index past the palette's entries is an error in PNG (ISO/IEC
 * 15948, 11.2.3 PLTE); the crate reads it as opaque black (its palette table
 * is 256 entries, black past the file's), and libpng reports it only at
 * `png_read_end`, as a benign error ("Read palette index exceeding
 * num_palette", a warning by default when reading), after giving the row the
 * black of its zeroed palette. So a palette shorter than its bit depth
 * allows is padded, before decoding, with a colour that none of its entries
 * has, and a pixel of that colour refuses the file ({@link PaletteIndexError}).
 * @module
 */
import { Buffer } from "node:buffer";
import { crc32 } from "node:zlib";
import type { RgbaImage } from "./image.ts";

/** The most pixels an image may have to go to the WebAssembly decoder (larger ones go to pngjs). */
export const wasmPngMaxPixels = 16_000_000;
/** After an image of more pixels than this the instance is dropped, so that its grown memory is given back. */
export const wasmPngRenewPixels = 4_000_000;

/** A palette PNG whose pixel at (`x`, `y`) has an index past the palette's `entries` (see the module's doc). */
export class PaletteIndexError extends Error {
  override name = "PaletteIndexError";
  constructor(readonly x: number, readonly y: number, readonly entries: number) {
    super(`Pixel (${x}, ${y}) has a palette index past the palette's ${entries} entries`);
  }
}

/** A palette PNG's file with its PLTE padded to every index its bit depth can hold, and the padding's colour. */
interface PaddedPalette {
  file: Uint8Array;
  entries: number;
  /** The padding's colour as the decoder's RGBA bytes read as a little-endian word, less the alpha byte. */
  rgb: number;
}

/**
 * For a palette PNG (colour type 3) whose PLTE has fewer entries than its bit depth can index, the file with the
 * PLTE padded by a colour none of its entries has; `undefined` for any other PNG, or a PLTE the crate will refuse
 * anyway (none before the image data, or of a length that is no whole number of entries).
 */
function padPalette(bytes: Uint8Array): PaddedPalette | undefined {
  if (bytes[25] !== 3) return undefined;
  const indices = 1 << bytes[24];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 33; at + 12 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === "IDAT" || type === "IEND") return undefined;
    if (type !== "PLTE") {
      at += 12 + length;
      continue;
    }
    const entries = length / 3;
    if (!Number.isInteger(entries) || entries === 0 || entries >= indices || at + 12 + length > bytes.length) {
      return undefined;
    }
    const used = new Set<number>();
    for (let i = 0; i < entries; i++) {
      const e = at + 8 + 3 * i;
      used.add(bytes[e] | (bytes[e + 1] << 8) | (bytes[e + 2] << 16));
    }
    // At most 255 colours are taken, so a free one is found within 256 tries.
    let rgb = 0x5a01a5;
    while (used.has(rgb)) rgb = (rgb + 0x010101) & 0xffffff;
    const plte = Buffer.alloc(12 + 3 * indices);
    plte.writeUInt32BE(3 * indices, 0);
    plte.write("PLTE", 4, "latin1");
    plte.set(bytes.subarray(at + 8, at + 8 + length), 8);
    for (let i = entries; i < indices; i++) plte.set([rgb & 255, (rgb >> 8) & 255, rgb >> 16], 8 + 3 * i);
    plte.writeUInt32BE(crc32(plte.subarray(4, 8 + 3 * indices)), 8 + 3 * indices);
    const file = new Uint8Array(Buffer.concat([bytes.subarray(0, at), plte, bytes.subarray(at + 12 + length)]));
    return { file, entries, rgb };
  }
  return undefined;
}

/** @throws {PaletteIndexError} at the first pixel of `image` that has the padding's colour. */
function checkPaletteIndices(image: RgbaImage, padded: PaddedPalette): void {
  const data = image.data;
  const words = data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, data.length >> 2) : undefined;
  for (let p = 0; p < data.length >> 2; p++) {
    const word = words ? words[p] : data[4 * p] | (data[4 * p + 1] << 8) | (data[4 * p + 2] << 16);
    if ((word & 0xffffff) === padded.rgb) {
      throw new PaletteIndexError(p % image.width, Math.floor(p / image.width), padded.entries);
    }
  }
}

/** A PNG decoder in WebAssembly (see the module's doc). */
export interface PngDecoder {
  /**
   * Decodes a PNG of bit depth 1 to 8 into RGBA; `undefined` for a 16-bit PNG or one of more than
   * {@link wasmPngMaxPixels} (pngjs decodes those). Throws when the crate cannot decode the file (the caller then
   * asks pngjs, for its message), and {@link PaletteIndexError} for a palette index past the palette.
   */
  decode(bytes: Uint8Array, pixels: number): RgbaImage | undefined;
}

interface Exports {
  memory: WebAssembly.Memory;
  decode(ptr: number, len: number): number;
  __wbindgen_malloc(size: number, align: number): number;
  __wbindgen_free(ptr: number, size: number, align: number): void;
}

/** One instance and the JS objects its imports hand it (wasm-bindgen's heap), by index. */
function instantiate(compiled: WebAssembly.Module) {
  const objects = new Map<number, unknown>();
  let next = 1;
  const add = (value: unknown) => {
    objects.set(next, value);
    return next++;
  };
  // Read by the imports only while `decode` runs, after `exports` below is set.
  const bytes = () => new Uint8Array(exports.memory.buffer);
  // The glue's import names end in a hash of their signature: matched by what they start with.
  const byPrefix: [string, (...args: number[]) => unknown][] = [
    ["__wbindgen_memory", () => add(exports.memory)],
    ["__wbg_buffer_", (i) => add((objects.get(i) as WebAssembly.Memory).buffer)],
    [
      "__wbg_newwithbyteoffsetandlength_",
      (b, offset, length) => add(new Uint16Array(objects.get(b) as ArrayBuffer, offset >>> 0, length >>> 0)),
    ],
    ["__wbindgen_object_drop_ref", (i) => void objects.delete(i)],
    // The decoded RGBA, which the crate hands over (its buffer is ours to copy and free).
    ["__wbg_newwithownedu8clampedarrayandsh_", (ptr, length, width, height) => {
      const data = bytes().slice(ptr >>> 0, (ptr >>> 0) + length);
      exports.__wbindgen_free(ptr, length, 1);
      return add({ data, width: width >>> 0, height: height >>> 0 });
    }],
    ["__wbindgen_throw", (ptr, length) => {
      throw new Error(new TextDecoder().decode(bytes().subarray(ptr >>> 0, (ptr >>> 0) + length)));
    }],
  ];
  const wbg: Record<string, (...args: number[]) => unknown> = {};
  for (const { module, name } of WebAssembly.Module.imports(compiled)) {
    const found = byPrefix.find(([prefix]) => name.startsWith(prefix));
    if (module !== "wbg" || !found) throw new Error(`Unknown import ${module}.${name} of the PNG decoder`);
    wbg[name] = found[1];
  }
  const exports = new WebAssembly.Instance(compiled, { wbg }).exports as unknown as Exports;
  return function decode(png: Uint8Array): RgbaImage {
    const ptr = exports.__wbindgen_malloc(png.length, 1);
    bytes().set(png, ptr);
    const image = objects.get(exports.decode(ptr, png.length)) as RgbaImage | undefined;
    objects.clear();
    if (!image) throw new Error("The PNG decoder gave no image");
    return image;
  };
}

/**
 * Compiles the `png` crate's decoder from its `.wasm` file (`@jsquash/png`'s `codec/pkg/squoosh_png_bg.wasm`).
 * @throws when the file cannot be read or compiled, or its imports are not the ones this binding provides.
 */
export async function loadPngDecoder(wasmPath: string): Promise<PngDecoder> {
  const compiled = await WebAssembly.compile(await Deno.readFile(wasmPath));
  let current: ((png: Uint8Array) => RgbaImage) | undefined = instantiate(compiled);
  return {
    decode(bytes, pixels) {
      // IHDR's bit depth, at a fixed place in every PNG (readImageHeader has checked the signature).
      if (pixels > wasmPngMaxPixels || bytes[24] === 16) return undefined;
      current ??= instantiate(compiled);
      const decode = current;
      const padded = padPalette(bytes);
      let image: RgbaImage;
      try {
        image = decode(padded?.file ?? bytes);
      } catch (error) {
        current = undefined;
        throw error;
      } finally {
        if (pixels > wasmPngRenewPixels) current = undefined;
      }
      if (padded) checkPaletteIndices(image, padded);
      return image;
    },
  };
}
