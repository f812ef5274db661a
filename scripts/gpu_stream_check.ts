/**
 * Which stream each GPU kernel of a lane's work really ran on, as NVIDIA
 * Nsight Compute (`ncu`) observed it: a lane's ONNX Runtime session (C API,
 * `user_compute_stream`, IO binding) and isolane's own kernel, then every
 * kernel ncu saw is matched against the lane stream's id (`cuStreamGetId`,
 * the id profilers print). Exits 1 if any kernel ran on another stream.
 *
 * GPU host only: `deno run -A scripts/gpu_stream_check.ts [--json out.json]`
 * (`NCU` names the ncu binary; on Firecracker hosts `--clock-control none` is
 * required and used).
 * @module
 */
import { fileURLToPath } from "node:url";
import { Kernels, kernelsPtxUrl, Lane, openCudaDriver } from "../native/mod.ts";
import { NativeSession, OrtEnv, ortLibraryPath } from "../native/ort/mod.ts";
import { denseReluModel, writeTempModel } from "../native/ort/test_models.ts";
import { Tensor } from "onnxruntime-common";

const nodeModules = fileURLToPath(new URL("../node_modules", import.meta.url));

/** The work ncu watches: prints the lane stream's id, then runs ORT and our kernel on the lane. */
async function work(): Promise<void> {
  const opened = openCudaDriver();
  if (!opened.ok) throw new Error(opened.reason);
  const { driver } = opened;
  using lane = Lane.open(driver, 0);
  console.log(`lane-stream-id ${driver.streamId(lane.stream)}`);
  const path = await writeTempModel(denseReluModel({ layers: 4, width: 512 }));
  using env = OrtEnv.open({ libraryPath: ortLibraryPath(nodeModules) });
  const session = NativeSession.create(env, path, {
    provider: "cuda",
    deviceId: 0,
    stream: lane.stream,
    pinned: lane.pinnedMemory(),
    checkPlacement: false,
  });
  for (const rows of [1, 64, 64]) {
    await session.run({ x: new Tensor("float32", new Float32Array(rows * 512).fill(0.5), [rows, 512]) });
  }
  await session.release();
  using kernels = Kernels.load(lane, await Deno.readFile(kernelsPtxUrl));
  const image = { width: 64, height: 48, data: new Uint8Array(64 * 48 * 4).fill(128) };
  kernels.resizeNormalize(image, {
    region: { x: 0, y: 0, width: 64, height: 48 },
    width: 32,
    height: 32,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
  });
  console.log("work-done");
}

/** One kernel as ncu reports it. */
interface ObservedKernel {
  name: string;
  stream: number;
  device: number;
}

/** Runs the work under ncu and compares every kernel's stream with the lane's. */
async function check(): Promise<number> {
  const ncu = Deno.env.get("NCU") ?? "ncu";
  const output = await new Deno.Command(ncu, {
    args: [
      "--clock-control",
      "none",
      "--target-processes",
      "all",
      "--metrics",
      "gpu__time_duration.sum",
      "--launch-count",
      "400",
      Deno.execPath(),
      "run",
      "-A",
      fileURLToPath(import.meta.url),
      "--work",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const laneId = Number(/lane-stream-id (\d+)/.exec(text)?.[1] ?? NaN);
  const kernels: ObservedKernel[] = [];
  for (
    const match of text.matchAll(/^ {2}(\S[^\n]*?) \([^\n]*?\)x\([^\n]*?\), Context \d+, Stream (\d+), Device (\d+)/gm)
  ) {
    kernels.push({ name: match[1], stream: Number(match[2]), device: Number(match[3]) });
  }
  const byStream: Record<string, number> = {};
  for (const k of kernels) byStream[k.stream] = (byStream[k.stream] ?? 0) + 1;
  const elsewhere = kernels.filter((k) => k.stream !== laneId);
  const report = {
    ncuExit: output.code,
    workDone: text.includes("work-done"),
    laneStreamId: laneId,
    kernels: kernels.length,
    kernelsByStream: byStream,
    elsewhere: elsewhere.slice(0, 20),
    kernelNames: [...new Set(kernels.map((k) => k.name.slice(0, 80)))].slice(0, 40),
  };
  console.log(JSON.stringify(report, null, 2));
  const jsonAt = Deno.args.indexOf("--json");
  if (jsonAt >= 0) await Deno.writeTextFile(Deno.args[jsonAt + 1], JSON.stringify(report, null, 2));
  if (!report.workDone || kernels.length === 0) {
    console.error(text.slice(-4000));
    return 2;
  }
  return elsewhere.length === 0 ? 0 : 1;
}

if (import.meta.main) {
  if (Deno.args.includes("--work")) await work();
  else Deno.exit(await check());
}
