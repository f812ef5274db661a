/**
 * The raw layer of the ONNX Runtime C API binding: the library, the
 * `OrtApi` function table of API version 29 (ORT 1.29), and the few libc
 * calls that read C memory without Deno's pointer operations.
 *
 * Everything that needs `Deno.UnsafePointer*` happens once, in
 * {@link openOrtLibrary}: reading `OrtApiBase`, reading the function table,
 * creating each `Deno.UnsafeFnPointer` and the logging callback. After that,
 * every call takes handles as `u64` (bigint) and buffers as typed arrays, and
 * C strings and pointer arrays are read with libc's `strlen` and `memcpy`,
 * so an isolate keeps using ORT after it has dropped the ffi permission.
 * @module
 */

/** `ORT_API_VERSION` of the header these indices come from (onnxruntime 1.29). */
export const ortApiVersion = 29;

/**
 * Where onnxruntime-node keeps its `libonnxruntime.so.1` on Linux x64,
 * relative to `node_modules/`. Binding the same library means one ORT and one
 * process-wide environment for both the JS API and this binding.
 */
export const ortLibraryInNodeModules = "onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1";

type Def = { parameters: readonly Param[]; result: "u64" | "i32" | "void"; nonblocking?: boolean };
const status = "u64" as const;

/**
 * The members of `struct OrtApi` that isolane calls, with their index in the
 * table (the member's position in `onnxruntime_c_api.h` of ORT 1.29, API
 * version 29; the table is append-only, so these indices hold for later
 * versions too) and their signature. Handles are `u64`; out-parameters and
 * C strings are buffers; results named `status` are `OrtStatus*` (0 = ok).
 */
