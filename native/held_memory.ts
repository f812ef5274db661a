/**
 * Device memory that outlives the lane that allocated it. Every Worker-hosted
 * lane of a device shares the device's primary context, so a block one
 * lane's isolate allocated (`cuMemAlloc`) is valid in the others, and the
 * runtime's main thread can free it. While it holds a block, the holder
 * keeps one retain of the device's primary context, so neither the context
 * nor the block ends when the lanes do.
 *
 * @example
 * ```ts
 * const holder = new DeviceMemoryHolder(driver);
 * const free = holder.hold(0, address); // a lane's cuMemAlloc on device 0
 * free(); // cuMemFree on the main thread, then the context's retain is released
 * ```
 * @module
 */
import type { CudaDriver } from "./cuda_driver.ts";

/** Holds device memory for the runtime's main thread and frees it there. */
export class DeviceMemoryHolder {
  readonly #driver: CudaDriver;

  constructor(driver: CudaDriver) {
    this.#driver = driver;
  }

  /**
   * Takes over `address` on `device`: memory allocated in the device's
   * primary context, by any thread. Returns the function that frees it
   * (once; later calls do nothing).
   * @throws {CudaError} when the device's primary context cannot be retained.
   */
  hold(device: number, address: bigint): () => void {
    const driver = this.#driver;
    const dev = driver.device(device);
    const context = driver.primaryContextRetain(dev);
    let held = true;
    return function freeHeldMemory() {
      if (!held) return;
      held = false;
      const previous = driver.currentContext();
      try {
        driver.setCurrentContext(context);
        // Work a lane queued that still reads the block finishes first.
        driver.contextSynchronize();
        driver.free(address);
      } finally {
        driver.setCurrentContext(previous);
        driver.primaryContextRelease(dev);
      }
    };
  }
}
