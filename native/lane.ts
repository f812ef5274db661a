/**
 * A GPU lane: one device bound on the calling thread through the device's
 * primary context, and a non-blocking stream of its own. Opened by an isolate
 * on its own thread before any GPU work, closed in reverse order.
 *
 * @example
 * ```ts
 * using lane = Lane.open(driver, 0);
 * lane.binding(); // { current: <primary ctx>, device: 0, primary: true }
 * ```
 * @module
 */
import {
  type CudaDriver,
  type CudaSchedule,
  defaultStreamHandles,
  scheduleFlags,
  scheduleMask,
  scheduleOf,
  streamNonBlocking,
} from "./cuda_driver.ts";

/** What the calling thread has current, compared with the lane. */
export interface Binding {
  /** The context current on this thread (hex). */
  current: string;
  /** The device of that context. */
  device: number;
  /** Whether it is this lane's device's primary context. */
  primary: boolean;
}

/** An open lane. */
export class Lane implements Disposable {
  #closed = false;

  private constructor(
    readonly driver: CudaDriver,
    /** Device index. */
    readonly device: number,
    /** The device's primary context (retained). */
    readonly context: bigint,
    /** The lane's stream: created non-blocking, never a default stream. */
    readonly stream: bigint,
  ) {}

  /**
   * Binds `device` on the calling thread and creates the lane's stream. With `schedule`, the primary context's
   * scheduling flags are set first where they differ (they are the device's, so every lane of the process shares
   * them: give each the same); {@link schedule} reads back what the driver holds.
   * @throws {CudaError} when the driver refuses a call.
   */
  static open(driver: CudaDriver, device: number, schedule?: CudaSchedule): Lane {
    const dev = driver.device(device);
    if (schedule !== undefined) {
      const { flags } = driver.primaryContextState(dev);
      const wanted = (flags & ~scheduleMask) | scheduleFlags[schedule];
      if (wanted !== flags) driver.primaryContextSetFlags(dev, wanted);
    }
    const context = driver.primaryContextRetain(dev);
    try {
      driver.setCurrentContext(context);
      // Lanes of one process capture CUDA graphs on their own threads (ORT begins each capture in global mode):
      // one lane's capture must neither fail another's allocations nor be broken by them.
      driver.exchangeCaptureMode(1);
      const stream = driver.streamCreate(streamNonBlocking);
      if (defaultStreamHandles.includes(stream)) {
        throw new Error(`cuStreamCreate returned a default stream (${stream})`);
      }
      return new Lane(driver, device, context, stream);
    } catch (error) {
      driver.primaryContextRelease(dev);
      throw error;
    }
  }

  /** How threads that wait for this device treat their CPU, as its primary context's flags say now. */
  schedule(): CudaSchedule {
    return scheduleOf(this.driver.primaryContextState(this.driver.device(this.device)).flags);
  }

  /** What this thread has current now. */
  binding(): Binding {
    const current = this.driver.currentContext();
    const device = current === 0n ? -1 : this.driver.currentDevice();
    return { current: hex(current), device, primary: current === this.context && device === this.device };
  }

  /** Makes the lane's context current again (a library could have changed it). */
  rebind(): void {
    if (this.driver.currentContext() !== this.context) this.driver.setCurrentContext(this.context);
  }

  /** Page-locked host memory for staging copies (`cuMemHostAlloc`), freed by the caller. */
  pinnedMemory(): { alloc(bytes: number): bigint; free(address: bigint): void } {
    return { alloc: (bytes) => this.driver.hostAlloc(bytes), free: (address) => this.driver.hostFree(address) };
  }

  /**
   * Device memory ordered on the lane's stream, and copies on it: what a
   * session needs for CUDA graphs' fixed input and output buffers, and for
   * copies from and to pinned staging buffers (`uploadFrom`, `downloadTo`:
   * queued, finished by `synchronize`).
   */
  deviceMemory(): {
    alloc(bytes: number): bigint;
    free(address: bigint): void;
    upload(dst: bigint, src: ArrayBufferView): void;
    download(dst: ArrayBufferView, src: bigint): void;
    uploadFrom(dst: bigint, src: bigint, bytes: number): void;
    downloadTo(dst: bigint, src: bigint, bytes: number): void;
    copyOnDevice(dst: bigint, src: bigint, bytes: number): void;
    synchronize(): void;
  } {
    const { driver, stream } = this;
    return {
      alloc: (bytes) => driver.allocAsync(bytes, stream),
      free: (address) => driver.freeAsync(address, stream),
      upload: (dst, src) => driver.copyToDevice(dst, src, stream),
      download: (dst, src) => {
        driver.copyToHost(dst, src, stream);
        driver.streamSynchronize(stream);
      },
      uploadFrom: (dst, src, bytes) => driver.copyToDeviceFrom(dst, src, bytes, stream),
      downloadTo: (dst, src, bytes) => driver.copyToHostAt(dst, src, bytes, stream),
      copyOnDevice: (dst, src, bytes) => driver.copyOnDevice(dst, src, bytes, stream),
      synchronize: () => driver.streamSynchronize(stream),
    };
  }

  /** Free and total memory of the lane's device. */
  memory(): { freeBytes: number; totalBytes: number } {
    return this.driver.memoryInfo();
  }

  /** Destroys the stream, then releases the context. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.driver.streamSynchronize(this.stream);
    this.driver.streamDestroy(this.stream);
    this.driver.primaryContextRelease(this.driver.device(this.device));
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A handle as `0x…`, for logs and the API. */
export function hex(handle: bigint): string {
  return `0x${handle.toString(16)}`;
}
