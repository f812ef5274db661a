/**
 * ONNX models generated in memory with onnx-proto for the binding's tests,
 * the GPU tests and `scripts/ort_native_bench.ts`. Not used by the runtime.
 * @module
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const FLOAT16 = onnx.TensorProto.DataType.FLOAT16;
const INT64 = onnx.TensorProto.DataType.INT64;
/** Columns of ones that `op: "folded"` pads the input with (one carries the bias; four keep rows a multiple of 4). */
const FOLD = 4;

/** Options of {@link denseReluModel}. */
export interface DenseReluOptions {
  /** Number of `MatMul → Add → Relu` layers. */
  layers: number;
  /** Width of every layer (input and output too). */
  width: number;
  /** A fixed batch size, or a symbolic one (`"batch"`). */
  batch?: number | string;
  /**
   * How a layer is written: `MatMul` then `Add` (default); one `Gemm` with the bias as its C input (`gemm`); the same
   * with the weights stored transposed, `[out, in]` as PyTorch's `Linear` keeps them, and `transB` = 1 (`gemm-t`); or
   * the bias folded into the weights (`folded`): the input is padded with columns of ones (`Pad`, to width + 4), each
   * layer is one `MatMul` by `[[W, 0], [b, 1], [0, 0]]` then `Relu` (ReLU keeps the ones), and the last layer's
   * weights drop the ones column. The same function; under TF32 the bias is rounded like the weights. Not with
   * `float16`.
   */
  op?: "matmul" | "gemm" | "gemm-t" | "folded";
  /**
   * Weights, biases and arithmetic in float16, between a `Cast` of the float32 input and a `Cast` of the output
   * back to float32 (the inputs and outputs stay float32).
   */
  float16?: boolean;
}

/**
 * Deterministic weights for layer `layer`: `sin`-based, scaled by
 * `1/sqrt(width)` so activations stay of order 1 through many layers.
 */
export function denseWeights(layer: number, width: number): { w: Float32Array; b: Float32Array } {
  const scale = 1 / Math.sqrt(width);
  const w = Float32Array.from({ length: width * width }, (_, i) => Math.sin(layer * 13.7 + i * 0.61) * scale);
  const b = Float32Array.from({ length: width }, (_, i) => Math.cos(layer * 3.1 + i * 0.37) * 0.1);
  return { w, b };
}

/**
 * An fp32 ReLU MLP (`layers` × `width`): input `x` [batch, width], output
 * `y` [batch, width]. `denseReluModel({ layers: 8, width: 1024 })` is the
 * 8×1024 model of the GPU benchmarks (32 MiB of weights).
 */
