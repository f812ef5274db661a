/**
 * isolane's own GPU kernels, loaded once per lane and launched on the lane's
 * stream only. The kernels' PTX is built from `native/kernels/*.cu` by
 * `deno task kernels` and checked in.
 *
 * The argument block that `cuLaunchKernel` reads (`void*[]`, each entry the
 * address of one argument) is built once in {@link Kernels.load}, while the
 * ffi permission still allows taking addresses; launches only write values
 * into its slots.
 * @module
 */
import { hex, type Lane } from "./lane.ts";
import { DeviceTensor } from "./ort/device_tensor.ts";

/** An RGBA image, 8 bits a channel. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A region and the tensor it becomes: `(v / 255 - mean[c]) / std[c]`, NCHW, BGR. */
export interface ResizeNormalizeOptions {
  region: { x: number; y: number; width: number; height: number };
  width: number;
  height: number;
  mean: readonly number[];
  std: readonly number[];
}

/**
 * Perspective crops into one batch (`warpPerspectiveToDevice`): per row of the batch, a 3×3 row-major matrix that
 * maps the row's output pixels (x, y, 1) to image pixels (OpenCV's `warpPerspective` with `WARP_INVERSE_MAP`), and
 * the row's width in output pixels (columns past it are zeros; a row of width 0 is all zeros).
 */
export interface WarpOptions {
  crops: readonly { transform: readonly number[]; width: number }[];
  /** Output width of every row (the batch's padded width) and height, in pixels. */
  width: number;
  height: number;
  /** Rows of the batch, at least `crops.length` (the rest are zeros); default `crops.length`. */
  rows?: number;
  mean: readonly number[];
  std: readonly number[];
}

/** Where the PTX of the kernels lives. */
export const kernelsPtxUrl: URL = new URL("./kernels/preprocess.ptx", import.meta.url);

const maxArgs = 16;

/** The loaded kernels of one lane. */
export class Kernels implements Disposable {
  /** Launches and copies by stream handle (hex): the evidence that all GPU work went to the lane's stream. */
  readonly streamUse = new Map<string, number>();
  /** Device memory of device tensors not yet disposed, by address: {@link close} frees it, so an ending isolate leaks none. */
  readonly #live = new Set<bigint>();
  /** A device tensor that user code dropped without disposing gives its memory back when it is collected. */
  readonly #unreachable = new FinalizationRegistry<bigint>((address) => this.#free(address));
  #slots: DataView;
  #keepAlive: unknown[];

  private constructor(
    readonly lane: Lane,
    readonly module: bigint,
    readonly resizeNormalizeFn: bigint,
    readonly warpNormalizeFn: bigint,
    slots: ArrayBuffer,
    readonly params: bigint,
    keepAlive: unknown[],
  ) {
    this.#slots = new DataView(slots);
    this.#keepAlive = keepAlive;
  }

