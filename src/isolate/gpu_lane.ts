/**
 * Opens an isolate's GPU lane on the isolate's own thread: the device's
 * primary context made current, a non-blocking stream, and isolane's kernels.
 * Runs before ONNX Runtime loads and before the ffi permission is dropped.
 * @module
 */
import { hex, Kernels, Lane, openCudaDriver } from "../../native/mod.ts";
import type { GpuLane } from "../sdk.ts";
import type { CudaSchedule, LaneInfo } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";

/** An open lane, what handlers see of it, and what the host is told. */
export interface OpenedLane {
  lane: Lane;
  kernels: Kernels;
  gpu: GpuLane;
  info: LaneInfo;
}

/** Binds `device` on this thread and loads the kernels; throws `IsolaneError` saying why it cannot. */
export async function openGpuLane(
  fn: string,
  device: number,
  ptxPath: string,
  schedule?: CudaSchedule,
): Promise<OpenedLane> {
  const opened = openCudaDriver();
  if (!opened.ok) throw new IsolaneError("function_unavailable", `Cannot load function '${fn}': ${opened.reason}`);
  let lane: Lane;
  try {
    lane = Lane.open(opened.driver, device, schedule);
  } catch (error) {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${fn}': binding CUDA device ${device} failed: ${(error as Error).message}`,
    );
  }
  const boundBeforeWork = lane.binding();
  const kernels = Kernels.load(lane, await Deno.readFile(ptxPath));
  const gpu: GpuLane = {
    device,
    context: hex(lane.context),
    stream: hex(lane.stream),
    binding: () => lane.binding(),
    resizeNormalize: (image, options) => kernels.resizeNormalize(image, { ...options }),
    resizeNormalizeToDevice: (image, options) => kernels.resizeNormalizeToDevice(image, { ...options }),
    warpPerspectiveToDevice: (image, options) => kernels.warpPerspectiveToDevice(image, { ...options }),
    streamUse: () => Object.fromEntries(kernels.streamUse),
    memory: () => lane.memory(),
  };
  const info: LaneInfo = {
    device,
    context: gpu.context,
    stream: gpu.stream,
    streamFlags: opened.driver.streamFlags(lane.stream),
    schedule: lane.schedule(),
    boundBeforeWork,
  };
  return { lane, kernels, gpu, info };
}