export function denseReluModel(
  { layers, width, batch = "batch", op = "matmul", float16 = false }: DenseReluOptions,
): Uint8Array {
  const node: { opType: string; input: string[]; output: string[]; name: string; attribute?: unknown[] }[] = [];
  const initializer = [];
  const weightType = float16 ? FLOAT16 : FLOAT;
  const raw = (a: Float32Array) => (float16 ? bytes16(toHalf(a)) : bytes(a));
  let current = "x";
  if (float16) {
    node.push({ opType: "Cast", input: ["x"], output: ["x16"], name: "cast_in", attribute: [castTo(FLOAT16)] });
    current = "x16";
  }
  for (let l = 0; l < layers; l++) {
    const { w, b } = denseWeights(l, width);
    initializer.push(
      onnx.TensorProto.create({ name: `w${l}`, dims: [width, width], dataType: weightType, rawData: raw(w) }),
      onnx.TensorProto.create({ name: `b${l}`, dims: [width], dataType: weightType, rawData: raw(b) }),
    );
    const out = l === layers - 1 && !float16 ? "y" : `h${l}`;
    if (op === "folded") {
      if (float16) throw new Error("denseReluModel: op 'folded' is float32 only");
      initializer.splice(-2, 2);
      if (l === 0) {
        initializer.push(
          onnx.TensorProto.create({ name: "pads", dims: [4], dataType: INT64, rawData: bytes64([0, 0, 0, FOLD]) }),
          onnx.TensorProto.create({ name: "one", dims: [], dataType: FLOAT, rawData: bytes(Float32Array.of(1)) }),
        );
        node.push({ opType: "Pad", input: ["x", "pads", "one"], output: ["x1"], name: "pad_ones" });
        current = "x1";
      }
      const last = l === layers - 1;
      const cols = last ? width : width + FOLD;
      const wf = new Float32Array((width + FOLD) * cols);
      for (let i = 0; i < width; i++) wf.set(w.subarray(i * width, (i + 1) * width), i * cols);
      wf.set(b, width * cols);
      if (!last) wf[width * cols + width] = 1;
      initializer.push(
        onnx.TensorProto.create({ name: `w${l}`, dims: [width + FOLD, cols], dataType: FLOAT, rawData: bytes(wf) }),
      );
      node.push({ opType: "MatMul", input: [current, `w${l}`], output: [`a${l}`], name: `matmul${l}` });
    } else if (op === "gemm-t") {
      const wt = new Float32Array(width * width);
      for (let i = 0; i < width; i++) for (let j = 0; j < width; j++) wt[j * width + i] = w[i * width + j];
      initializer[initializer.length - 2] = onnx.TensorProto.create({
        name: `w${l}`,
        dims: [width, width],
        dataType: weightType,
        rawData: raw(wt),
      });
      node.push({
        opType: "Gemm",
        input: [current, `w${l}`, `b${l}`],
        output: [`a${l}`],
        name: `gemm${l}`,
        attribute: [onnx.AttributeProto.create({ name: "transB", type: onnx.AttributeProto.AttributeType.INT, i: 1 })],
      });
    } else if (op === "gemm") {
      node.push({ opType: "Gemm", input: [current, `w${l}`, `b${l}`], output: [`a${l}`], name: `gemm${l}` });
    } else {
      node.push(
        { opType: "MatMul", input: [current, `w${l}`], output: [`m${l}`], name: `matmul${l}` },
        { opType: "Add", input: [`m${l}`, `b${l}`], output: [`a${l}`], name: `add${l}` },
      );
    }
    node.push({ opType: "Relu", input: [`a${l}`], output: [out], name: `relu${l}` });
    current = out;
  }
  if (float16) {
    node.push({ opType: "Cast", input: [current], output: ["y"], name: "cast_out", attribute: [castTo(FLOAT)] });
  }
  return modelBytes("dense_relu", node, initializer, [valueInfo("x", [batch, width])], [
    valueInfo("y", [batch, width]),
  ]);
}

/**
 * A model that does no work: `y = Identity(x)`, float32 `[batch, width]`.
 * Its run time through ORT is the floor of ORT's per-run cost.
 */
export function identityModel({ width, batch = "batch" }: { width: number; batch?: number | string }): Uint8Array {
  return unaryModel("Identity", [batch, width]);
}

/**
 * A model of one node: `y = op(x)`, `x` and `y` of ONNX element type `elemType` (`TensorProto.DataType`; default
 * float) and dimensions `dims` (a number, or a name for a free dimension), opset 17.
 * @example
 * ```ts
 * unaryModel("Not", ["batch", 3], onnx.TensorProto.DataType.BOOL); // y = Not(x), bool [batch, 3]
 * ```
 */
export function unaryModel(op: string, dims: (number | string)[], elemType: number = FLOAT): Uint8Array {
  const node = [{ opType: op, input: ["x"], output: ["y"], name: op.toLowerCase() }];
  return modelBytes(op.toLowerCase(), node, [], [valueInfo("x", dims, elemType)], [valueInfo("y", dims, elemType)]);
}

/** The initializers of {@link denseReluModel} by name (`w0`, `b0`, ...), float32, as the model holds them. */
export function denseReluInitializers({ layers, width }: DenseReluOptions): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (let l = 0; l < layers; l++) {
    const { w, b } = denseWeights(l, width);
    out.set(`w${l}`, w);
    out.set(`b${l}`, b);
  }
  return out;
}

type ValueInfo = ReturnType<typeof onnx.ValueInfoProto.create>;
type GraphInit = NonNullable<Parameters<typeof onnx.GraphProto.create>[0]>;

function valueInfo(name: string, dims: (number | string)[], elemType: number = FLOAT): ValueInfo {
  const dim = (d: number | string) => (typeof d === "number" ? { dimValue: d } : { dimParam: d });
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map(dim) } } },
  });
}

function castTo(type: number) {
  return onnx.AttributeProto.create({ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: type });
}

function modelBytes(
  name: string,
  node: unknown[],
  initializer: unknown[],
  input: ValueInfo[],
  output: ValueInfo[],
): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane",
    opsetImport: [{ domain: "", version: 17 }],
    graph: onnx.GraphProto.create({
      name,
      node: node as GraphInit["node"],
      initializer: initializer as GraphInit["initializer"],
      input,
      output,
    }),
  });
  return onnx.ModelProto.encode(model).finish();
}

