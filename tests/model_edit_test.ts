/**
 * Models declared with `outputs`, through a real runtime: the runtime appends
 * the reductions to the model at load, the handler's model gives them (checked
 * against the unedited model's arg-max and maximum, computed here), and
 * `GET /v1/functions/<name>` describes the edited model. A declaration that
 * names no output of the model, or an operator that is not a reduction, fails
 * the function's load with the model and the reason named (503
 * `function_unavailable` on invocation, never a 500).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mlpInput, mlpReference } from "./support/mlp_reference.ts";
import { errorOf, startServer } from "./support/server.ts";

const mlpModel = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));

/** A function serving mlp.onnx with `outputs` (as JSON) declared on its model; its handler returns every output. */
function moduleWith(outputs: string): string {
  return `import { defineFunction, Tensor, z } from "isolane";
export default defineFunction({
  description: "The mlp's best output per row",
  input: z.object({ x: z.array(z.array(z.number())) }),
  output: z.record(z.string(), z.array(z.number())),
  models: { mlp: { file: "mlp.onnx", outputs: ${outputs} } },
  async handler({ x }, { models }) {
    const out = await models.mlp.run({ x: new Tensor("float32", Float32Array.from(x.flat()), [x.length, 4]) });
    return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, Array.from(t.data as Iterable<number | bigint>, Number)]));
  },
});
`;
}

Deno.test("models with outputs: appended at load, served, described; bad ones fail the load", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "isolane-model-edit-" });
  try {
    const functions: Record<string, string> = {
      best: moduleWith(`{ best: { op: "ArgMax", of: "y" }, top: { op: "ReduceMax", of: "y", axis: 1 } }`),
      unknown: moduleWith(`{ best: { op: "ArgMax", of: "logits" } }`),
      taken: moduleWith(`{ x: { op: "ArgMax", of: "y" } }`),
      notreduction: moduleWith(`{ best: { op: "Softmax", of: "y" } }`),
    };
    for (const [name, module] of Object.entries(functions)) {
      await Deno.mkdir(join(root, name));
      await Deno.writeTextFile(join(root, name, "mod.ts"), module);
      await Deno.copyFile(mlpModel, join(root, name, "mlp.onnx"));
    }
    await using server = await startServer({ functionsDir: root });

    await t.step("the appended outputs are the unedited model's arg-max and maximum per row", async () => {
      const x = mlpInput(9, 40);
      const response = await server.invoke("best", { x });
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      const y = mlpReference(x);
      const argmax = y.map((row) => row.indexOf(Math.max(...row)));
      assert.deepEqual(Object.keys(body), ["best", "top"]);
      assert.deepEqual(body.best, argmax);
      body.top.forEach((v: number, i: number) => assert.ok(Math.abs(v - Math.max(...y[i])) < 1e-5, `row ${i}: ${v}`));
      assert.ok(new Set(argmax).size > 1, `rows' best outputs ${argmax}: not all the same`);
    });

    await t.step("GET /v1/functions/<name> describes the edited model's outputs", async () => {
      const info = await (await fetch(`${server.url}/v1/functions/best`)).json();
      const [model] = info.models;
      assert.equal(model.name, "mlp");
      assert.deepEqual(
        model.outputs.map((o: { name: string; type: string; shape: unknown[] }) => [o.name, o.type, o.shape.length]),
        [["best", "int64", 1], ["top", "float32", 1]],
      );
      assert.equal(model.source.file, "mlp.onnx");
    });

    const refused: Record<string, RegExp> = {
      unknown: /model 'mlp' has no output 'logits' for output 'best' \(ArgMax\) to reduce; its outputs: y/,
      taken: /model 'mlp' already has a value named 'x'/,
      notreduction:
        /Invalid function definition: .models\.mlp. outputs\.best\.op: Invalid option: expected one of "ArgMax"/,
    };
    for (const [name, reason] of Object.entries(refused)) {
      await t.step(`${name}: the load fails with the model and the reason`, async () => {
        const error = await errorOf(await server.invoke(name, { x: mlpInput(1, 1) }));
        assert.equal(error.status, 503, JSON.stringify(error));
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
