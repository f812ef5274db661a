/**
 * What the GPU tests need: whether they can run here (and one line saying why
 * not), per-device memory from NVML, and function folders generated for a run.
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { discoverDevices, Nvml } from "../../native/mod.ts";
import { cudaProviderStatus } from "../../src/inference/providers.ts";

const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));
const found = discoverDevices();
const provider = cudaProviderStatus(nodeModules);

/** Visible GPUs, when the GPU tests can run. */
export const gpus = found.devices;
/** Why the GPU tests are skipped, or `null` when they run. */
export const skipReason: string | null = found.devices.length === 0
  ? (found.reason ?? "no CUDA device")
  : provider.ok
  ? null
  : provider.reason;

if (skipReason) console.log(`GPU tests skipped: ${skipReason}`);
else console.log(`GPU tests on ${gpus.map((g) => `${g.index}: ${g.name} (${g.pciBusId})`).join(", ")}`);
if (!skipReason && gpus.length < 2) console.log(`Two-GPU tests skipped: ${gpus.length} GPU visible`);

const nvml = skipReason ? null : Nvml.open();

/** Used memory of every visible device, by index, in bytes. */
export function usedMemory(): number[] {
  if (!nvml) throw new Error("NVML is not available");
  return gpus.map((g) => nvml.memory(g.pciBusId).usedBytes);
}

/** Used memory once it stops moving (a runtime that just exited may still be releasing its contexts). */
export async function settledMemory(timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let last = usedMemory();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const now = usedMemory();
    if (now.every((v, i) => v === last[i])) return now;
    last = now;
  }
  return last;
}

/** Options of a generated probe function. */
export interface ProbeOptions {
  device: "cuda" | number[];
  instances: number;
  gpuProvider?: "cuda" | "tensorrt" | "tensorrt-or-cuda";
}

/**
 * A function that runs an ONNX Runtime session (the mlp model) and isolane's
 * resize kernel in the same isolate, in either order, and reports its lane.
 */
export function probeModule({ device, instances, gpuProvider = "cuda" }: ProbeOptions): string {
  return `import { defineFunction, Tensor, z } from "isolane";

export default defineFunction({
  description: "GPU lane probe",
  input: z.object({
    x: z.array(z.array(z.number()).length(4)).min(1),
    order: z.enum(["ort_first", "kernel_first"]).default("ort_first"),
    image: z.object({ width: z.number().int(), height: z.number().int(), rgba: z.array(z.number()) }).optional(),
  }),
  output: z.object({
    y: z.array(z.array(z.number())),
    tensor: z.array(z.number()).nullable(),
    before: z.unknown(),
    after: z.unknown(),
    lane: z.object({ device: z.number(), stream: z.string(), context: z.string() }),
    streamUse: z.record(z.string(), z.number()),
  }),
  models: { mlp: "mlp.onnx" },
  device: ${JSON.stringify(device)},
  instances: ${instances},
  // A process-hosted CUDA lane maps the CUDA libraries (cuBLAS, cuDNN): hundreds of MB resident before any work.
  memoryLimitMb: 4096,
  gpuProvider: ${JSON.stringify(gpuProvider)},
  queueDepth: 256,
  timeoutMs: 120000,
  async handler({ x, order, image }, { models, gpu }) {
    if (!gpu) throw new Error("this isolate has no GPU lane");
    const before = gpu.binding();
    const runOrt = async () => {
      const { y } = await models.mlp.run({ x: new Tensor("float32", Float32Array.from(x.flat()), [x.length, 4]) });
      const data = y.data as Float32Array;
      return Array.from({ length: y.dims[0] }, (_, r) => Array.from(data.subarray(r * 3, r * 3 + 3)));
    };
    const runKernel = () =>
      image
        ? Array.from(gpu.resizeNormalize(
          { width: image.width, height: image.height, data: Uint8Array.from(image.rgba) },
          {
            region: { x: 0, y: 0, width: image.width, height: image.height },
            width: Math.ceil(image.width * 0.75),
            height: Math.ceil(image.height * 0.75),
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
          },
        ))
        : null;
    let y: number[][];
    let tensor: number[] | null;
    if (order === "ort_first") {
      y = await runOrt();
      tensor = runKernel();
    } else {
      tensor = runKernel();
      y = await runOrt();
    }
    return {
      y,
      tensor,
      before,
      after: gpu.binding(),
      lane: { device: gpu.device, stream: gpu.stream, context: gpu.context },
      streamUse: gpu.streamUse(),
    };
  },
});
`;
}

/** Writes a functions folder with the given probe functions (each gets a copy of mlp.onnx). */
export async function writeFunctions(functions: Record<string, ProbeOptions>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-gpu-" });
  const mlp = await Deno.readFile(new URL("../../functions/mlp/mlp.onnx", import.meta.url));
  for (const [name, options] of Object.entries(functions)) {
    await Deno.mkdir(join(dir, name));
    await Deno.writeTextFile(join(dir, name, "mod.ts"), probeModule(options));
    await Deno.writeFile(join(dir, name, "mlp.onnx"), mlp);
  }
  return dir;
}

/** A small RGBA test image with gradients in every channel, so that wrong sampling shows. */
export function testImage(width = 64, height = 48): { width: number; height: number; rgba: number[] } {
  const rgba: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) rgba.push((x * 4) % 256, (y * 5) % 256, (x * y) % 256, 255);
  }
  return { width, height, rgba };
}