export const apiMembers = {
  CreateStatus: { index: 0, parameters: ["i32", "buffer"], result: "u64" },
  GetErrorCode: { index: 1, parameters: ["u64"], result: "i32" },
  GetErrorMessage: { index: 2, parameters: ["u64"], result: "u64" },
  CreateEnv: { index: 3, parameters: ["i32", "buffer", "buffer"], result: status },
  CreateSession: { index: 7, parameters: ["u64", "buffer", "u64", "buffer"], result: status },
  Run: {
    index: 9,
    parameters: ["u64", "u64", "buffer", "buffer", "usize", "buffer", "usize", "buffer"],
    result: status,
  },
  /**
   * `Run` on Deno's blocking-thread pool: the isolate's event loop stays free, and the promise settles when ORT
   * returns. Every array is a native address (see {@link CMemory.alloc}): the call may outlive the isolate.
   */
  RunNonblocking: {
    index: 9,
    parameters: ["u64", "u64", "u64", "u64", "usize", "u64", "usize", "u64"],
    result: status,
    nonblocking: true,
  },
  CreateSessionOptions: { index: 10, parameters: ["buffer"], result: status },
  EnableProfiling: { index: 14, parameters: ["u64", "buffer"], result: status },
  SetSessionLogVerbosityLevel: { index: 21, parameters: ["u64", "i32"], result: status },
  SetSessionLogSeverityLevel: { index: 22, parameters: ["u64", "i32"], result: status },
  SetSessionGraphOptimizationLevel: { index: 23, parameters: ["u64", "i32"], result: status },
  SetIntraOpNumThreads: { index: 24, parameters: ["u64", "i32"], result: status },
  SetInterOpNumThreads: { index: 25, parameters: ["u64", "i32"], result: status },
  SessionGetInputCount: { index: 30, parameters: ["u64", "buffer"], result: status },
  SessionGetOutputCount: { index: 31, parameters: ["u64", "buffer"], result: status },
  SessionGetInputTypeInfo: { index: 33, parameters: ["u64", "usize", "buffer"], result: status },
  SessionGetOutputTypeInfo: { index: 34, parameters: ["u64", "usize", "buffer"], result: status },
  SessionGetInputName: { index: 36, parameters: ["u64", "usize", "u64", "buffer"], result: status },
  SessionGetOutputName: { index: 37, parameters: ["u64", "usize", "u64", "buffer"], result: status },
  CreateRunOptions: { index: 39, parameters: ["buffer"], result: status },
  RunOptionsSetRunLogSeverityLevel: { index: 41, parameters: ["u64", "i32"], result: status },
  RunOptionsSetTerminate: { index: 46, parameters: ["u64"], result: status },
  RunOptionsUnsetTerminate: { index: 47, parameters: ["u64"], result: status },
  CreateTensorAsOrtValue: { index: 48, parameters: ["u64", "buffer", "usize", "i32", "buffer"], result: status },
  CreateTensorWithDataAsOrtValue: {
    index: 49,
    parameters: ["u64", "buffer", "usize", "buffer", "usize", "i32", "buffer"],
    result: status,
  },
  /** The same member as `CreateTensorWithDataAsOrtValue`, over memory at an address (pinned or device). */
  CreateTensorWithDataAtAddress: {
    index: 49,
    parameters: ["u64", "u64", "usize", "buffer", "usize", "i32", "buffer"],
    result: status,
  },
  GetTensorMutableData: { index: 51, parameters: ["u64", "buffer"], result: status },
  CastTypeInfoToTensorInfo: { index: 55, parameters: ["u64", "buffer"], result: status },
  GetOnnxTypeFromTypeInfo: { index: 56, parameters: ["u64", "buffer"], result: status },
  GetTensorElementType: { index: 60, parameters: ["u64", "buffer"], result: status },
  GetDimensionsCount: { index: 61, parameters: ["u64", "buffer"], result: status },
  GetDimensions: { index: 62, parameters: ["u64", "buffer", "usize"], result: status },
  GetSymbolicDimensions: { index: 63, parameters: ["u64", "buffer", "usize"], result: status },
  GetTensorTypeAndShape: { index: 65, parameters: ["u64", "buffer"], result: status },
  CreateMemoryInfo: { index: 68, parameters: ["buffer", "i32", "i32", "i32", "buffer"], result: status },
  CreateCpuMemoryInfo: { index: 69, parameters: ["i32", "i32", "buffer"], result: status },
  AllocatorAlloc: { index: 75, parameters: ["u64", "usize", "buffer"], result: status },
  AllocatorFree: { index: 76, parameters: ["u64", "u64"], result: status },
  GetAllocatorWithDefaultOptions: { index: 78, parameters: ["buffer"], result: status },
  ReleaseEnv: { index: 92, parameters: ["u64"], result: "void" },
  ReleaseStatus: { index: 93, parameters: ["u64"], result: "void" },
  ReleaseMemoryInfo: { index: 94, parameters: ["u64"], result: "void" },
  ReleaseSession: { index: 95, parameters: ["u64"], result: "void" },
  ReleaseValue: { index: 96, parameters: ["u64"], result: "void" },
  ReleaseRunOptions: { index: 97, parameters: ["u64"], result: "void" },
  ReleaseTypeInfo: { index: 98, parameters: ["u64"], result: "void" },
  ReleaseTensorTypeAndShapeInfo: { index: 99, parameters: ["u64"], result: "void" },
  ReleaseSessionOptions: { index: 100, parameters: ["u64"], result: "void" },
  SessionEndProfiling: { index: 110, parameters: ["u64", "u64", "buffer"], result: status },
  AddFreeDimensionOverrideByName: { index: 124, parameters: ["u64", "buffer", "u64"], result: status },
  GetAvailableProviders: { index: 125, parameters: ["buffer", "buffer"], result: status },
  ReleaseAvailableProviders: { index: 126, parameters: ["u64", "i32"], result: status },
  AddSessionConfigEntry: { index: 130, parameters: ["u64", "buffer", "buffer"], result: status },
  RunWithBinding: { index: 133, parameters: ["u64", "u64", "u64"], result: status },
  /** `RunWithBinding` on Deno's blocking-thread pool. */
  RunWithBindingNonblocking: { index: 133, parameters: ["u64", "u64", "u64"], result: status, nonblocking: true },
  CreateIoBinding: { index: 134, parameters: ["u64", "buffer"], result: status },
  ReleaseIoBinding: { index: 135, parameters: ["u64"], result: "void" },
  BindInput: { index: 136, parameters: ["u64", "buffer", "u64"], result: status },
  BindOutput: { index: 137, parameters: ["u64", "buffer", "u64"], result: status },
  BindOutputToDevice: { index: 138, parameters: ["u64", "buffer", "u64"], result: status },
  GetBoundOutputValues: { index: 140, parameters: ["u64", "u64", "buffer", "buffer"], result: status },
  ClearBoundInputs: { index: 141, parameters: ["u64"], result: "void" },
  ClearBoundOutputs: { index: 142, parameters: ["u64"], result: "void" },
  AddInitializer: { index: 150, parameters: ["u64", "buffer", "u64"], result: status },
  CreatePrepackedWeightsContainer: { index: 166, parameters: ["buffer"], result: status },
  ReleasePrepackedWeightsContainer: { index: 167, parameters: ["u64"], result: "void" },
  CreateSessionWithPrepackedWeightsContainer: {
    index: 168,
    parameters: ["u64", "buffer", "u64", "u64", "buffer"],
    result: status,
  },
  AddRunConfigEntry: { index: 165, parameters: ["u64", "buffer", "buffer"], result: status },
  SessionOptionsAppendExecutionProvider_TensorRT_V2: { index: 170, parameters: ["u64", "u64"], result: status },
  CreateTensorRTProviderOptions: { index: 171, parameters: ["buffer"], result: status },
  UpdateTensorRTProviderOptions: { index: 172, parameters: ["u64", "buffer", "buffer", "usize"], result: status },
  ReleaseTensorRTProviderOptions: { index: 174, parameters: ["u64"], result: "void" },
  SessionOptionsAppendExecutionProvider_CUDA_V2: { index: 204, parameters: ["u64", "u64"], result: status },
  CreateCUDAProviderOptions: { index: 205, parameters: ["buffer"], result: status },
  UpdateCUDAProviderOptions: { index: 206, parameters: ["u64", "buffer", "buffer", "usize"], result: status },
  GetCUDAProviderOptionsAsString: { index: 207, parameters: ["u64", "u64", "buffer"], result: status },
  ReleaseCUDAProviderOptions: { index: 208, parameters: ["u64"], result: "void" },
  GetBuildInfoString: { index: 254, parameters: [], result: "u64" },
  UpdateTensorRTProviderOptionsWithValue: { index: 261, parameters: ["u64", "buffer", "u64"], result: status },
  UpdateCUDAProviderOptionsWithValue: { index: 263, parameters: ["u64", "buffer", "u64"], result: status },
  SetUserLoggingFunction: { index: 266, parameters: ["u64", "u64", "u64"], result: status },
  GetTensorSizeInBytes: { index: 318, parameters: ["u64", "buffer"], result: status },
} as const satisfies Record<string, Def & { index: number }>;

