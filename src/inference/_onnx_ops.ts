/**
 * The operators of an ONNX model, read straight from its protobuf bytes (no onnx-proto, which costs an isolate some
 * 30 ms to import): `ModelProto.graph` (field 7) → `GraphProto.node` (1) → `NodeProto.op_type` (4), and whether a
 * node has a graph attribute (`AttributeProto.g` (6) or `graphs` (11): `Loop`, `Scan`, `If`), and the element types
 * of the graph's inputs (`GraphProto.input` (11) → `ValueInfoProto.type` (2) → `TypeProto.tensor_type` (1) →
 * `elem_type` (1)).
 * @module
 */

/** What {@link modelOps} found. */
export interface ModelOps {
  /** Operator types of the main graph's nodes (custom domains included, by type name only). */
  ops: Set<string>;
  /** Whether a node carries a subgraph (control flow). */
  subgraphs: boolean;
  /**
   * ONNX element types (`TensorProto.DataType`: 1 float, 7 int64, 9 bool, ...) of the main graph's inputs, in order;
   * 0 for an input that is not a tensor or declares none.
   */
  inputTypes: number[];
}

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
 * The operator types of the model in `bytes` (an ONNX `ModelProto`), and whether any node holds a subgraph.
 * @throws {RangeError} when the bytes are not a well-formed protobuf message.
 * @example
 * ```ts
 * modelOps(await Deno.readFile("functions/mlp/mlp.onnx"));
 * // { ops: Set { "MatMul", "Add", "Relu" }, subgraphs: false, inputTypes: [1] }
 * ```
 */
export function modelOps(bytes: Uint8Array): ModelOps {
  const found: ModelOps = { ops: new Set(), subgraphs: false, inputTypes: [] };
  fields(bytes, 0, bytes.length, (n, from, to) => {
    if (n !== 7) return;
    fields(bytes, from, to, (g, nodeFrom, nodeTo) => {
      if (g === 11) {
        let type = 0;
        fields(bytes, nodeFrom, nodeTo, (v, a, b) => {
          if (v !== 2) return;
          fields(bytes, a, b, (t, c, d) => {
            if (t === 1) fields(bytes, c, d, () => {}, (e, value) => void (e === 1 && (type = value)));
          });
        });
        found.inputTypes.push(type);
        return;
      }
      if (g !== 1) return;
      fields(bytes, nodeFrom, nodeTo, (f, a, b) => {
        if (f === 4) found.ops.add(textDecoder.decode(bytes.subarray(a, b)));
        else if (f === 5) {
          fields(bytes, a, b, (attr) => {
            if (attr === 6 || attr === 11) found.subgraphs = true;
          });
        }
      });
    });
  });
  return found;
}
