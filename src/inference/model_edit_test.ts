/**
 * `appendOutputs` and `editModels` on real ONNX models run by ORT (C API, CPU): the appended ArgMax, ArgMin,
 * ReduceMax and ReduceMin outputs of an edited model give what the unedited model's output reduced in JS gives, at
 * opset 9 (ReduceMax's axes an attribute) and 18 (an input); bad edits fail with the model and the reason named.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import onnxProto from "onnx-proto";
import { Tensor } from "onnxruntime-common";
import { NativeSession, OrtEnv, ortLibraryPath } from "../../native/ort/mod.ts";
import { IsolaneError } from "../errors.ts";
import { appendOutputs, editModels, modelFiles } from "./model_edit.ts";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const libraryPath = ortLibraryPath(fileURLToPath(new URL("../../node_modules", import.meta.url)));
const env = OrtEnv.open({ libraryPath });

/** A classifier's head: `probs = Softmax(x * 3)` over the last axis of x [batch, steps, classes]. */
function softmaxModel(opset: number, classes: number): Uint8Array {
  const dim = (d: string | number) => (typeof d === "string" ? { dimParam: d } : { dimValue: d });
  const info = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [dim("batch"), dim("steps"), dim(classes)] } } },
    });
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane",
    opsetImport: [{ domain: "", version: opset }],
    graph: {
      name: "head",
      node: [
        { opType: "Mul", input: ["x", "three"], output: ["scaled"] },
        {
          opType: "Softmax",
          input: ["scaled"],
          output: ["probs"],
          attribute: [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 2 }],
        },
      ],
      initializer: [{ name: "three", dataType: FLOAT, dims: [], floatData: [3] }],
      input: [info("x")],
      output: [info("probs")],
    },
  })).finish();
}

async function withSession<T>(bytes: Uint8Array, use: (session: NativeSession) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-edit-test-" });
  const path = join(dir, "model.onnx");
  await Deno.writeFile(path, bytes);
  const session = NativeSession.create(env, path, { provider: "cpu" });
  try {
    return await use(session);
  } finally {
    await session.release();
    await Deno.remove(dir, { recursive: true });
  }
}

/** `reduce` over axis `axis` of a row-major [a, b, c] array: index (by `better`) or value of the first best. */
function reduceJs(data: Float32Array, dims: number[], axis: number, better: (p: number, best: number) => boolean) {
  const [a, b, c] = dims;
  const stride = [b * c, c, 1];
  const indices: number[] = [];
  const values: number[] = [];
  const outer = dims.filter((_, i) => i !== axis);
  const outerStride = stride.filter((_, i) => i !== axis);
  for (let i = 0; i < outer[0]; i++) {
    for (let j = 0; j < outer[1]; j++) {
      const base = i * outerStride[0] + j * outerStride[1];
      let best = 0;
      for (let k = 1; k < dims[axis]; k++) {
        if (better(data[base + k * stride[axis]], data[base + best * stride[axis]])) best = k;
      }
      indices.push(best);
      values.push(data[base + best * stride[axis]]);
    }
  }
  void a;
  return { indices, values };
}

for (const opset of [9, 18]) {
  Deno.test(`appendOutputs (opset ${opset}): the appended outputs are the unedited output's reductions`, async () => {
    const classes = 37;
    const model = softmaxModel(opset, classes);
    const edited = await appendOutputs(model, {
      classes: { op: "ArgMax", of: "probs" },
      best: { op: "ReduceMax", of: "probs", axis: -1 },
      leastStep: { op: "ArgMin", of: "probs", axis: 1 },
      least: { op: "ReduceMin", of: "probs", axis: 2 },
    }, { fn: "f", model: "head" });
    const dims = [2, 5, classes];
    const x = new Tensor(
      "float32",
      Float32Array.from({ length: 2 * 5 * classes }, (_, i) => Math.sin(i * 0.77) * 2 + (i % 7 === 0 ? 1.5 : 0)),
      dims,
    );
    const { probs } = await withSession(model, (s) => s.run({ x }));
    const data = probs.data as Float32Array;
    await withSession(edited, async (session) => {
      assert.deepEqual(session.outputNames, ["classes", "best", "leastStep", "least"]);
      assert.deepEqual(
        session.outputMetadata.map((m) => (m.isTensor ? [m.type, m.shape.length] : [])),
        [["int64", 2], ["float32", 2], ["int64", 2], ["float32", 2]],
      );
      const out = await session.run({ x });
      const max = reduceJs(data, dims, 2, (p, best) => p > best);
      const minStep = reduceJs(data, dims, 1, (p, best) => p < best);
      const min = reduceJs(data, dims, 2, (p, best) => p < best);
      assert.deepEqual(out.classes.dims, [2, 5]);
      assert.deepEqual(Array.from(out.classes.data as BigInt64Array, Number), max.indices);
      assert.deepEqual(Array.from(out.best.data as Float32Array), max.values);
      assert.deepEqual(out.leastStep.dims, [2, classes]);
      assert.deepEqual(Array.from(out.leastStep.data as BigInt64Array, Number), minStep.indices);
      assert.deepEqual(Array.from(out.least.data as Float32Array), min.values);
      // Not a constant answer: the rows' best classes differ.
      assert.ok(new Set(max.indices).size > 3, `best classes ${max.indices}`);
    });
  });
}

