/**
 * Device discovery, for the composition root: the GPUs usable here (visible
 * to the driver, with ONNX Runtime's CUDA provider installed), TensorRT's
 * presence, NVML memory readings and the kernels' PTX. Routes never touch the
 * native layer; they get these results.
 * @module
 */
import { fileURLToPath } from "node:url";
import { keepOrtLoaded, ortLibraryPath } from "../native/ort/mod.ts";
import {
  DeviceMemoryHolder,
  discoverDevices,
  kernelsPtxUrl,
  Nvml,
  openCudaDriver,
  probeLibrary,
  tensorRtLibrary,
} from "../native/mod.ts";
import { cudaProviderStatus } from "./inference/providers.ts";
import type { DeviceInventory } from "./pool/plan_lanes.ts";
import type { CudaSchedule } from "./protocol.ts";
import type { WeightMemory } from "./pool/shared_weights.ts";
import type { DeviceSources } from "./server/devices_report.ts";

/**
 * Keeps ONNX Runtime's library and libffi loaded on the main thread for the
 * process's life, so that a nonblocking run outliving its crashed isolate
 * never runs into a closed library (`keepOrtLoaded`). Says why it could not.
 */
export function holdOrtLibrary(nodeModules: string): { ok: true } | { ok: false; reason: string } {
  try {
    keepOrtLoaded(ortLibraryPath(nodeModules));
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

/** What the runtime learns of its devices at start-up. */
export interface DetectedDevices {
  /** What lanes may be planned on. */
  inventory: DeviceInventory;
  /** What the API and metrics report (devices, driver, memory from NVML). */
  sources: DeviceSources;
  /** The kernels' PTX, read by isolates on CUDA lanes. */
  kernelsPtxPath: string;
  /** Holds, on the main thread, device memory that a lane uploaded for a function's other lanes (CUDA only). */
  weightMemory?: WeightMemory;
}

/**
 * The GPUs usable here, and the scheduling (`schedule`) their lanes set on each primary context. Without a driver, a device or ONNX Runtime's CUDA
 * provider, everything runs on the CPU and `inventory.reason` says why.
 *
 * @example
 * ```ts
 * const { inventory } = detectDevices("node_modules");
 * inventory.cuda; // [] on a CPU machine
 * ```
 */
export function detectDevices(nodeModules: string, schedule: CudaSchedule = "auto"): DetectedDevices {
  const found = discoverDevices();
  const provider = cudaProviderStatus(nodeModules);
  const usable = found.devices.length > 0 && provider.ok;
  const reason = found.reason ?? (provider.ok ? undefined : provider.reason);
  const tensorRt = usable ? probeLibrary(tensorRtLibrary) : { ok: false as const, reason: "no usable GPU" };
  const nvml = found.devices.length > 0 ? Nvml.open() : null;
  const driver = usable ? openCudaDriver() : null;
  return {
    inventory: {
      cuda: usable ? found.devices.map((d) => d.index) : [],
      ...(reason ? { reason } : {}),
      tensorRt,
      // "auto" leaves the driver's default alone: lanes set nothing.
      ...(usable && schedule !== "auto" ? { schedule } : {}),
    },
    sources: {
      devices: found.devices,
      driverVersion: found.driverVersion,
      ...(reason ? { reason } : {}),
      memory(pciBusId) {
        if (!nvml) return null;
        const { usedBytes, totalBytes } = nvml.memory(pciBusId);
        return { usedBytes, totalBytes };
      },
    },
    kernelsPtxPath: fileURLToPath(kernelsPtxUrl),
    ...(driver?.ok ? { weightMemory: new DeviceMemoryHolder(driver.driver) } : {}),
  };
}