  /** Loads the PTX into the lane's context; call before the ffi permission is dropped. */
  static load(lane: Lane, ptx: Uint8Array): Kernels {
    const image = new Uint8Array(ptx.length + 1);
    image.set(ptx);
    const module = lane.driver.moduleLoadData(image);
    const fn = lane.driver.moduleFunction(module, "resize_normalize_bgr");
    const warp = lane.driver.moduleFunction(module, "warp_normalize_bgr");
    const slots = new ArrayBuffer(maxArgs * 8);
    const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(slots));
    const table = new BigUint64Array(maxArgs);
    for (let i = 0; i < maxArgs; i++) table[i] = BigInt(base) + BigInt(i * 8);
    const params = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(table)));
    return new Kernels(lane, module, fn, warp, slots, params, [slots, table]);
  }

  #use(stream: bigint): void {
    const key = hex(stream);
    this.streamUse.set(key, (this.streamUse.get(key) ?? 0) + 1);
  }

  /**
   * Resizes and normalises a region of an image on the GPU, the same as the
   * CPU reference in functions/ocr/image.ts up to float32 rounding.
   */
  resizeNormalize(image: RgbaImage, options: ResizeNormalizeOptions): Float32Array {
    const { driver, stream } = this.lane;
    this.lane.rebind();
    const out = new Float32Array(3 * options.width * options.height);
    const src = driver.allocAsync(image.data.byteLength, stream);
    const dst = driver.allocAsync(out.byteLength, stream);
    this.#use(stream);
    this.#use(stream);
    try {
      driver.copyToDevice(src, image.data, stream);
      this.#use(stream);
      this.#launch(src, image, dst, options);
      driver.copyToHost(out, dst, stream);
      this.#use(stream);
    } finally {
      driver.freeAsync(src, stream);
      driver.freeAsync(dst, stream);
      driver.streamSynchronize(stream);
    }
    return out;
  }

  /**
   * {@link resizeNormalize}, leaving the tensor in device memory for a model on this lane to read: no copy back to
   * the host, and none to the device again for the run (issue 15). With `canvas` (at least `width` × `height`), the
   * tensor is `[1, 3, canvas.height, canvas.width]`, the image's part at the top left and zeros elsewhere, as
   * `padTo` in functions/ocr/image.ts letterboxes on the host; else `[1, 3, height, width]`. Only the RGBA image
   * crosses to the device; everything is queued on the lane's stream, with no wait.
   * @throws {RangeError} for a canvas smaller than the tensor; `CudaError` from the driver (out of memory, say).
   */
  resizeNormalizeToDevice(
    image: RgbaImage,
    options: ResizeNormalizeOptions & { canvas?: { width: number; height: number } },
  ): DeviceTensor {
    const { driver, stream } = this.lane;
    const canvas = options.canvas ?? { width: options.width, height: options.height };
    if (canvas.width < options.width || canvas.height < options.height) {
      throw new RangeError(
        `canvas ${canvas.width}×${canvas.height} is smaller than the tensor's ${options.width}×${options.height}`,
      );
    }
    this.lane.rebind();
    const plane = options.width * options.height;
    const bytes = 3 * canvas.width * canvas.height * 4;
    const src = driver.allocAsync(image.data.byteLength, stream);
    let dst = 0n;
    let out = 0n;
    try {
      dst = driver.allocAsync(3 * plane * 4, stream);
      this.#use(stream);
      driver.copyToDevice(src, image.data, stream);
      this.#use(stream);
      this.#launch(src, image, dst, options);
      if (canvas.width === options.width && canvas.height === options.height) {
        out = dst;
        dst = 0n;
      } else {
        out = driver.allocAsync(bytes, stream);
        driver.fillAsync(out, 0, bytes / 4, stream);
        this.#use(stream);
        for (let c = 0; c < 3; c++) {
          driver.copy2DOnDevice({
            dst: out + BigInt(c * canvas.width * canvas.height * 4),
            dstPitch: canvas.width * 4,
            src: dst + BigInt(c * plane * 4),
            srcPitch: options.width * 4,
            widthBytes: options.width * 4,
            height: options.height,
          }, stream);
          this.#use(stream);
        }
      }
    } catch (error) {
      if (out !== 0n) driver.freeAsync(out, stream);
      throw error;
    } finally {
      driver.freeAsync(src, stream);
      if (dst !== 0n) driver.freeAsync(dst, stream);
    }
    return this.#deviceTensor([1, 3, canvas.height, canvas.width], out, bytes);
  }

  /**
   * Cuts perspective crops of `image` into one batch tensor on the device, `[rows, 3, height, width]`, normalised as
   * {@link resizeNormalize} does (BGR, `(v / 255 - mean[c]) / std[c]`): each output pixel of a row reads the image
   * where the row's transform maps it, bicubic (OpenCV's `INTER_CUBIC`, A = -0.75), edges replicated, each channel
   * rounded to 8 bits first as OpenCV's warp of an 8-bit image gives it. Only the image and the transforms cross to
   * the device; everything is queued on the lane's stream, with no wait.
   * @throws {RangeError} for fewer rows than crops, a transform that is not 9 numbers, or a width outside
   * `0..width`; `CudaError` from the driver.
   */
  warpPerspectiveToDevice(image: RgbaImage, options: WarpOptions): DeviceTensor {
    const { driver, stream } = this.lane;
    const rows = options.rows ?? options.crops.length;
    if (rows < options.crops.length || rows < 1) {
      throw new RangeError(`rows (${rows}) must be at least 1 and at least the crops (${options.crops.length})`);
    }
    const params = new ArrayBuffer(rows * 40);
    const transforms = new Float32Array(params, 0, rows * 9);
    const widths = new Int32Array(params, rows * 36, rows);
    options.crops.forEach((crop, z) => {
      if (crop.transform.length !== 9 || !crop.transform.every(Number.isFinite)) {
        throw new RangeError(`crop ${z}: the transform must be 9 finite numbers (a 3×3 matrix, row by row)`);
      }
      if (!Number.isInteger(crop.width) || crop.width < 0 || crop.width > options.width) {
        throw new RangeError(`crop ${z}: width ${crop.width} must be an integer from 0 to ${options.width}`);
      }
      transforms.set(crop.transform, z * 9);
      widths[z] = crop.width;
    });
    this.lane.rebind();
    const bytes = rows * 3 * options.width * options.height * 4;
    const src = driver.allocAsync(image.data.byteLength, stream);
    let table = 0n;
    let out = 0n;
    try {
      table = driver.allocAsync(params.byteLength, stream);
      out = driver.allocAsync(bytes, stream);
      this.#use(stream);
      driver.copyToDevice(src, image.data, stream);
      driver.copyToDevice(table, new Uint8Array(params), stream);
      this.#use(stream);
      const s = this.#slots;
      s.setBigUint64(0, src, true);
      s.setInt32(8, image.width, true);
      s.setInt32(16, image.height, true);
      s.setBigUint64(24, table, true);
      s.setBigUint64(32, table + BigInt(rows * 36), true);
      s.setBigUint64(40, out, true);
      s.setInt32(48, options.width, true);
      s.setInt32(56, options.height, true);
      for (let c = 0; c < 3; c++) {
        s.setFloat32(64 + c * 8, 1 / (255 * options.std[c]), true);
        s.setFloat32(88 + c * 8, options.mean[c] / options.std[c], true);
      }
      const block: [number, number, number] = [16, 16, 1];
      const grid: [number, number, number] = [
        Math.ceil(options.width / 16),
        Math.ceil(options.height / 16),
        rows,
      ];
      driver.launch(this.warpNormalizeFn, grid, block, stream, this.params);
      this.#use(stream);
    } catch (error) {
      if (out !== 0n) driver.freeAsync(out, stream);
      throw error;
    } finally {
      driver.freeAsync(src, stream);
      if (table !== 0n) driver.freeAsync(table, stream);
    }
    return this.#deviceTensor([rows, 3, options.height, options.width], out, bytes);
  }

  /** A device tensor over `address`, freed when disposed, collected, or when the kernels close. */
  #deviceTensor(dims: number[], address: bigint, bytes: number): DeviceTensor {
    const tensor = new DeviceTensor("float32", dims, this.lane.device, {
      address,
      bytes,
      stream: this.lane.stream,
      free: (at) => {
        this.#unreachable.unregister(tensor);
        this.#free(at);
      },
    });
    this.#live.add(address);
    this.#unreachable.register(tensor, address, tensor);
    return tensor;
  }

  /** Frees a device tensor's memory once (ordered on the lane's stream). */
  #free(address: bigint): void {
    if (!this.#live.delete(address)) return;
    this.lane.rebind();
    this.lane.driver.freeAsync(address, this.lane.stream);
  }

  /** Device tensors made by this lane's kernels and not yet disposed. */
  get liveDeviceTensors(): number {
    return this.#live.size;
  }

  /** Launches the resize kernel from the RGBA image at `src` into the NCHW tensor at `dst`, on the lane's stream. */
  #launch(src: bigint, image: RgbaImage, dst: bigint, options: ResizeNormalizeOptions): void {
    const s = this.#slots;
    const { region } = options;
    s.setBigUint64(0, src, true);
    s.setInt32(8, image.width, true);
    s.setInt32(16, image.height, true);
    [region.x, region.y, region.width, region.height].forEach((v, i) => s.setFloat32(24 + i * 8, v, true));
    s.setBigUint64(56, dst, true);
    s.setInt32(64, options.width, true);
    s.setInt32(72, options.height, true);
    for (let c = 0; c < 3; c++) {
      s.setFloat32(80 + c * 8, 1 / (255 * options.std[c]), true);
      s.setFloat32(104 + c * 8, options.mean[c] / options.std[c], true);
    }
    const block: [number, number, number] = [16, 16, 1];
    const grid: [number, number, number] = [Math.ceil(options.width / 16), Math.ceil(options.height / 16), 1];
    this.lane.driver.launch(this.resizeNormalizeFn, grid, block, this.lane.stream, this.params);
    this.#use(this.lane.stream);
  }

  /** Frees the device tensors still live, then unloads the module. */
  close(): void {
    for (const address of [...this.#live]) this.#free(address);
    this.lane.driver.moduleUnload(this.module);
    this.#keepAlive.length = 0;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
