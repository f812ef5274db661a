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
import onnxProto from "onnx-proto";
import { mlpInput, mlpReference } from "./support/mlp_reference.ts";
import { errorOf, startServer } from "./support/server.ts";
import { adminToken, bundleOf, deploy } from "./support/bundles.ts";
import { unaryModel } from "../native/ort/test_models.ts";

const mlpModel = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));

/** `y = Not(x)`, both bool [batch, 3]. */
function boolModel(): Uint8Array {
  return unaryModel("Not", ["batch", 3], onnxProto.onnx.TensorProto.DataType.BOOL);
}

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
      // Its mlp.onnx is a model whose output y is bool (boolModel).
      boolean: moduleWith(`{ any: { op: "ReduceMax", of: "y" } }`),
    };
    for (const [name, module] of Object.entries(functions)) {
      await Deno.mkdir(join(root, name));
      await Deno.writeTextFile(join(root, name, "mod.ts"), module);
      if (name === "boolean") await Deno.writeFile(join(root, name, "mlp.onnx"), boolModel());
      else await Deno.copyFile(mlpModel, join(root, name, "mlp.onnx"));
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
      boolean: /model 'mlp' output 'y' holds bool tensors, which ReduceMax does not reduce: reduce a numeric output/,
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

Deno.test("edited models: one file per edit under concurrent deploys, private, removed when the runtime stops", async () => {
  // The runtime's temporary folders go under TMPDIR: this test's own, so that other runtimes' folders are not counted.
  const tmp = await Deno.makeTempDir({ prefix: "isolane-model-edit-tmp-" });
  const empty = await Deno.makeTempDir({ prefix: "isolane-model-edit-fns-" });
  const data = await Deno.makeTempDir({ prefix: "isolane-model-edit-data-" });
  try {
    await using server = await startServer({
      functionsDir: empty,
      env: { TMPDIR: tmp, ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_DATA: data },
    });
    const mlp = await Deno.readFile(mlpModel);
    const same = await bundleOf({ "mod.ts": moduleWith(`{ best: { op: "ArgMax", of: "y" } }`), "mlp.onnx": mlp });
    const other = await bundleOf({ "mod.ts": moduleWith(`{ top: { op: "ReduceMax", of: "y" } }`), "mlp.onnx": mlp });
    // Five deploys at once, four of them the same edit of the same file.
    const names = ["a", "b", "c", "d", "e"];
    const deployed = await Promise.all(names.map((name) => deploy(server, name, name === "e" ? other : same)));
    for (const response of deployed) assert.equal(response.status, 201, await response.text());
    const x = mlpInput(3, 7);
    const argmax = mlpReference(x).map((row) => row.indexOf(Math.max(...row)));
    for (const name of names) {
      const body = await (await server.invoke(name, { x })).json();
      assert.deepEqual(Object.keys(body), [name === "e" ? "top" : "best"], JSON.stringify(body));
      if (name !== "e") assert.deepEqual(body.best, argmax);
    }
    const folders = [...Deno.readDirSync(tmp)].filter((e) => e.name.startsWith("isolane-models-"));
    assert.equal(folders.length, 1, JSON.stringify(folders));
    const folder = join(tmp, folders[0].name);
    assert.equal(Deno.statSync(folder).mode! & 0o777, 0o700);
    const files = [...Deno.readDirSync(folder)].map((e) => e.name).sort();
    assert.equal(files.length, 2, `one file per edit, no partial left: ${files}`);
    for (const file of files) {
      assert.match(file, /^[0-9a-f]{64}\.onnx$/);
      assert.equal(Deno.statSync(join(folder, file)).mode! & 0o777, 0o600);
    }
    const status = await server.stop();
    assert.equal(status.code, 0);
    assert.throws(() => Deno.statSync(folder), Deno.errors.NotFound);
  } finally {
    for (const dir of [tmp, empty, data]) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("edited models: a runtime that starts removes the folders of runtimes killed with SIGKILL, never a live one's", async () => {
  // The runtimes' temporary folders go under TMPDIR: this test's own, so that only its runtimes' folders are seen.
  const tmp = await Deno.makeTempDir({ prefix: "isolane-model-edit-tmp-" });
  const root = await Deno.makeTempDir({ prefix: "isolane-model-edit-fns-" });
  const modelFolders = () =>
    new Set([...Deno.readDirSync(tmp)].filter((e) => e.name.startsWith("isolane-models-")).map((e) => e.name));
  try {
    await Deno.mkdir(join(root, "best"));
    await Deno.writeTextFile(join(root, "best", "mod.ts"), moduleWith(`{ best: { op: "ArgMax", of: "y" } }`));
    await Deno.copyFile(mlpModel, join(root, "best", "mlp.onnx"));
    const x = mlpInput(2, 3);
    const argmax = mlpReference(x).map((row) => row.indexOf(Math.max(...row)));
    const serves = async (server: { invoke: (name: string, body: unknown) => Promise<Response> }) => {
      const response = await server.invoke("best", { x });
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.deepEqual(body.best, argmax);
    };

    await using live = await startServer({ functionsDir: root, env: { TMPDIR: tmp } });
    await serves(live);
    const liveFolders = modelFolders();
    assert.equal(liveFolders.size, 1, JSON.stringify([...liveFolders]));

    const killed = await startServer({ functionsDir: root, env: { TMPDIR: tmp } });
    await serves(killed);
    const killedFolder = [...modelFolders()].find((name) => !liveFolders.has(name));
    assert.ok(killedFolder, "the second runtime made a folder of its own");
    killed.kill("SIGKILL");
    assert.equal((await killed.stop()).signal, "SIGKILL");
    assert.ok(Deno.statSync(join(tmp, killedFolder, [...Deno.readDirSync(join(tmp, killedFolder))][0].name)).isFile);

    // A folder whose pid runs (this test's) but whose start time is not that process's: the pid was reused.
    const reused = join(tmp, `isolane-models-${Deno.pid}-1-abcdef`);
    await Deno.mkdir(reused);
    // A folder of an older runtime, named before pids were: which process made it cannot be told, so it stays.
    const unnamed = join(tmp, "isolane-models-Ab12Cd");
    await Deno.mkdir(unnamed);

    await using next = await startServer({ functionsDir: root, env: { TMPDIR: tmp } });
    // Removed before the runtime listens, which startServer waited for.
    const removed = next.logs.find((line) => line.msg === "removed the edited models of runtimes that ended");
    assert.ok(removed, "the new runtime logged what it removed");
    assert.deepEqual(
      [...(removed.folders as string[])].sort(),
      [join(tmp, killedFolder), reused].sort(),
    );
    // The live runtime's edited model is still there and served; the new runtime edits into a folder of its own.
    await serves(live);
    await serves(next);
    const after = modelFolders();
    const own = [...after].filter((name) => !liveFolders.has(name) && name !== "isolane-models-Ab12Cd");
    assert.deepEqual(after, new Set([...liveFolders, "isolane-models-Ab12Cd", ...own]));
    assert.equal(own.length, 1, JSON.stringify([...after]));
    assert.notEqual(own[0], killedFolder);
  } finally {
    for (const dir of [tmp, root]) await Deno.remove(dir, { recursive: true });
  }
});