/** The same MLP in plain JS (float64 accumulation), for checks. */
export function denseReluReference(x: Float32Array, rows: number, { layers, width }: DenseReluOptions): Float32Array {
  let current = x;
  for (let l = 0; l < layers; l++) {
    const { w, b } = denseWeights(l, width);
    const next = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < width; j++) {
        let sum = b[j];
        for (let i = 0; i < width; i++) sum += current[r * width + i] * w[i * width + j];
        next[r * width + j] = Math.max(0, sum);
      }
    }
    current = next;
  }
  return current;
}

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function bytes64(values: number[]): Uint8Array {
  const a = BigInt64Array.from(values, BigInt);
  return new Uint8Array(a.buffer);
}

function bytes16(a: Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** IEEE half-precision bits of each float32, rounded to nearest even (subnormals kept, overflow to infinity). */
export function toHalf(values: Float32Array): Uint16Array {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    let mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mantissa |= 0x800000;
      const shift = 14 - e;
      let half = mantissa >>> shift;
      const rest = mantissa & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rest > mid || (rest === mid && (half & 1))) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
    out[i] = sign | half;
  }
  return out;
}

/** Writes `model` to a new temporary folder and returns the file's path. */
export async function writeTempModel(model: Uint8Array, name = "model.onnx"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-ort-" });
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, model);
  return path;
}

/**
 * The body of a `Loop` that multiplies `x_in` (float32 `[1, width]`) by `w` once an iteration, keeping its condition;
 * with `identity` (`width × width`, float32) as `w`, every iteration leaves `x` as it was.
 */
function matMulLoopBody(width: number) {
  const identity = new Float32Array(width * width);
  for (let i = 0; i < width; i++) identity[i * width + i] = 1;
  const row = (name: string) => valueInfo(name, [1, width]);
  const scalar = (name: string, elemType: number) =>
    onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType, shape: { dim: [] } } } });
  const body = onnx.GraphProto.create({
    name: "step",
    node: [
      { opType: "Identity", input: ["cond_in"], output: ["cond_out"], name: "keep_going" },
      { opType: "MatMul", input: ["x_in", "w"], output: ["x_out"], name: "step_matmul" },
    ],
    input: [scalar("i", INT64), scalar("cond_in", onnx.TensorProto.DataType.BOOL), row("x_in")],
    output: [scalar("cond_out", onnx.TensorProto.DataType.BOOL), row("x_out")],
  });
  return { body, identity, row, scalar };
}

/**
 * A model whose run lasts as long as its caller asks: `y = x · Wⁿ` computed
 * as a `Loop` of `n` MatMuls, where `n` is the int64 scalar input `n`, `x`
 * is float32 [1, width] and W is the identity (so `y` equals `x` for every
 * `n`, and values never grow). ORT reads a run's terminate flag before each
 * node of each iteration, so a terminated run stops within one iteration:
 * the model for tests of cancelling a long run.
 */
