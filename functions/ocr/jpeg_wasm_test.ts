import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import jpeg from "jpeg-js";
import { encodeJpeg, renderText } from "../../tests/support/render_text.ts";
import { loadJpegDecoder, wasmJpegMaxPixels, wasmJpegRenewPixels } from "./jpeg_wasm.ts";

const wasm = fileURLToPath(
  new URL("../../node_modules/@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm", import.meta.url),
);

Deno.test("mozjpeg decodes as jpeg-js does, within a few levels, renews itself after a bad file, and leaves large images", async () => {
  const decoder = await loadJpegDecoder(wasm);
  const bytes = await encodeJpeg(await renderText(["Total 93.50 PAID"], { width: 400, background: "gradient" }));
  const reference = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
  const pixels = reference.width * reference.height;
  const image = decoder.decode(bytes, pixels);
  assert.ok(image);
  assert.deepEqual([image.width, image.height], [reference.width, reference.height]);
  let largest = 0;
  for (let i = 0; i < image.data.length; i++) largest = Math.max(largest, Math.abs(image.data[i] - reference.data[i]));
  assert.ok(largest <= 8, `largest difference from jpeg-js: ${largest} levels`);

  // Bytes that libjpeg ends with exit(1): the decoder throws, drops that instance, and a fresh one decodes again.
  const broken = bytes.slice();
  for (let i = 200; i < broken.length; i += 7) broken[i] = 0xff;
  assert.throws(() => decoder.decode(broken, pixels));
  assert.equal(decoder.decode(bytes, pixels), undefined); // no instance until the fresh one is ready
  await decoder.ready();
  assert.deepEqual(decoder.decode(bytes, pixels)?.data, image.data);

  // Past the renewal size the instance is renewed after the image; past the maximum it is not used.
  assert.ok(decoder.decode(bytes, wasmJpegRenewPixels + 1));
  assert.equal(decoder.decode(bytes, pixels), undefined);
  await decoder.ready();
  assert.equal(decoder.decode(bytes, wasmJpegMaxPixels + 1), undefined);
  assert.ok(decoder.decode(bytes, pixels));
});
