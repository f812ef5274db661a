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
 * @module
 */
import type { RgbaImage } from "./image.ts";

/** The most pixels an image may have to go to the WebAssembly decoder (larger ones go to pngjs). */
export const wasmPngMaxPixels = 16_000_000;
/** After an image of more pixels than this the instance is dropped, so that its grown memory is given back. */
export const wasmPngRenewPixels = 4_000_000;

/** A PNG decoder in WebAssembly (see the module's doc). */
export interface PngDecoder {
  /**
   * Decodes a PNG of bit depth 1 to 8 into RGBA; `undefined` for a 16-bit PNG or one of more than
   * {@link wasmPngMaxPixels} (pngjs decodes those). Throws when the crate cannot decode the file (the caller then
   * asks pngjs, for its message).
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
      try {
        return decode(bytes);
      } catch (error) {
        current = undefined;
        throw error;
      } finally {
        if (pixels > wasmPngRenewPixels) current = undefined;
      }
    },
  };
}
