/**
 * A device tensor goes from isolane's kernel to a model's run without a trip through host memory (issue 15: "device
 * tensor in"): `gpu.resizeNormalizeToDevice` letterboxes into a canvas on the device, an Identity model served on the
 * same CUDA lane returns it, and the values equal the host path's (`gpu.resizeNormalize`, then zeros around it as
 * `padTo` pads), checked against the CPU reference too. A disposed tensor is refused by the run, naming the input.
 * Skipped, with one line saying why, where no GPU is usable.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resizeNormalize } from "../../functions/ocr/image.ts";
import { startServer } from "../support/server.ts";
import { unaryModel } from "../../native/ort/test_models.ts";
import { skipReason, testImage } from "./gpu_support.ts";

const mean = [0.485, 0.456, 0.406];
const std = [0.229, 0.224, 0.225];

const ignore = skipReason !== null;

/** An Identity model over a float tensor `[n, 3, h, w]` of any batch, height and width. */
function identityNchw(): Uint8Array {
  return unaryModel("Identity", ["n", 3, "h", "w"]);
}

const source = `import { defineFunction, z } from "isolane";
const mean = [0.485, 0.456, 0.406];
const std = [0.229, 0.224, 0.225];
export default defineFunction({
  description: "device tensor probe",
  input: z.object({
    image: z.object({ width: z.number().int(), height: z.number().int(), rgba: z.array(z.number()) }),
    width: z.number().int(),
    height: z.number().int(),
    canvas: z.object({ width: z.number().int(), height: z.number().int() }),
  }),
  output: z.object({
    warpDims: z.array(z.number()),
    warp: z.array(z.number()),
    dims: z.array(z.number()),
    onDevice: z.array(z.number()),
    onHost: z.array(z.number()),
    disposed: z.string(),
    streamUse: z.record(z.string(), z.number()),
    stream: z.string(),
  }),
  models: { id: "identity.onnx" },
  device: "cuda",
  memoryLimitMb: 4096,
  async handler({ image, width, height, canvas }, { models, gpu }) {
    if (!gpu) throw new Error("this isolate has no GPU lane");
    const rgba = { width: image.width, height: image.height, data: Uint8Array.from(image.rgba) };
    const options = { region: { x: 0, y: 0, width: image.width, height: image.height }, width, height, mean, std };
    const tensor = gpu.resizeNormalizeToDevice(rgba, { ...options, canvas });
    const { y } = await models.id.run({ x: tensor });
    tensor.dispose();
    let disposed = "";
    try {
      await models.id.run({ x: tensor });
    } catch (error) {
      disposed = (error as Error).message;
    }
    // Two perspective crops into a batch of 3 rows: a translation by (5, 3) and a quarter turn.
    using warped = gpu.warpPerspectiveToDevice(rgba, {
      crops: [{ transform: [1, 0, 5, 0, 1, 3, 0, 0, 1], width: 20 }, { transform: [0, 1, 2, -1, 0, 40, 0, 0, 1], width: 32 }],
      width: 32,
      height: 16,
      rows: 3,
      mean,
      std,
    });
    const w = await models.id.run({ x: warped });
    return {
      warpDims: [...w.y.dims],
      warp: Array.from(w.y.data as Float32Array),
      dims: [...y.dims],
      onDevice: Array.from(y.data as Float32Array),
      onHost: Array.from(gpu.resizeNormalize(rgba, options)),
      disposed,
      streamUse: gpu.streamUse(),
      stream: gpu.stream,
    };
  },
});
`;

Deno.test({
  name:
    "gpu device tensor: the kernels' letterboxed and warped tensors feed a model on the device, equal to the host's",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-gpu-device-tensor-" });
    try {
      await Deno.mkdir(join(dir, "probe"));
      await Deno.writeTextFile(join(dir, "probe", "mod.ts"), source);
      await Deno.writeFile(join(dir, "probe", "identity.onnx"), identityNchw());
      await using server = await startServer({ functionsDir: dir });
      const image = testImage(64, 48);
      const width = 48;
      const height = 36;
      const canvas = { width: 64, height: 64 };
      const res = await fetch(`${server.url}/v1/functions/probe`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image, width, height, canvas }),
      });
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.deepEqual(body.dims, [1, 3, canvas.height, canvas.width]);
      // The host path's tensor, letterboxed as padTo does: zeros right and below in every channel.
      const expected = new Float32Array(3 * canvas.width * canvas.height);
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) {
            expected[(c * canvas.height + y) * canvas.width + x] = body.onHost[(c * height + y) * width + x];
          }
        }
      }
      assert.deepEqual(body.onDevice, Array.from(expected));
      // And the kernel against the CPU reference, up to float32 rounding.
      const data = Uint8Array.from(image.rgba);
      const cpu = resizeNormalize({ width: image.width, height: image.height, data }, {
        x: 0,
        y: 0,
        width: image.width,
        height: image.height,
      }, { width, height, mean, std });
      const worst = Math.max(...Array.from(cpu, (v, i) => Math.abs(v - body.onHost[i])));
      assert.ok(worst < 1e-4, `kernel against the CPU reference: ${worst}`);
      assert.match(body.disposed, /disposed before this run/);
      // The warp: each output pixel is the image's pixel where the row's transform maps it (integer positions, so
      // bicubic sampling returns that pixel exactly), normalised; zeros past each row's width and in the third row.
      assert.deepEqual(body.warpDims, [3, 3, 16, 32]);
      const normalised = (px: number, py: number, c: number) => {
        const v = image.rgba[(py * image.width + px) * 4 + (2 - c)];
        return v * (1 / (255 * std[c])) - mean[c] / std[c];
      };
      const maps = [(x: number, y: number) => [x + 5, y + 3], (x: number, y: number) => [y + 2, 40 - x]];
      const widths = [20, 32, 0];
      let worstWarp = 0;
      for (let r = 0; r < 3; r++) {
        for (let c = 0; c < 3; c++) {
          for (let y = 0; y < 16; y++) {
            for (let x = 0; x < 32; x++) {
              const got = body.warp[((r * 3 + c) * 16 + y) * 32 + x];
              const want = x < widths[r] ? normalised(maps[r](x, y)[0], maps[r](x, y)[1], c) : 0;
              worstWarp = Math.max(worstWarp, Math.abs(got - want));
            }
          }
        }
      }
      assert.ok(worstWarp < 1e-5, `warp against the image's pixels: ${worstWarp}`);
      assert.deepEqual(Object.keys(body.streamUse), [body.stream], "every copy and launch on the lane's stream");
      console.log(
        `  ${body.dims.join("×")} from the device equal to the host path; largest error against CPU ${worst}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