type Param = "u64" | "usize" | "i32" | "u32" | "buffer";
type ParamValue<P> = P extends "buffer" ? ArrayBufferView : P extends "i32" | "u32" ? number : bigint;
type ResultValue<R> = R extends "void" ? void : R extends "i32" ? number : bigint;
type Args<Ps> = { [I in keyof Ps]: ParamValue<Ps[I]> };

/** A bound table member: `call` takes handles as bigint, buffers as typed arrays. */
export interface ApiFn<Ps extends readonly Param[], R, Nb> {
  call(...args: Args<Ps>): Nb extends true ? Promise<ResultValue<R>> : ResultValue<R>;
}

/** The callable members of the table. */
export type ApiFunctions = {
  [K in keyof typeof apiMembers]: ApiFn<
    (typeof apiMembers)[K]["parameters"],
    (typeof apiMembers)[K]["result"],
    (typeof apiMembers)[K] extends { nonblocking: true } ? true : false
  >;
};

const libcSymbols = {
  strlen: { parameters: ["u64"], result: "usize" },
  /** `memcpy(dst, src, n)` from C memory into a typed array. */
  memcpy: { parameters: ["buffer", "u64", "usize"], result: "u64" },
  /** `memcpy(dst, src, n)` from a typed array into C memory (pinned host buffers). */
  memcpyToAddress: { name: "memcpy", parameters: ["u64", "buffer", "usize"], result: "u64" },
  /** `memcpy(buf, buf, 0)` returns `buf`: the address of a typed array's bytes, without pointer ops. */
  addressOf: { name: "memcpy", parameters: ["buffer", "buffer", "usize"], result: "u64" },
  calloc: { parameters: ["usize", "usize"], result: "u64" },
  free: { parameters: ["u64"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc helpers that read and write C memory through already-opened symbols. */
export class CMemory {
  #s: Deno.DynamicLibrary<typeof libcSymbols>["symbols"];
  constructor(lib: Deno.DynamicLibrary<typeof libcSymbols>) {
    this.#s = lib.symbols;
  }

  /** The NUL-terminated UTF-8 string at `address` ("" for 0). */
  string(address: bigint): string {
    if (address === 0n) return "";
    const n = Number(this.#s.strlen(address));
    const bytes = new Uint8Array(n);
    if (n > 0) this.#s.memcpy(bytes, address, BigInt(n));
    return new TextDecoder().decode(bytes);
  }

  /** `count` 64-bit words (pointers) at `address`. */
  words(address: bigint, count: number): BigUint64Array {
    const out = new BigUint64Array(count);
    if (count > 0) this.#s.memcpy(out, address, BigInt(count * 8));
    return out;
  }

  /** Copies `into.byteLength` bytes from `address` into `into`. */
  read(address: bigint, into: ArrayBufferView): void {
    if (into.byteLength > 0) this.#s.memcpy(into, address, BigInt(into.byteLength));
  }

  /** Copies the bytes of `from` to `address` (host memory the caller owns, such as pinned buffers). */
  write(address: bigint, from: ArrayBufferView): void {
    if (from.byteLength > 0) this.#s.memcpyToAddress(address, from, BigInt(from.byteLength));
  }

  /**
   * `bytes` of zeroed native memory (libc's `calloc`), outside the V8 heap:
   * what a nonblocking call reads or writes while it runs lives here, so a
   * Worker that ends during the call (its heap freed) leaves the call
   * working on memory that is still valid. Free it with {@link free}.
   * @throws {Error} when the allocation fails.
   */
  alloc(bytes: number): bigint {
    const address = BigInt(this.#s.calloc(BigInt(Math.max(bytes, 1)), 1n));
    if (address === 0n) throw new Error(`calloc of ${bytes} bytes failed`);
    return address;
  }

  /** Frees memory from {@link alloc}. */
  free(address: bigint): void {
    if (address !== 0n) this.#s.free(address);
  }

  /** A NUL-terminated UTF-8 copy of `text` in memory from {@link alloc}. */
  cString(text: string): bigint {
    const bytes = new TextEncoder().encode(text);
    const address = this.alloc(bytes.length + 1);
    this.write(address, bytes);
    return address;
  }

  /** Writes 64-bit `values` at `address` (memory from {@link alloc}). */
  writeWords(address: bigint, values: readonly bigint[]): void {
    this.write(address, BigUint64Array.from(values));
  }

  /**
   * The address of a typed array's first byte. Stable only for memory that
   * V8 never moves: the caller passes views over an `ArrayBuffer` it keeps alive.
   */
  address(view: ArrayBufferView): bigint {
    return BigInt(this.#s.addressOf(view, view, 0n));
  }
}

/** The `ORT_LOGGING_LEVEL_*` values. */
export const loggingLevel = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 } as const;

/** A log line from ORT's logging callback. */
export interface OrtLogLine {
  severity: number;
  category: string;
  logId: string;
  codeLocation: string;
  message: string;
}

/** The opened library: its version, the function table and the C-memory helpers. */
export interface OrtLibrary {
  /** `OrtApiBase::GetVersionString()`, e.g. `1.29.0`. */
  version: string;
  /** The API version bound ({@link ortApiVersion}). */
  apiVersion: number;
  /** The address of the `OrtApi` table. */
  apiAddress: bigint;
  /**
   * How the table is called: through libffi's `ffi_call` (works after the
   * ffi drop), or, where `libffi.so.8` is missing, through
   * `Deno.UnsafeFnPointer` (only while the ffi permission is held).
   */
  caller: "libffi" | "UnsafeFnPointer";
  fns: ApiFunctions;
  memory: CMemory;
  /**
   * The address of an `OrtLoggingFunction` that hands each line to the
   * current {@link OrtLibrary.logSink}; created once, before the ffi drop.
   * It runs on the thread that logs, so it is only installed on sessions
   * that log on the isolate's own thread (see `placement.ts`).
   */
  loggerAddress: bigint;
  /** Where the logging function's lines go now (`null`: dropped). */
  logSink: ((line: OrtLogLine) => void) | null;
}

const ffiSymbols = {
  ffi_prep_cif: { parameters: ["u64", "i32", "u32", "u64", "u64"], result: "i32" },
  ffi_call: { parameters: ["u64", "u64", "buffer", "buffer"], result: "void" },
  ffi_call_nonblocking: {
    name: "ffi_call",
    parameters: ["u64", "u64", "u64", "u64"],
    result: "void",
    nonblocking: true,
  },
  ffi_type_uint64: { type: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** `FFI_UNIX64`, libffi's default ABI on x86-64 Linux. */
const ffiUnix64 = 2;
const maxArgs = 8;
/** Bytes of an `ffi_cif` on x86-64 (32), with room to spare. */
const cifBytes = 64;

/**
 * Calls C function pointers through libffi's `ffi_call`, a symbol opened
 * with `Deno.dlopen`. Deno checks the ffi permission on every
 * `Deno.UnsafeFnPointer.call` (measured: `NotCapable` once the isolate has
 * dropped ffi), but not on calls of symbols opened earlier, so the table's
 * members are called through this one symbol.
 *
 * Every parameter and result of the members bound here is of the integer
 * class of the x86-64 System V ABI (handles, sizes, enums, pointers), so one
 * call interface per arity, all `uint64`, serves them all: an `i32` travels
 * sign-extended in a 64-bit slot and comes back as the low 32 bits.
 *
 * The call interfaces, and the argument and result words of nonblocking
 * calls, live in native memory ({@link CMemory.alloc}): a nonblocking call
 * runs on another thread and may outlive the isolate (a Worker terminated
 * mid-run frees its heap), so it must touch nothing on the V8 heap. The
 * interfaces are never freed (about 1 KiB per isolate).
 */
class FfiCaller {
  #s: Deno.DynamicLibrary<typeof ffiSymbols>["symbols"];
  #memory: CMemory;
  // One prepared ffi_cif per arity, in native memory.
  #cifs: bigint[] = [];
  // Argument storage for synchronous calls: slots, and the array of slot addresses.
  #slots = new BigUint64Array(new ArrayBuffer(maxArgs * 8));
  #slotAddresses = new BigUint64Array(new ArrayBuffer(maxArgs * 8));
  #result = new BigUint64Array(new ArrayBuffer(8));

  constructor(lib: Deno.DynamicLibrary<typeof ffiSymbols>, memory: CMemory, uint64Type: bigint) {
    this.#s = lib.symbols;
    this.#memory = memory;
    const base = memory.address(this.#slots);
    for (let i = 0; i < maxArgs; i++) this.#slotAddresses[i] = base + BigInt(i * 8);
    const types = memory.alloc(maxArgs * 8);
    memory.writeWords(types, Array(maxArgs).fill(uint64Type));
    for (let n = 0; n <= maxArgs; n++) {
      const cif = memory.alloc(cifBytes);
      const code = this.#s.ffi_prep_cif(cif, ffiUnix64, n, uint64Type, types);
      if (code !== 0) throw new Error(`ffi_prep_cif failed for ${n} arguments: ${code}`);
      this.#cifs.push(cif);
    }
  }

  #word(value: unknown, keep: unknown[]): bigint {
    if (typeof value === "bigint") return BigInt.asUintN(64, value);
    if (typeof value === "number") return BigInt.asUintN(64, BigInt(value));
    const view = value as ArrayBufferView;
    keep.push(view.buffer); // materialises an on-heap array off the heap, where it stays put
    return this.#memory.address(view);
  }

  /** Calls `fn` with `args` on this thread; returns the raw 64-bit result. */
  call(fn: bigint, args: readonly unknown[]): bigint {
    const keep: unknown[] = [];
    for (let i = 0; i < args.length; i++) this.#slots[i] = this.#word(args[i], keep);
    this.#s.ffi_call(this.#cifs[args.length], fn, this.#result, this.#slotAddresses);
    return this.#result[0];
  }

  /**
   * Calls `fn` on Deno's blocking-thread pool. `args` are integers and native
   * addresses only (the members declared `nonblocking` take no buffers); the
   * argument slots, their addresses and the result word are one native block,
   * freed when the call returns (leaked if the isolate ends first).
   */
  async callNonblocking(fn: bigint, args: readonly (bigint | number)[]): Promise<bigint> {
    const block = this.#memory.alloc((2 * maxArgs + 1) * 8);
    const slots = block;
    const addresses = block + BigInt(maxArgs * 8);
    const result = block + BigInt(2 * maxArgs * 8);
    const words = new Array<bigint>(2 * maxArgs).fill(0n);
    for (let i = 0; i < args.length; i++) {
      const arg = args[i];
      if (typeof arg !== "bigint" && typeof arg !== "number") {
        this.#memory.free(block);
        throw new TypeError("A nonblocking call takes integers and native addresses only");
      }
      words[i] = BigInt.asUintN(64, BigInt(arg));
      words[maxArgs + i] = slots + BigInt(i * 8);
    }
    this.#memory.writeWords(block, words);
    await this.#s.ffi_call_nonblocking(this.#cifs[args.length], fn, result, addresses);
    const out = this.#memory.words(result, 1)[0];
    this.#memory.free(block);
    return out;
  }
}

/**
 * The fallback where libffi is missing: `Deno.UnsafeFnPointer`, every
 * argument a `u64` or a buffer (the same integer-class reasoning as
 * {@link FfiCaller}). Deno refuses these calls once ffi is dropped.
 */
class UnsafeFnPointerCaller {
  #memory: CMemory;
  #fns = new Map<string, Deno.UnsafeFnPointer<Deno.ForeignFunction>>();
  constructor(memory: CMemory) {
    this.#memory = memory;
  }

  #words(args: readonly unknown[], keep: unknown[]): bigint[] {
    return args.map((a) => {
      if (typeof a === "bigint") return BigInt.asUintN(64, a);
      if (typeof a === "number") return BigInt.asUintN(64, BigInt(a));
      const view = a as ArrayBufferView;
      keep.push(view.buffer);
      return this.#memory.address(view);
    });
  }

  #fn(fn: bigint, arity: number, nonblocking: boolean): Deno.UnsafeFnPointer<Deno.ForeignFunction> {
    const key = `${fn}/${arity}/${nonblocking}`;
    let f = this.#fns.get(key);
    if (!f) {
      const def = { parameters: Array(arity).fill("u64"), result: "u64", nonblocking } as Deno.ForeignFunction;
      f = new Deno.UnsafeFnPointer(Deno.UnsafePointer.create(fn) as Deno.PointerObject<Deno.ForeignFunction>, def);
      this.#fns.set(key, f);
    }
    return f;
  }

  call(fn: bigint, args: readonly unknown[]): bigint {
    const keep: unknown[] = [];
    return BigInt(this.#fn(fn, args.length, false).call(...this.#words(args, keep)) as number | bigint);
  }

  async callNonblocking(fn: bigint, args: readonly (bigint | number)[]): Promise<bigint> {
    const keep: unknown[] = [];
    const result = await (this.#fn(fn, args.length, true).call(...this.#words(args, keep)) as Promise<number | bigint>);
    keep.length = 0;
    return BigInt(result);
  }
}

function openCaller(memory: CMemory): FfiCaller | UnsafeFnPointerCaller {
  let libffi: Deno.DynamicLibrary<typeof ffiSymbols>;
  try {
    libffi = Deno.dlopen(libffiName, ffiSymbols);
  } catch {
    return new UnsafeFnPointerCaller(memory);
  }
  return new FfiCaller(libffi, memory, BigInt(Deno.UnsafePointer.value(libffi.symbols.ffi_type_uint64)));
}

function convert(result: string, raw: bigint): unknown {
  if (result === "void") return undefined;
  if (result === "i32") return Number(BigInt.asIntN(32, raw));
  return raw;
}

let opened: OrtLibrary | undefined;
let sealed = false;

/**
 * Refuses every later {@link openOrtLibrary} in this isolate. The opened
 * library can call any member of ORT's table and read and write any memory,
 * and runtime modules stay reachable from user code through the module map,
 * so an isolate seals the binding once it holds what it needs, before user
 * code runs. There is no way back.
 */
export function sealOrtLibrary(): void {
  sealed = true;
}

/** libffi's soname on Debian and Ubuntu (package libffi8). */
export const libffiName = "libffi.so.8";

const kept: Deno.DynamicLibrary<Record<string, never>>[] = [];

/**
 * Keeps ONNX Runtime's library (at `path`) and libffi loaded in this process
 * for good: call it once on the runtime's main thread. A nonblocking run goes
 * on, on Deno's blocking-thread pool, after the Worker that started it ends
 * (an isolate that crashes mid-run). When that Worker held the last handle of
 * the libraries, ending it closed them (`dlclose`) under the run, and the
 * whole runtime died with SIGSEGV (`scripts/crash_redeploy_repro.ts`: in 3 of
 * 3 runs of 80 crash-and-redeploy rounds before, none after). A handle of the
 * main thread keeps their reference count above zero.
 * @throws {Error} when a library cannot be opened.
 */
export function keepOrtLoaded(path: string): void {
  if (kept.length > 0) return;
  kept.push(Deno.dlopen(path, {}), Deno.dlopen(libffiName, {}));
}

/**
 * Opens `libonnxruntime.so.1` at `path` once per isolate, reads
 * `OrtGetApiBase()->GetApi(29)` and binds every member in {@link apiMembers}
 * to a caller that keeps working after the ffi permission is dropped.
 * Call it while the ffi permission is granted.
 *
 * @throws {Error} when the library or libffi cannot be opened, or ORT does not offer API version 29.
 * @throws {Deno.errors.NotCapable} once the isolate has called {@link sealOrtLibrary}.
 */
export function openOrtLibrary(path: string): OrtLibrary {
  if (sealed) {
    throw new Deno.errors.NotCapable(
      "ONNX Runtime's C API is sealed in this isolate: the runtime opened it for the function's declared models",
    );
  }
  if (opened) return opened;
  const lib = Deno.dlopen(path, { OrtGetApiBase: { parameters: [], result: "pointer" } });
  const libc = Deno.dlopen("libc.so.6", libcSymbols);
  const memory = new CMemory(libc);
  const caller = openCaller(memory);
  const base = lib.symbols.OrtGetApiBase();
  if (base === null) throw new Error(`OrtGetApiBase returned NULL in ${path}`);
  const baseView = new Deno.UnsafePointerView(base);
  const getApi = baseView.getBigUint64(0);
  const getVersion = baseView.getBigUint64(8);
  const version = memory.string(caller.call(getVersion, []));
  const api = caller.call(getApi, [ortApiVersion]);
  if (api === 0n) {
    throw new Error(`ONNX Runtime ${version} at ${path} does not offer C API version ${ortApiVersion}`);
  }
  const table = memory.words(api, Math.max(...Object.values(apiMembers).map((m) => m.index)) + 1);
  const fns = Object.fromEntries(
    Object.entries(apiMembers).map(([name, member]) => {
      const fn = table[member.index];
      if (fn === 0n) throw new Error(`OrtApi member ${name} (index ${member.index}) is NULL`);
      const nonblocking = "nonblocking" in member && member.nonblocking;
      const call = nonblocking
        ? async (...args: (bigint | number)[]) => convert(member.result, await caller.callNonblocking(fn, args))
        : (...args: unknown[]) => convert(member.result, caller.call(fn, args));
      return [name, { call }];
    }),
  ) as unknown as ApiFunctions;
  const library: OrtLibrary = {
    version,
    caller: caller instanceof FfiCaller ? "libffi" : "UnsafeFnPointer",
    apiVersion: ortApiVersion,
    apiAddress: api,
    fns,
    memory,
    loggerAddress: 0n,
    logSink: null,
  };
  const logger = new Deno.UnsafeCallback(
    { parameters: ["u64", "i32", "u64", "u64", "u64", "u64"], result: "void" } as const,
    (_param, severity, category, logId, codeLocation, message) => {
      library.logSink?.({
        severity,
        category: memory.string(BigInt(category)),
        logId: memory.string(BigInt(logId)),
        codeLocation: memory.string(BigInt(codeLocation)),
        message: memory.string(BigInt(message)),
      });
    },
  );
  library.loggerAddress = BigInt(Deno.UnsafePointer.value(logger.pointer));
  opened = library;
  return library;
}
