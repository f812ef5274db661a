/**
 * Device discovery for the host: which CUDA devices exist, and whether ONNX
 * Runtime's CUDA and TensorRT providers can be used. Creates no context.
 * @module
 */
import { type CudaDeviceInfo, openCudaDriver } from "./cuda_driver.ts";

/** What the host can use. */
export interface GpuInventory {
  /** Visible devices (after `CUDA_VISIBLE_DEVICES`). */
  devices: CudaDeviceInfo[];
  driverVersion: string | null;
  /** Why there is no usable GPU, when there is none. */
  reason?: string;
}

/** Lists the visible CUDA devices; on a machine without a driver, says so once. */
export function discoverDevices(): GpuInventory {
  const opened = openCudaDriver();
  if (!opened.ok) return { devices: [], driverVersion: null, reason: opened.reason };
  const { driver } = opened;
  const count = driver.deviceCount();
  const devices = Array.from({ length: count }, (_, i) => driver.deviceInfo(i));
  return {
    devices,
    driverVersion: driver.version(),
    ...(count === 0 ? { reason: "the CUDA driver sees no device (CUDA_VISIBLE_DEVICES?)" } : {}),
  };
}

/** Whether a shared library can be loaded, and the loader's answer if not. */
export function probeLibrary(name: string): { ok: true } | { ok: false; reason: string } {
  try {
    Deno.dlopen(name, {}).close();
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

/** TensorRT 10's runtime library, which ONNX Runtime's TensorRT provider needs. */
export const tensorRtLibrary = "libnvinfer.so.10";
