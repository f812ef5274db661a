/**
 * The operators of an ONNX model, read straight from its protobuf bytes (no onnx-proto, which costs an isolate some
 * 30 ms to import): `ModelProto.graph` (field 7) → `GraphProto.node` (1) → `NodeProto.op_type` (4), and whether a
 * node has a graph attribute (`AttributeProto.g` (6) or `graphs` (11): `Loop`, `Scan`, `If`), and the element types
 * of the graph's inputs (`GraphProto.input` (11) → `ValueInfoProto.type` (2) → `TypeProto.tensor_type` (1) →
 * `elem_type` (1)), and which shape operands take values computed from a graph input (`NodeProto.input` (1),
 * `output` (2), `ValueInfoProto.name` (1)).
 * @module
 */

/** What {@link modelOps} found. */
export interface ModelOps {
  /** Operator types of the main graph's nodes (custom domains included, by type name only). */
  ops: Set<string>;
  /** Whether a node carries a subgraph (control flow). */
  subgraphs: boolean;
  /**
   * Whether the model defines functions of its own (`ModelProto.functions`, field 25): a node of the main graph may
   * then run any body under any operator name (a `Loop` behind `mydomain:Add`), which {@link ops} does not show.
   */
  localFunctions: boolean;
  /**
   * ONNX element types (`TensorProto.DataType`: 1 float, 7 int64, 9 bool, ...) of the main graph's inputs, in order;
   * 0 for an input that is not a tensor or declares none.
   */
  inputTypes: number[];
  /**
   * Operator types of the main graph's nodes whose shape operands ({@link shapeOperands}) take a value computed from
   * a graph input's values (a float input `Cast` to int64 and used as a `Reshape`'s shape, say); empty when every
   * such operand comes from initializers, constants and input dimensions (`Shape`, `Size`) only.
   */
  shapesFromInputs: Set<string>;
}

/**
 * The inputs (by position) of ONNX operators whose values set the shape of an output or how much work a node does:
 * shapes, repeats, sizes, scales, pads, axes, split sizes, `TopK`'s k, `Range`'s start, limit and delta, `Slice`'s
 * starts, ends, axes and steps, `OneHot`'s depth, `NonMaxSuppression`'s limits. A value there that a request can
 * change makes the same input dimensions cost a different amount of work. From the ONNX operator specifications
 * (`docs/Operators.md`), opsets up to 21.
 */
export const shapeOperands: ReadonlyMap<string, readonly number[]> = new Map([
  ["CenterCropPad", [1]],
  ["Col2Im", [1, 2]],
  ["ConstantOfShape", [0]],
  ["DFT", [1, 2]],
  ["Expand", [1]],
  ["MaxUnpool", [2]],
  ["NonMaxSuppression", [2, 3, 4]],
  ["OneHot", [1]],
  ["Pad", [1, 3]],
  ["Range", [0, 1, 2]],
  ["ReduceL1", [1]],
  ["ReduceL2", [1]],
  ["ReduceLogSum", [1]],
  ["ReduceLogSumExp", [1]],
  ["ReduceMax", [1]],
  ["ReduceMean", [1]],
  ["ReduceMin", [1]],
  ["ReduceProd", [1]],
  ["ReduceSum", [1]],
  ["ReduceSumSquare", [1]],
  ["Reshape", [1]],
  ["Resize", [1, 2, 3]],
  ["Slice", [1, 2, 3, 4]],
  ["Split", [1]],
  ["Squeeze", [1]],
  ["STFT", [1, 2, 3]],
  ["Tile", [1]],
  ["TopK", [1]],
  ["Unsqueeze", [1]],
  ["Upsample", [1]],
]);

/** Operators whose outputs follow their input's dimensions, never its values. */
const dimensionsOnly: ReadonlySet<string> = new Set(["Shape", "Size"]);

const textDecoder = new TextDecoder();

/**
 * Reads protobuf fields of `bytes[start, end)`; calls `field` for each length-delimited one, and `scalar` (when
 * given) with each varint's value.
 */
