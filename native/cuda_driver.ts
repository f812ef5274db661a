/**
 * A typed binding of the CUDA driver API (`libcuda.so.1`) over Deno FFI.
 *
 * Handles (contexts, streams, modules, functions, device pointers) cross as
 * `u64` and out-parameters are typed arrays, so that no call needs Deno's
 * pointer operations: an isolate keeps using the driver after it has dropped
 * the ffi permission (calls through symbols opened earlier still work, while
 * `Deno.UnsafePointer*` would not).
 *
 * @example
 * ```ts
 * const cuda = openCudaDriver();
 * if (cuda.ok) console.log(cuda.driver.deviceCount());
 * ```
 * @module
 */
import { CudaError, type ErrorTable } from "./cuda_error.ts";

const symbols = {
  cuInit: { parameters: ["u32"], result: "i32" },
  cuDriverGetVersion: { parameters: ["buffer"], result: "i32" },
  cuDeviceGetCount: { parameters: ["buffer"], result: "i32" },
  cuDeviceGet: { parameters: ["buffer", "i32"], result: "i32" },
  cuDeviceGetName: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDeviceGetAttribute: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDeviceTotalMem_v2: { parameters: ["buffer", "i32"], result: "i32" },
  cuDeviceGetPCIBusId: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDevicePrimaryCtxRetain: { parameters: ["buffer", "i32"], result: "i32" },
  cuDevicePrimaryCtxRelease_v2: { parameters: ["i32"], result: "i32" },
  cuDevicePrimaryCtxSetFlags_v2: { parameters: ["i32", "u32"], result: "i32" },
  cuDevicePrimaryCtxGetState: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  cuCtxSetCurrent: { parameters: ["u64"], result: "i32" },
  cuCtxGetCurrent: { parameters: ["buffer"], result: "i32" },
  cuCtxGetDevice: { parameters: ["buffer"], result: "i32" },
  cuCtxSynchronize: { parameters: [], result: "i32" },
  cuMemGetInfo_v2: { parameters: ["buffer", "buffer"], result: "i32" },
  cuStreamCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuThreadExchangeStreamCaptureMode: { parameters: ["buffer"], result: "i32" },
  cuStreamDestroy_v2: { parameters: ["u64"], result: "i32" },
  cuStreamSynchronize: { parameters: ["u64"], result: "i32" },
  cuStreamGetFlags: { parameters: ["u64", "buffer"], result: "i32" },
  // CUDA 12.0+: the stream's unique id, the one profilers (ncu, nsys) print.
  cuStreamGetId: { parameters: ["u64", "buffer"], result: "i32", optional: true },
  cuModuleLoadData: { parameters: ["buffer", "buffer"], result: "i32" },
  cuModuleUnload: { parameters: ["u64"], result: "i32" },
  cuModuleGetFunction: { parameters: ["buffer", "u64", "buffer"], result: "i32" },
  cuLaunchKernel: {
    parameters: ["u64", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u64", "u64", "u64"],
    result: "i32",
  },
  cuMemAllocAsync: { parameters: ["buffer", "usize", "u64"], result: "i32" },
  cuMemFreeAsync: { parameters: ["u64", "u64"], result: "i32" },
  cuMemsetD32Async: { parameters: ["u64", "u32", "usize", "u64"], result: "i32" },
  cuMemHostAlloc: { parameters: ["buffer", "usize", "u32"], result: "i32" },
  cuMemFreeHost: { parameters: ["u64"], result: "i32" },
  cuMemcpyHtoDAsync_v2: { parameters: ["u64", "buffer", "usize", "u64"], result: "i32" },
  cuMemcpyDtoHAsync_v2: { parameters: ["buffer", "u64", "usize", "u64"], result: "i32" },
  // Copies between device memory and host memory at an address (pinned buffers the caller owns).
  cuMemcpyHtoDAsyncFromAddress: {
    name: "cuMemcpyHtoDAsync_v2",
    parameters: ["u64", "u64", "usize", "u64"],
    result: "i32",
  },
  cuMemcpyDtoHAsyncToAddress: {
    name: "cuMemcpyDtoHAsync_v2",
    parameters: ["u64", "u64", "usize", "u64"],
    result: "i32",
  },
  // Copies within device memory (a lane's device tensors into a session's bound inputs; letterboxing).
  cuMemcpyDtoDAsync_v2: { parameters: ["u64", "u64", "usize", "u64"], result: "i32" },
  cuMemcpy2DAsync_v2: { parameters: ["buffer", "u64"], result: "i32" },
  cuMemAlloc_v2: { parameters: ["buffer", "usize"], result: "i32" },
  cuMemFree_v2: { parameters: ["u64"], result: "i32" },
  cuMemHostGetDevicePointer_v2: { parameters: ["buffer", "u64", "u32"], result: "i32" },
  cuStreamQuery: { parameters: ["u64"], result: "i32" },
  cuEventCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuEventDestroy_v2: { parameters: ["u64"], result: "i32" },
  cuEventRecord: { parameters: ["u64", "u64"], result: "i32" },
  cuEventSynchronize: { parameters: ["u64"], result: "i32" },
  cuEventElapsedTime: { parameters: ["buffer", "u64", "u64"], result: "i32" },
  // CUDA 12+: a stream waits until a 32-bit word in memory reaches a value (stream memory operations).
  cuStreamWaitValue32_v2: { parameters: ["u64", "u64", "u32", "u32"], result: "i32", optional: true },
  /** `cuCtxGetCurrent` on Deno's blocking-thread pool: what a `nonblocking` FFI call's thread has current. */
  cuCtxGetCurrentNonblocking: { name: "cuCtxGetCurrent", parameters: ["buffer"], result: "i32", nonblocking: true },
  cuGetErrorName: { parameters: ["i32", "buffer"], result: "i32" },
  cuGetErrorString: { parameters: ["i32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** `CU_STREAM_NON_BLOCKING`: the stream does not synchronise with the legacy default stream. */
export const streamNonBlocking = 0x1;
/**
 * How a thread that waits for the GPU (a stream or context synchronisation) treats its CPU, as the primary
 * context's scheduling flags say (`CU_CTX_SCHED_*`, the CUDA driver API's "Primary Context Management"):
 * `auto` (0: spin while the process has fewer active contexts than cores, else yield), `spin` (1), `yield` (2),
 * `blocking` (4, `CU_CTX_SCHED_BLOCKING_SYNC`: sleep on a primitive until the GPU is done).
 */
export type CudaSchedule = "auto" | "spin" | "yield" | "blocking";
/** `CU_CTX_SCHED_*` by {@link CudaSchedule}. */
export const scheduleFlags: Readonly<Record<CudaSchedule, number>> = { auto: 0, spin: 1, yield: 2, blocking: 4 };
/** `CU_CTX_SCHED_MASK`: the flags' scheduling bits. */
export const scheduleMask = 0x7;
/** The {@link CudaSchedule} that primary-context flags hold (`auto` for a value the driver may add later). */
export function scheduleOf(flags: number): CudaSchedule {
  const bits = flags & scheduleMask;
  return bits === 1 ? "spin" : bits === 2 ? "yield" : bits === 4 ? "blocking" : "auto";
}
/** `CUDA_ERROR_NOT_READY`: `cuStreamQuery`'s answer while work is pending. */
export const cudaErrorNotReady = 600;
/** The special stream handles that mean a default stream: 0, `CU_STREAM_LEGACY`, `CU_STREAM_PER_THREAD`. */
export const defaultStreamHandles: readonly bigint[] = [0n, 1n, 2n];

const attribute = { computeCapabilityMajor: 75, computeCapabilityMinor: 76 } as const;

/** A device as the driver reports it. */
export interface CudaDeviceInfo {
  /** Index as this process sees it (after `CUDA_VISIBLE_DEVICES`). */
  index: number;
  name: string;
  computeCapability: string;
  totalBytes: number;
  /** PCI bus id, `0000:65:00.0` style: stable across processes, unlike indices. */
  pciBusId: string;
}

/** The typed driver. Every method throws {@link CudaError} on failure. */
export class CudaDriver {
  #s: Symbols;
  #errors: ErrorTable;

  /** Wraps an opened library; use {@link openCudaDriver}. */
  constructor(lib: Deno.DynamicLibrary<typeof symbols>, errors: ErrorTable) {
    this.#s = lib.symbols;
    this.#errors = errors;
  }

  #check(call: string, code: number): void {
    if (code !== 0) throw new CudaError(call, code, this.#errors);
  }

  #u64(call: keyof Symbols, invoke: (out: BigUint64Array) => number): bigint {
    const out = new BigUint64Array(1);
    this.#check(call, invoke(out));
    return out[0];
  }

  #i32(call: keyof Symbols, invoke: (out: Int32Array) => number): number {
    const out = new Int32Array(1);
    this.#check(call, invoke(out));
    return out[0];
  }

  /** Driver version as `major.minor`. */
  version(): string {
    const v = this.#i32("cuDriverGetVersion", (o) => this.#s.cuDriverGetVersion(o));
    return `${Math.floor(v / 1000)}.${(v % 1000) / 10}`;
  }

  /** Visible devices. */
  deviceCount(): number {
    return this.#i32("cuDeviceGetCount", (o) => this.#s.cuDeviceGetCount(o));
  }

  /** The device handle (an ordinal) of index `i`. */
  device(i: number): number {
    return this.#i32("cuDeviceGet", (o) => this.#s.cuDeviceGet(o, i));
  }

  /** Name, compute capability, memory and PCI bus id of device `i`. */
  deviceInfo(i: number): CudaDeviceInfo {
    const dev = this.device(i);
    const text = (call: "cuDeviceGetName" | "cuDeviceGetPCIBusId") => {
      const buf = new Uint8Array(256);
      this.#check(call, this.#s[call](buf, buf.length, dev));
      return new TextDecoder().decode(buf.subarray(0, buf.indexOf(0)));
    };
    const attr = (a: number) => this.#i32("cuDeviceGetAttribute", (o) => this.#s.cuDeviceGetAttribute(o, a, dev));
    const total = this.#u64("cuDeviceTotalMem_v2", (o) => this.#s.cuDeviceTotalMem_v2(o, dev));
    return {
      index: i,
      name: text("cuDeviceGetName"),
      computeCapability: `${attr(attribute.computeCapabilityMajor)}.${attr(attribute.computeCapabilityMinor)}`,
      totalBytes: Number(total),
      pciBusId: text("cuDeviceGetPCIBusId").toLowerCase(),
    };
  }

  /** Retains the primary context of a device (the one ONNX Runtime and the runtime API use). */
  primaryContextRetain(dev: number): bigint {
    return this.#u64("cuDevicePrimaryCtxRetain", (o) => this.#s.cuDevicePrimaryCtxRetain(o, dev));
  }

  /** Releases one retain of a device's primary context. */
  primaryContextRelease(dev: number): void {
    this.#check("cuDevicePrimaryCtxRelease", this.#s.cuDevicePrimaryCtxRelease_v2(dev));
  }

  /** A device's primary context: its flags (`CU_CTX_*`) and whether it is active (retained by someone). */
  primaryContextState(dev: number): { flags: number; active: boolean } {
    const flags = new Uint32Array(1);
    const active = new Int32Array(1);
    this.#check("cuDevicePrimaryCtxGetState", this.#s.cuDevicePrimaryCtxGetState(dev, flags, active));
    return { flags: flags[0], active: active[0] !== 0 };
  }

  /** Sets a device's primary-context flags (`cuDevicePrimaryCtxSetFlags_v2`; CUDA 11+ takes them while active). */
  primaryContextSetFlags(dev: number, flags: number): void {
    this.#check("cuDevicePrimaryCtxSetFlags", this.#s.cuDevicePrimaryCtxSetFlags_v2(dev, flags));
  }

  /** Makes `ctx` current on the calling thread. */
  setCurrentContext(ctx: bigint): void {
    this.#check("cuCtxSetCurrent", this.#s.cuCtxSetCurrent(ctx));
  }

  /** Waits until all work queued in the calling thread's current context is done, on every stream. */
  contextSynchronize(): void {
    this.#check("cuCtxSynchronize", this.#s.cuCtxSynchronize());
  }

  /** The context current on the calling thread (0 if none). */
  currentContext(): bigint {
    return this.#u64("cuCtxGetCurrent", (o) => this.#s.cuCtxGetCurrent(o));
  }

  /** The device of the calling thread's current context. */
  currentDevice(): number {
    return this.#i32("cuCtxGetDevice", (o) => this.#s.cuCtxGetDevice(o));
  }

  /** Free and total memory of the current context's device. */
  memoryInfo(): { freeBytes: number; totalBytes: number } {
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    this.#check("cuMemGetInfo", this.#s.cuMemGetInfo_v2(free, total));
    return { freeBytes: Number(free[0]), totalBytes: Number(total[0]) };
  }

  /**
   * Sets how this thread's CUDA calls interact with stream captures (`cuThreadExchangeStreamCaptureMode`): 0
   * global (the driver's default: another thread's capture begun in global mode, as ONNX Runtime's CUDA graphs
   * begin theirs, makes this thread's allocations fail and breaks that capture), 1 thread-local (only this thread's
   * own captures restrict it), 2 relaxed. Returns the mode before.
   */
  exchangeCaptureMode(mode: 0 | 1 | 2): number {
    const io = new Int32Array([mode]);
    this.#check("cuThreadExchangeStreamCaptureMode", this.#s.cuThreadExchangeStreamCaptureMode(io));
    return io[0];
  }

  /** Creates a stream in the current context. */
  streamCreate(flags: number): bigint {
    return this.#u64("cuStreamCreate", (o) => this.#s.cuStreamCreate(o, flags));
  }

  /** Destroys a stream. */
  streamDestroy(stream: bigint): void {
    this.#check("cuStreamDestroy", this.#s.cuStreamDestroy_v2(stream));
  }

  /** Waits until all work on a stream is done. */
  streamSynchronize(stream: bigint): void {
    this.#check("cuStreamSynchronize", this.#s.cuStreamSynchronize(stream));
  }

  /** A stream's creation flags. */
  streamFlags(stream: bigint): number {
    const out = new Uint32Array(1);
    this.#check("cuStreamGetFlags", this.#s.cuStreamGetFlags(stream, out));
    return out[0];
  }

  /**
   * The stream's unique id (`cuStreamGetId`), as Nsight Compute and Nsight
   * Systems print it; `null` on a driver older than CUDA 12.0.
   */
  streamId(stream: bigint): bigint | null {
    const get = this.#s.cuStreamGetId;
    if (!get) return null;
    const out = new BigUint64Array(1);
    this.#check("cuStreamGetId", get(stream, out));
    return out[0];
  }

  /** Loads a PTX (or cubin) image into the current context. */
  moduleLoadData(image: Uint8Array): bigint {
    return this.#u64("cuModuleLoadData", (o) => this.#s.cuModuleLoadData(o, image));
  }

  /** Unloads a module. */
  moduleUnload(module: bigint): void {
    this.#check("cuModuleUnload", this.#s.cuModuleUnload(module));
  }

  /** A kernel of a loaded module. */
  moduleFunction(module: bigint, name: string): bigint {
    const cname = new TextEncoder().encode(name + "\0");
    return this.#u64("cuModuleGetFunction", (o) => this.#s.cuModuleGetFunction(o, module, cname));
  }

  /** Launches a kernel on `stream`; `params` is the address of a `void*[]` argument block. */
  launch(
    fn: bigint,
    grid: [number, number, number],
    block: [number, number, number],
    stream: bigint,
    params: bigint,
  ): void {
    const code = this.#s.cuLaunchKernel(fn, ...grid, ...block, 0, stream, params, 0n);
    this.#check("cuLaunchKernel", code);
  }

  /** Allocates device memory, ordered on `stream`. */
  allocAsync(bytes: number, stream: bigint): bigint {
    return this.#u64("cuMemAllocAsync", (o) => this.#s.cuMemAllocAsync(o, BigInt(bytes), stream));
  }

  /** Fills `count` 32-bit words of device memory at `ptr` with `value`, ordered on `stream`. */
  fillAsync(ptr: bigint, value: number, count: number, stream: bigint): void {
    this.#check("cuMemsetD32Async", this.#s.cuMemsetD32Async(ptr, value >>> 0, BigInt(count), stream));
  }

  /** Frees device memory, ordered on `stream`. */
  freeAsync(ptr: bigint, stream: bigint): void {
    this.#check("cuMemFreeAsync", this.#s.cuMemFreeAsync(ptr, stream));
  }

  /**
   * Allocates page-locked host memory that the device reads and writes by DMA
   * (`cuMemHostAlloc`, portable to every context), for copies without a
   * pageable staging step. Free it with {@link hostFree}.
   */
  hostAlloc(bytes: number): bigint {
    const portable = 0x1; // CU_MEMHOSTALLOC_PORTABLE
    return this.#u64("cuMemHostAlloc", (o) => this.#s.cuMemHostAlloc(o, BigInt(bytes), portable));
  }

  /** Frees memory from {@link hostAlloc}. */
  hostFree(ptr: bigint): void {
    this.#check("cuMemFreeHost", this.#s.cuMemFreeHost(ptr));
  }

  /** Copies host bytes to the device on `stream`. */
  copyToDevice(dst: bigint, src: ArrayBufferView, stream: bigint): void {
    const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    this.#check("cuMemcpyHtoDAsync", this.#s.cuMemcpyHtoDAsync_v2(dst, bytes, BigInt(bytes.byteLength), stream));
  }

  /** Copies device bytes to the host on `stream`. */
  copyToHost(dst: ArrayBufferView, src: bigint, stream: bigint): void {
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    this.#check("cuMemcpyDtoHAsync", this.#s.cuMemcpyDtoHAsync_v2(bytes, src, BigInt(bytes.byteLength), stream));
  }

  /**
   * Copies `bytes` from host memory at `src` to the device on `stream`. From
   * pinned memory ({@link hostAlloc}) the copy is a DMA that returns at once;
   * the caller keeps `src` unchanged until the stream has passed the copy.
   */
  copyToDeviceFrom(dst: bigint, src: bigint, bytes: number, stream: bigint): void {
    this.#check("cuMemcpyHtoDAsync", this.#s.cuMemcpyHtoDAsyncFromAddress(dst, src, BigInt(bytes), stream));
  }

  /** Copies `bytes` of device memory to host memory at `dst` (pinned: asynchronous) on `stream`. */
  copyToHostAt(dst: bigint, src: bigint, bytes: number, stream: bigint): void {
    this.#check("cuMemcpyDtoHAsync", this.#s.cuMemcpyDtoHAsyncToAddress(dst, src, BigInt(bytes), stream));
  }

  /** Queues a copy of `bytes` from device memory at `src` to device memory at `dst` on `stream`. */
  copyOnDevice(dst: bigint, src: bigint, bytes: number, stream: bigint): void {
    this.#check("cuMemcpyDtoDAsync", this.#s.cuMemcpyDtoDAsync_v2(dst, src, BigInt(bytes), stream));
  }

  /**
   * Queues a copy of `height` rows of `widthBytes` each, from device memory at `src` (rows `srcPitch` bytes apart) to
   * device memory at `dst` (rows `dstPitch` bytes apart), on `stream` (`cuMemcpy2DAsync`; its `CUDA_MEMCPY2D` is
   * 128 bytes on 64-bit hosts: cuda.h).
   */
  copy2DOnDevice(
    copy: { dst: bigint; dstPitch: number; src: bigint; srcPitch: number; widthBytes: number; height: number },
    stream: bigint,
  ): void {
    const params = new DataView(new ArrayBuffer(128));
    const device = 2; // CU_MEMORYTYPE_DEVICE
    params.setUint32(16, device, true); // srcMemoryType
    params.setBigUint64(32, copy.src, true); // srcDevice
    params.setBigUint64(48, BigInt(copy.srcPitch), true);
    params.setUint32(72, device, true); // dstMemoryType
    params.setBigUint64(88, copy.dst, true); // dstDevice
    params.setBigUint64(104, BigInt(copy.dstPitch), true);
    params.setBigUint64(112, BigInt(copy.widthBytes), true); // WidthInBytes
    params.setBigUint64(120, BigInt(copy.height), true); // Height
    this.#check("cuMemcpy2DAsync", this.#s.cuMemcpy2DAsync_v2(new Uint8Array(params.buffer), stream));
  }

  /** Allocates device memory in the current context (`cuMemAlloc`), not ordered on any stream. */
  alloc(bytes: number): bigint {
    return this.#u64("cuMemAlloc_v2", (o) => this.#s.cuMemAlloc_v2(o, BigInt(bytes)));
  }

  /** Frees memory from {@link alloc}. */
  free(ptr: bigint): void {
    this.#check("cuMemFree", this.#s.cuMemFree_v2(ptr));
  }

  /** The device address of pinned host memory from {@link hostAlloc} (the same address under unified addressing). */
  hostDevicePointer(host: bigint): bigint {
    return this.#u64("cuMemHostGetDevicePointer_v2", (o) => this.#s.cuMemHostGetDevicePointer_v2(o, host, 0));
  }

  /** Whether all work on `stream` is done (`cuStreamQuery`), without waiting. */
  streamIdle(stream: bigint): boolean {
    const code = this.#s.cuStreamQuery(stream);
    if (code === cudaErrorNotReady) return false;
    this.#check("cuStreamQuery", code);
    return true;
  }

  /** Creates an event (`cuEventCreate`; flags 0: with timing). Destroy it with {@link eventDestroy}. */
  eventCreate(flags = 0): bigint {
    return this.#u64("cuEventCreate", (o) => this.#s.cuEventCreate(o, flags));
  }

  /** Destroys an event. */
  eventDestroy(event: bigint): void {
    this.#check("cuEventDestroy", this.#s.cuEventDestroy_v2(event));
  }

  /** Records `event` on `stream`: it completes when the stream's work before it is done. */
  eventRecord(event: bigint, stream: bigint): void {
    this.#check("cuEventRecord", this.#s.cuEventRecord(event, stream));
  }

  /** Waits until `event` has completed. */
  eventSynchronize(event: bigint): void {
    this.#check("cuEventSynchronize", this.#s.cuEventSynchronize(event));
  }

  /** Milliseconds between two completed events (about 0.5 µs resolution). */
  eventElapsedMs(start: bigint, end: bigint): number {
    const out = new Float32Array(1);
    this.#check("cuEventElapsedTime", this.#s.cuEventElapsedTime(out, start, end));
    return out[0];
  }

  /** Whether this driver has stream memory operations (`cuStreamWaitValue32_v2`, CUDA 12+). */
  get streamMemoryOps(): boolean {
    return this.#s.cuStreamWaitValue32_v2 !== null;
  }

  /**
   * Makes `stream` wait until the 32-bit word at device address `address`
   * is at least `value` (`cuStreamWaitValue32`, `CU_STREAM_WAIT_VALUE_GEQ`):
   * work queued behind it starts only when the host writes the word.
   * @returns false where the driver has no stream memory operations.
   */
  streamWaitValue32(stream: bigint, address: bigint, value: number): boolean {
    const wait = this.#s.cuStreamWaitValue32_v2;
    if (!wait) return false;
    this.#check("cuStreamWaitValue32", wait(stream, address, value >>> 0, 0));
    return true;
  }

  /**
   * The context current on a thread of Deno's blocking-thread pool, where
   * `nonblocking` FFI calls run (0 if none): which thread answers is the
   * pool's choice.
   */
  async currentContextOnPoolThread(): Promise<bigint> {
    const out = new BigUint64Array(1);
    this.#check("cuCtxGetCurrent", await this.#s.cuCtxGetCurrentNonblocking(out));
    return out[0];
  }
}

/** The driver, or why there is none. */
export type OpenedDriver = { ok: true; driver: CudaDriver } | { ok: false; reason: string };

let opened: OpenedDriver | undefined;

function readErrorTable(lib: Deno.DynamicLibrary<typeof symbols>): ErrorTable {
  const table: ErrorTable = new Map();
  const out = new BigUint64Array(1);
  const read = () => {
    const ptr = Deno.UnsafePointer.create(out[0]);
    return ptr ? new Deno.UnsafePointerView(ptr).getCString() : "";
  };
  // Codes are sparse below 1000; the driver answers CUDA_ERROR_INVALID_VALUE for unknown ones.
  for (let code = 0; code < 1000; code++) {
    if (lib.symbols.cuGetErrorName(code, out) !== 0) continue;
    const name = read();
    lib.symbols.cuGetErrorString(code, out);
    table.set(code, { name, text: read() });
  }
  return table;
}

/**
 * Opens `libcuda.so.1` once per thread and initialises the driver. Call it
 * while the ffi permission is granted. Never throws: on a machine without
 * a driver it says so.
 */
export function openCudaDriver(): OpenedDriver {
  if (opened) return opened;
  let lib: Deno.DynamicLibrary<typeof symbols>;
  try {
    lib = Deno.dlopen("libcuda.so.1", symbols);
  } catch (error) {
    const why = (error as Error).message.replace(/^(Could not open library: )+/, "");
    opened = { ok: false, reason: `no CUDA driver (${why})` };
    return opened;
  }
  const errors = readErrorTable(lib);
  const driver = new CudaDriver(lib, errors);
  const code = lib.symbols.cuInit(0);
  if (code !== 0) {
    opened = {
      ok: false,
      reason: `the CUDA driver did not initialise: ${new CudaError("cuInit", code, errors).message}`,
    };
    return opened;
  }
  opened = { ok: true, driver };
  return opened;
}