export function loopMatMulModel(width = 256): Uint8Array {
  const { body, identity, row, scalar } = matMulLoopBody(width);
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane",
    opsetImport: [{ domain: "", version: 17 }],
    graph: onnx.GraphProto.create({
      name: "loop_matmul",
      node: [{
        opType: "Loop",
        input: ["n", "", "x"],
        output: ["y"],
        name: "loop",
        attribute: [{ name: "body", type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
      }],
      initializer: [
        onnx.TensorProto.create({ name: "w", dims: [width, width], dataType: FLOAT, rawData: bytes(identity) }),
      ],
      input: [scalar("n", INT64), row("x")],
      output: [row("y")],
    }),
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * `y = Reshape(x, shape)`: `x` float32 `[n]`, `shape` int64 `[2]` given with each request, `y` float32 `[a, b]`. The
 * same `x` can come out `[n, 1]` or `[1, n]`, so what later broadcasts do depends on an input's values, not its
 * dimensions. For tests of which models' runs may go inline.
 */
export function reshapeByInputModel(): Uint8Array {
  const node = [{ opType: "Reshape", input: ["x", "shape"], output: ["y"], name: "reshape" }];
  const INT64 = onnx.TensorProto.DataType.INT64;
  return modelBytes("reshape", node, [], [valueInfo("x", ["n"]), valueInfo("shape", [2], INT64)], [
    valueInfo("y", ["a", "b"]),
  ]);
}

/**
 * `y = MatMul(a, b)`, float32, `a` `[m, k]` and `b` `[k, n]` with all three dimensions free: an operator whose work
 * follows input shapes, yet the same number of input elements can cost a dot product (`[1, k]·[k, 1]`) or an outer
 * product (`[k, 1]·[1, k]`, k² outputs). For tests of which runs go inline.
 */
export function matMulModel(): Uint8Array {
  const node = [{ opType: "MatMul", input: ["a", "b"], output: ["y"], name: "matmul" }];
  return modelBytes("matmul", node, [], [valueInfo("a", ["m", "k"]), valueInfo("b", ["k", "n"])], [
    valueInfo("y", ["m", "n"]),
  ]);
}

/**
 * `y = Reshape(x, Cast(shape))`: `x` float32 `[n]`, `shape` float32 `[2]` given with each request and cast to int64
 * inside the model, `y` float32 `[a, b]`. Every input is float, yet the request's values still set `y`'s shape, as
 * with {@link reshapeByInputModel}. For tests of which models' runs may go inline.
 */
export function reshapeByCastModel(): Uint8Array {
  const node = [
    { opType: "Cast", input: ["shape"], output: ["shape64"], name: "cast", attribute: [castTo(INT64)] },
    { opType: "Reshape", input: ["x", "shape64"], output: ["y"], name: "reshape" },
  ];
  return modelBytes("reshape_by_cast", node, [], [valueInfo("x", ["n"]), valueInfo("shape", [2])], [
    valueInfo("y", ["a", "b"]),
  ]);
}

/**
 * `y = Reshape(x, Concat(Slice(Shape(x), 0, 1), [-1]))`: `x` float32 `[batch, 2, 3]` flattened to `[batch, 6]` as
 * PyTorch's exporter writes `x.flatten(1)`. The shape comes from `x`'s dimensions, never its values. For tests of
 * which models' runs may go inline.
 */
export function flattenByShapeModel(): Uint8Array {
  const int64s = (name: string, values: number[]) =>
    onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, rawData: bytes64(values) });
  const node = [
    { opType: "Shape", input: ["x"], output: ["dims"], name: "shape" },
    { opType: "Slice", input: ["dims", "zero", "one"], output: ["batch"], name: "slice" },
    { opType: "Concat", input: ["batch", "rest"], output: ["shape"], name: "concat", attribute: [axis(0)] },
    { opType: "Reshape", input: ["x", "shape"], output: ["y"], name: "reshape" },
  ];
  const initializer = [int64s("zero", [0]), int64s("one", [1]), int64s("rest", [-1])];
  return modelBytes("flatten_by_shape", node, initializer, [valueInfo("x", ["batch", 2, 3])], [
    valueInfo("y", ["batch", 6]),
  ]);
}

function axis(value: number) {
  return onnx.AttributeProto.create({ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: value });
}

/**
 * `y = x · Wⁿ` as {@link loopMatMulModel} computes it, where `n` comes from the float32 input `count` (`[1]`, cast to
 * int64), but hidden in a model-local function (`ModelProto.functions`, IR 8): the main graph holds one node,
 * `isolane.test:Add(x, count)`, a name of a fixed-cost operator in another domain, whose body is the `Cast`, the `Loop`
 * and its MatMuls. `x` float32 `[1, width]`, `y` float32 `[1, width]` (equal to `x` for every `n`). A request's values
 * decide how long a run with the same input dimensions lasts. For tests of which models' runs may go inline.
 */
export function localFunctionLoopModel(width = 128): Uint8Array {
  const { body, identity, row } = matMulLoopBody(width);
  const w = onnx.TensorProto.create({ name: "w", dims: [width, width], dataType: FLOAT, rawData: bytes(identity) });
  const domain = "isolane.test";
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane",
    opsetImport: [{ domain: "", version: 17 }, { domain, version: 1 }],
    graph: onnx.GraphProto.create({
      name: "local_function_loop",
      node: [{ opType: "Add", domain, input: ["x", "count"], output: ["y"], name: "hidden" }],
      input: [row("x"), valueInfo("count", [1])],
      output: [row("y")],
    }),
    functions: [{
      name: "Add",
      domain,
      input: ["x", "count"],
      output: ["y"],
      opsetImport: [{ domain: "", version: 17 }],
      node: [
        {
          opType: "Constant",
          output: ["w"],
          name: "weights",
          attribute: [{ name: "value", type: onnx.AttributeProto.AttributeType.TENSOR, t: w }],
        },
        { opType: "Cast", input: ["count"], output: ["count64"], name: "cast", attribute: [castTo(INT64)] },
        { opType: "Squeeze", input: ["count64"], output: ["n"], name: "squeeze" },
        {
          opType: "Loop",
          input: ["n", "", "x"],
          output: ["y"],
          name: "loop",
          attribute: [{ name: "body", type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
        },
      ],
    }],
  });
  return onnx.ModelProto.encode(model).finish();
}
