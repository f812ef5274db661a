/**
 * isolane's FFI layer over CUDA: the driver API, lanes, kernels, NVML and
 * device discovery. Imports nothing from `src/`.
 * @module
 */
export {
  type CudaDeviceInfo,
  CudaDriver,
  type CudaSchedule,
  defaultStreamHandles,
  openCudaDriver,
  scheduleFlags,
  scheduleOf,
  streamNonBlocking,
} from "./cuda_driver.ts";
export { CudaError } from "./cuda_error.ts";
export { type Binding, hex, Lane } from "./lane.ts";
export { Kernels, kernelsPtxUrl, type ResizeNormalizeOptions, type RgbaImage, type WarpOptions } from "./kernels.ts";
export { type DeviceMemory, Nvml } from "./nvml.ts";
export { DeviceMemoryHolder } from "./held_memory.ts";
export { discoverDevices, type GpuInventory, probeLibrary, tensorRtLibrary } from "./devices.ts";