function fields(
  bytes: Uint8Array,
  start: number,
  end: number,
  field: (number: number, from: number, to: number) => void,
  scalar?: (number: number, value: number) => void,
): void {
  let at = start;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (at >= end) throw new RangeError("Truncated varint");
      const byte = bytes[at++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
      if (scale > 2 ** 63) throw new RangeError("Varint too long");
    }
  };
  while (at < end) {
    const key = varint();
    const wire = key % 8;
    const number = Math.floor(key / 8);
    if (wire === 0) {
      const value = varint();
      scalar?.(number, value);
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = varint();
      if (at + length > end) throw new RangeError("Truncated field");
      field(number, at, at + length);
      at += length;
    } else throw new RangeError(`Unsupported wire type ${wire}`);
  }
  if (at !== end) throw new RangeError("Truncated message");
}

/**
 * The operator types of the model in `bytes` (an ONNX `ModelProto`), whether any node holds a subgraph, its inputs'
 * element types, and which operators take a shape from an input's values: a value is computed from the graph's inputs
 * when a node that makes it has an input that is (or is computed from) a graph input, `Shape` and `Size` excepted; an
 * initializer listed as a graph input counts as an input (a request can feed it).
 * @throws {RangeError} when the bytes are not a well-formed protobuf message.
 * @example
 * ```ts
 * modelOps(await Deno.readFile("functions/mlp/mlp.onnx"));
 * // { ops: Set { "MatMul", "Add", "Relu" }, subgraphs: false, localFunctions: false, inputTypes: [1],
 * //   shapesFromInputs: Set {} }
 * ```
 */
export function modelOps(bytes: Uint8Array): ModelOps {
  const found: ModelOps = {
    ops: new Set(),
    subgraphs: false,
    localFunctions: false,
    inputTypes: [],
    shapesFromInputs: new Set(),
  };
  const fromInputs = new Set<string>();
  const nodes: { op: string; inputs: string[]; outputs: string[] }[] = [];
  const text = (a: number, b: number) => textDecoder.decode(bytes.subarray(a, b));
  fields(bytes, 0, bytes.length, (n, from, to) => {
    if (n === 25) found.localFunctions = true;
    if (n !== 7) return;
    fields(bytes, from, to, (g, nodeFrom, nodeTo) => {
      if (g === 11) {
        let type = 0;
        fields(bytes, nodeFrom, nodeTo, (v, a, b) => {
          if (v === 1) fromInputs.add(text(a, b));
          if (v !== 2) return;
          fields(bytes, a, b, (t, c, d) => {
            if (t === 1) fields(bytes, c, d, () => {}, (e, value) => void (e === 1 && (type = value)));
          });
        });
        found.inputTypes.push(type);
        return;
      }
      if (g !== 1) return;
      const node = { op: "", inputs: [] as string[], outputs: [] as string[] };
      fields(bytes, nodeFrom, nodeTo, (f, a, b) => {
        if (f === 1) node.inputs.push(text(a, b));
        else if (f === 2) node.outputs.push(text(a, b));
        else if (f === 4) node.op = text(a, b);
        else if (f === 5) {
          fields(bytes, a, b, (attr) => {
            if (attr === 6 || attr === 11) found.subgraphs = true;
          });
        }
      });
      if (node.op) found.ops.add(node.op);
      nodes.push(node);
    });
  });
  // Nodes come in topological order in a valid model; passes until nothing changes cover one that is not.
  for (let changed = true; changed;) {
    changed = false;
    for (const { op, inputs, outputs } of nodes) {
      if (dimensionsOnly.has(op) || !inputs.some((name) => fromInputs.has(name))) continue;
      for (const name of outputs) {
        if (fromInputs.has(name)) continue;
        fromInputs.add(name);
        changed = true;
      }
    }
  }
  for (const { op, inputs } of nodes) {
    if (shapeOperands.get(op)?.some((at) => inputs[at] !== undefined && fromInputs.has(inputs[at]))) {
      found.shapesFromInputs.add(op);
    }
  }
  return found;
}
