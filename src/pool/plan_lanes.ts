/**
 * Plans the lanes of a function: which device each of its isolates runs on,
 * and which ONNX Runtime provider its sessions use there.
 * @module
 */
import type { CudaSchedule, GpuProvider, LanePlan } from "../protocol.ts";
import type { FunctionOptions } from "../sdk.ts";
import { IsolaneError } from "../errors.ts";

/** The GPUs and GPU libraries the runtime can use. */
export interface DeviceInventory {
  /** CUDA device indices usable for ONNX Runtime (empty on a CPU machine). */
  cuda: number[];
  /** Why there is no usable GPU, when there is none. */
  reason?: string;
  /** Whether TensorRT's runtime library loads, and why not. */
  tensorRt: { ok: true } | { ok: false; reason: string };
  /** The primary contexts' scheduling that CUDA lanes set (`ISOLANE_CUDA_SYNC`; absent: the driver's default). */
  schedule?: CudaSchedule;
}

/** Lanes and what was decided on the way (a fallback, say). */
export interface LanePlanResult {
  lanes: LanePlan[];
  notes: string[];
}

function gpuProvider(
  fn: string,
  wanted: FunctionOptions["gpuProvider"],
  inventory: DeviceInventory,
  notes: string[],
): GpuProvider {
  if (wanted === "cuda") return "cuda";
  if (inventory.tensorRt.ok) return "tensorrt";
  const missing = `TensorRT (libnvinfer.so.10) cannot be loaded: ${inventory.tensorRt.reason}`;
  if (wanted === "tensorrt") {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${fn}': it asks for ONNX Runtime's TensorRT provider, but ${missing}`,
    );
  }
  notes.push(`TensorRT not available, using the CUDA provider instead: ${missing}`);
  return "cuda";
}

/**
 * `instances` isolates per device, spread round-robin over the devices:
 * `"cpu"` is CPU only, `"auto"` is every GPU if any is usable else the CPU,
 * `"cuda"` is every GPU (an error without one), a list is those GPUs.
 *
 * @example
 * ```ts
 * planLanes("f", { device: [0, 1], instances: 2, gpuProvider: "cuda" }, inventory);
 * // cuda:0, cuda:1, cuda:0, cuda:1
 * ```
 */
export function planLanes(
  fn: string,
  { device, instances, gpuProvider: wanted }: Pick<FunctionOptions, "device" | "instances" | "gpuProvider">,
  inventory: DeviceInventory,
): LanePlanResult {
  let devices: number[] | null;
  if (device === "cpu" || (device === "auto" && inventory.cuda.length === 0)) {
    devices = null;
  } else if (device === "auto" || device === "cuda") {
    if (inventory.cuda.length === 0) {
      throw new IsolaneError(
        "function_unavailable",
        `Cannot load function '${fn}': it needs a GPU (device: "cuda") but ${
          inventory.reason ?? "no CUDA device is usable"
        }`,
      );
    }
    devices = inventory.cuda;
  } else {
    const missing = device.filter((d) => !inventory.cuda.includes(d));
    if (missing.length > 0) {
      const have = inventory.cuda.length > 0
        ? `usable devices are ${inventory.cuda.join(", ")}`
        : (inventory.reason ?? "no CUDA device is usable");
      throw new IsolaneError(
        "function_unavailable",
        `Cannot load function '${fn}': it asks for CUDA device ${missing.join(", ")} but ${have}`,
      );
    }
    devices = [...new Set(device)];
  }
  const notes: string[] = [];
  const provider = devices === null ? "cuda" : gpuProvider(fn, wanted, inventory, notes);
  const lanes: LanePlan[] = [];
  for (let i = 0; i < instances; i++) {
    if (devices === null) lanes.push({ kind: "cpu" });
    else {
      for (const d of devices) {
        lanes.push({
          kind: "cuda",
          device: d,
          provider,
          ...(inventory.schedule ? { schedule: inventory.schedule } : {}),
        });
      }
    }
  }
  return { lanes, notes };
}
