/**
 * Models with external data, through a real runtime: a model whose weights
 * sit in files beside it loads and answers; a model whose external data
 * location leaves the function's folder (`..`, an absolute path, a symbolic
 * link) fails its load with the reason, before ONNX Runtime reads anything.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import onnxProto from "onnx-proto";
import { mlpShape, mlpWeights } from "../scripts/make_mlp_model.ts";
import { assertClose, mlpInput, mlpReference } from "./support/mlp_reference.ts";
import { startServer } from "./support/server.ts";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const repoDenoJson = fileURLToPath(new URL("../deno.json", import.meta.url));
const mlpModule = await Deno.readTextFile(new URL("../functions/mlp/mod.ts", import.meta.url));
const mlpModel = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));

/** The mlp model with every initializer in an external file; `locations` overrides where w1 points. */
function externalMlp(locations: Record<string, string>): { model: Uint8Array; files: Record<string, Uint8Array> } {
  const { inputs, hidden, outputs } = mlpShape;
  const w = mlpWeights();
  const dims: Record<string, number[]> = { w1: [inputs, hidden], b1: [hidden], w2: [hidden, outputs], b2: [outputs] };
  const files: Record<string, Uint8Array> = {};
  const initializer = Object.entries(dims).map(([name, shape]) => {
    const data = new Uint8Array(w[name as keyof typeof w].buffer);
    const location = locations[name] ?? `weights/${name}.bin`;
    files[location] = data;
    return onnx.TensorProto.create({
      name,
      dims: shape,
      dataType: FLOAT,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: location },
        { key: "offset", value: "0" },
        { key: "length", value: String(data.byteLength) },
      ],
    });
  });
  const valueInfo = (name: string, width: number) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "batch" }, { dimValue: width }] } } },
    });
  const model = onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 8,
    producerName: "isolane",
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "mlp_external",
      node: [
        { opType: "MatMul", input: ["x", "w1"], output: ["h0"] },
        { opType: "Add", input: ["h0", "b1"], output: ["h1"] },
        { opType: "Relu", input: ["h1"], output: ["h2"] },
        { opType: "MatMul", input: ["h2", "w2"], output: ["y0"] },
        { opType: "Add", input: ["y0", "b2"], output: ["y"] },
      ],
      initializer,
      input: [valueInfo("x", inputs)],
      output: [valueInfo("y", outputs)],
    },
  })).finish();
  return { model, files };
}

/** Writes a function folder serving `model`, with the external files that stay inside it. */
async function writeFunction(root: string, name: string, built: ReturnType<typeof externalMlp>): Promise<string> {
  const dir = join(root, name);
  await Deno.mkdir(join(dir, "weights"), { recursive: true });
  await Deno.writeTextFile(join(dir, "mod.ts"), mlpModule);
  await Deno.writeFile(join(dir, "mlp.onnx"), built.model);
  for (const [location, data] of Object.entries(built.files)) {
    if (location.startsWith("/") || location.startsWith("..") || location === "link.bin") continue;
    await Deno.writeFile(join(dir, location), data);
  }
  return dir;
}

Deno.test("external data: beside the model it loads and answers; anything outside the folder fails the load", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "isolane-external-" });
  try {
    await writeFunction(root, "beside", externalMlp({ b2: "b2.data" }));
    await writeFunction(root, "dotdot", externalMlp({ w1: "../../deno.json" }));
    await writeFunction(root, "absolute", externalMlp({ w1: repoDenoJson }));
    const linked = await writeFunction(root, "linked", externalMlp({ w1: "link.bin" }));
    await Deno.symlink(repoDenoJson, join(linked, "link.bin"));
    // The model file itself a link to a model outside the folder.
    const modelLink = join(root, "modellink");
    await Deno.mkdir(modelLink);
    await Deno.writeTextFile(join(modelLink, "mod.ts"), mlpModule);
    await Deno.symlink(mlpModel, join(modelLink, "mlp.onnx"));

    await using server = await startServer({ functionsDir: root });

    await t.step("a model with its data files beside it (and in a subfolder) loads and answers", async () => {
      const x = mlpInput(5, 4);
      const response = await server.invoke("beside", { x });
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      assertClose(body.y, mlpReference(x), 1e-5, "beside");
    });

    const refused: Record<string, RegExp> = {
      dotdot: /model 'mlp' tensor 'w1' names external data '\.\.\/\.\.\/deno\.json': it leaves the function's folder/,
      absolute: /model 'mlp' tensor 'w1' names external data '\/.*deno\.json': an absolute path/,
      linked:
        /model 'mlp' tensor 'w1' names external data 'link\.bin': a link that resolves outside the function's folder/,
      modellink: /model 'mlp' resolves to .*functions\/mlp\/mlp\.onnx, outside the function's folder/,
    };
    for (const [name, reason] of Object.entries(refused)) {
      await t.step(`${name}: the load fails with the reason`, async () => {
        const response = await server.invoke(name, { x: mlpInput(1, 1) });
        const { error } = await response.json();
        assert.equal(response.status, 503);
        assert.equal(error.code, "function_unavailable");
        assert.match(error.message, reason);
        const info = await (await fetch(`${server.url}/v1/functions/${name}`)).json();
        assert.equal(info.status, "failed");
        assert.match(info.error, reason);
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
