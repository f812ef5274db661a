/**
 * Plans the lanes of a function: which device each of its isolates runs on.
 * @module
 */
import type { LanePlan } from "../protocol.ts";
import type { DeviceOption } from "../sdk.ts";
import { IsolaneError } from "../errors.ts";

/** The GPUs the runtime can use. */
export interface DeviceInventory {
  /** CUDA device indices usable for ONNX Runtime (empty on a CPU machine). */
  cuda: number[];
  /** Why there is no usable GPU, when there is none. */
  reason?: string;
}

/**
 * `instances` isolates per device, spread round-robin over the devices:
 * `"cpu"` is CPU only, `"auto"` is every GPU if any is usable else the CPU,
 * `"cuda"` is every GPU (an error without one), a list is those GPUs.
 *
 * @example
 * ```ts
 * planLanes("f", { device: [0, 1], instances: 2 }, { cuda: [0, 1] });
 * // cuda:0, cuda:1, cuda:0, cuda:1
 * ```
 */
export function planLanes(
  fn: string,
  { device, instances }: { device: DeviceOption; instances: number },
  inventory: DeviceInventory,
): LanePlan[] {
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
  const lanes: LanePlan[] = [];
  for (let i = 0; i < instances; i++) {
    if (devices === null) lanes.push({ kind: "cpu" });
    else for (const d of devices) lanes.push({ kind: "cuda", device: d });
  }
  return lanes;
}
