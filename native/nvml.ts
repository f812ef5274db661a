/**
 * Per-device memory from NVML (`libnvidia-ml.so.1`). Unlike `cuMemGetInfo`,
 * NVML needs no CUDA context, so reading device 0's memory does not itself
 * put a context (and its memory) on device 0.
 * @module
 */

const symbols = {
  nvmlInit_v2: { parameters: [], result: "i32" },
  nvmlDeviceGetHandleByPciBusId_v2: { parameters: ["buffer", "buffer"], result: "i32" },
  nvmlDeviceGetMemoryInfo: { parameters: ["u64", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Memory of one device, in bytes. */
export interface DeviceMemory {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
}

/** Reads device memory by PCI bus id. */
export class Nvml {
  private constructor(private lib: Deno.DynamicLibrary<typeof symbols>) {}

  /** Opens NVML; `null` where there is none. */
  static open(): Nvml | null {
    try {
      const lib = Deno.dlopen("libnvidia-ml.so.1", symbols);
      if (lib.symbols.nvmlInit_v2() !== 0) return null;
      return new Nvml(lib);
    } catch {
      return null;
    }
  }

  /** Memory of the device at `pciBusId`. */
  memory(pciBusId: string): DeviceMemory {
    const handle = new BigUint64Array(1);
    const id = new TextEncoder().encode(pciBusId + "\0");
    const code = this.lib.symbols.nvmlDeviceGetHandleByPciBusId_v2(id, handle);
    if (code !== 0) throw new Error(`nvmlDeviceGetHandleByPciBusId failed for ${pciBusId}: NVML error ${code}`);
    const info = new BigUint64Array(3);
    const status = this.lib.symbols.nvmlDeviceGetMemoryInfo(handle[0], info);
    if (status !== 0) throw new Error(`nvmlDeviceGetMemoryInfo failed for ${pciBusId}: NVML error ${status}`);
    return { totalBytes: Number(info[0]), freeBytes: Number(info[1]), usedBytes: Number(info[2]) };
  }
}