Deno.test("appendOutputs: a bad edit fails with the function, the model and what is wrong", async () => {
  const model = softmaxModel(9, 4);
  const names = { fn: "reader", model: "head" };
  const refused: [Parameters<typeof appendOutputs>[1], RegExp][] = [
    [
      { c: { op: "ArgMax", of: "logits" } },
      /model 'head' has no output 'logits' for output 'c' \(ArgMax\).*outputs: probs/,
    ],
    [{ scaled: { op: "ArgMax", of: "probs" } }, /model 'head' already has a value named 'scaled'/],
    [{ x: { op: "ReduceMax", of: "probs" } }, /model 'head' already has a value named 'x'/],
    [{ c: { op: "ArgMax", of: "probs", axis: 3 } }, /output 'c' reduces axis 3 of 'probs', which has 3 axes/],
    [{ c: { op: "ReduceMin", of: "probs", axis: -4 } }, /output 'c' reduces axis -4 of 'probs'/],
  ];
  for (const [outputs, reason] of refused) {
    await assert.rejects(appendOutputs(model, outputs, names), (error: unknown) => {
      assert.ok(error instanceof IsolaneError);
      assert.equal(error.code, "function_unavailable");
      assert.match(error.message, /^Cannot load function 'reader': /);
      assert.match(error.message, reason);
      return true;
    });
  }
  await assert.rejects(
    appendOutputs(new TextEncoder().encode("not a model at all"), { c: { op: "ArgMax", of: "probs" } }, names),
    /model 'head' is not a valid ONNX model/,
  );
});

/** `y = Identity(x)`, both of `elemType` and shape `dims` (empty: a scalar). */
function identityModel(elemType: number, dims: number[]): Uint8Array {
  const info = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
    });
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "id",
      node: [{ opType: "Identity", input: ["x"], output: ["y"] }],
      input: [info("x")],
      output: [info("y")],
    },
  })).finish();
}

Deno.test("appendOutputs: a bool, string or scalar output is refused at the edit, not by ORT's load", async () => {
  const { BOOL, STRING, INT64 } = onnx.TensorProto.DataType;
  const names = { fn: "reader", model: "flags" };
  const refused: [Uint8Array, Parameters<typeof appendOutputs>[1], RegExp][] = [
    [
      identityModel(BOOL, [2, 3]),
      { c: { op: "ReduceMax", of: "y" } },
      /output 'y' holds bool tensors, which ReduceMax does not reduce/,
    ],
    [identityModel(STRING, [2, 3]), { c: { op: "ArgMax", of: "y" } }, /output 'y' holds string tensors, which ArgMax/],
    [
      identityModel(FLOAT, []),
      { c: { op: "ArgMin", of: "y" } },
      /output 'y' is a scalar: it has no axis for output 'c'/,
    ],
  ];
  for (const [model, outputs, reason] of refused) {
    await assert.rejects(appendOutputs(model, outputs, names), (error: unknown) => {
      assert.ok(error instanceof IsolaneError);
      assert.equal(error.code, "function_unavailable");
      assert.match(error.message, /^Cannot load function 'reader': model 'flags' /);
      assert.match(error.message, reason);
      return true;
    });
  }
  // An int64 output is numeric: reduced, and ORT runs it.
  const edited = await appendOutputs(identityModel(INT64, [2, 3]), { c: { op: "ReduceMax", of: "y", axis: 1 } }, names);
  await withSession(edited, async (session) => {
    const out = await session.run({ x: new Tensor("int64", BigInt64Array.of(1n, 9n, 3n, -4n, -5n, -6n), [2, 3]) });
    assert.deepEqual(Array.from(out.c.data as BigInt64Array), [9n, -4n]);
  });
});

Deno.test("editModels: an edited copy per source and edit, reused; plain declarations keep their file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-edit-test-" });
  try {
    const path = join(dir, "head.onnx");
    await Deno.writeFile(path, softmaxModel(13, 5));
    const argmax = { file: "head.onnx", outputs: { classes: { op: "ArgMax" as const, of: "probs" } } };
    const argmin = { file: "head.onnx", outputs: { classes: { op: "ArgMin" as const, of: "probs" } } };
    const models = { plain: "head.onnx", a: argmax, b: argmin, again: argmax };
    assert.deepEqual(modelFiles(models), { plain: "head.onnx", a: "head.onnx", b: "head.onnx", again: "head.onnx" });
    const paths = await editModels("f", models, { plain: path, a: path, b: path, again: path });
    assert.equal(paths.plain, path);
    assert.notEqual(paths.a, path);
    assert.notEqual(paths.a, paths.b);
    assert.equal(paths.again, paths.a);
    await withSession(await Deno.readFile(paths.b), async (session) => {
      assert.deepEqual(session.outputNames, ["classes"]);
      const x = new Tensor("float32", Float32Array.from([5, 1, 0, 2, 3, 9, 8, 7, 6, 5]), [1, 2, 5]);
      assert.deepEqual(Array.from((await session.run({ x })).classes.data as BigInt64Array, Number), [2, 4]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
