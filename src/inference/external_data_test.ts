import assert from "node:assert/strict";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { checkModelFiles, externalDataRefs } from "./external_data.ts";
import { IsolaneError } from "../errors.ts";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function external(name: string, location: string) {
  return onnx.TensorProto.create({
    name,
    dims: [1],
    dataType: FLOAT,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [{ key: "location", value: location }],
  });
}

/** External tensors in an initializer, a Constant's attribute and an If's subgraph. */
function model(locations: { init: string; constant: string; branch: string }): Uint8Array {
  const branch = (name: string, init?: onnxProto.onnx.ITensorProto) =>
    onnx.GraphProto.create({
      name,
      initializer: init ? [init] : [],
      node: [{ opType: "Identity", input: [init ? init.name! : "c"], output: [`${name}_out`] }],
      output: [{ name: `${name}_out` }],
    });
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "g",
      initializer: [external("w", locations.init)],
      node: [
        {
          opType: "Constant",
          output: ["c"],
          attribute: [{ name: "value", type: 4, t: external("k", locations.constant) }],
        },
        {
          opType: "If",
          input: ["cond"],
          output: ["y"],
          attribute: [
            { name: "then_branch", type: 5, g: branch("then", external("inner", locations.branch)) },
            { name: "else_branch", type: 5, g: branch("else") },
          ],
        },
      ],
    },
  })).finish();
}

Deno.test("externalDataRefs finds external tensors in initializers, attributes and subgraphs", async () => {
  const refs = await externalDataRefs(model({ init: "w.bin", constant: "k.bin", branch: "../inner.bin" }));
  assert.deepEqual(refs.map((r) => `${r.tensor}=${r.location}`).sort(), ["inner=../inner.bin", "k=k.bin", "w=w.bin"]);
});

Deno.test("checkModelFiles refuses a location in a subgraph that leaves the folder, and accepts files beside", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-extdata-" });
  try {
    for (const f of ["w.bin", "k.bin", "inner.bin"]) await Deno.writeFile(join(dir, f), new Uint8Array(4));
    await Deno.writeFile(join(dir, "ok.onnx"), model({ init: "w.bin", constant: "k.bin", branch: "inner.bin" }));
    await checkModelFiles(join(dir, "ok.onnx"), dir, { fn: "f", model: "m" });
    await Deno.writeFile(join(dir, "bad.onnx"), model({ init: "w.bin", constant: "k.bin", branch: "../inner.bin" }));
    await assert.rejects(
      () => checkModelFiles(join(dir, "bad.onnx"), dir, { fn: "f", model: "m" }),
      (error: unknown) => {
        assert.ok(error instanceof IsolaneError);
        assert.equal(error.code, "function_unavailable");
        assert.match(
          error.message,
          /tensor 'inner' names external data '\.\.\/inner\.bin': it leaves the function's folder/,
        );
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("externalDataRefs decodes only bytes that name a location, wherever the key lies", async () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  // Near misses only: nothing to decode, so not even bytes that are no model fail.
  assert.deepEqual(await externalDataRefs(bytes("llllocatiolocatiOn lo l")), []);
  assert.deepEqual(await externalDataRefs(bytes("locatio")), []);
  // The key after near misses, and at the very end: the bytes are decoded (and, being no model, refused).
  await assert.rejects(externalDataRefs(bytes("\xff\xffllllocatiolocation")));
  await assert.rejects(externalDataRefs(bytes("location\xff\xff\xff")));
});
