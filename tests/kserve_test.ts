/**
 * KServe v2 / Open Inference Protocol against the real runtime and the mlp
 * function (which declares a tensor signature), with the protocol's JSON.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "./support/server.ts";
import { assertClose, mlpInput, mlpReference } from "./support/mlp_reference.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));

async function v2(server: TestServer, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("kserve v2: health, metadata, readiness and inference on mlp", async (t) => {
  await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });

  await t.step("server metadata and health", async () => {
    assert.deepEqual((await v2(server, "/v2")).body, {
      name: "isolane",
      version: "0.1.0",
      extensions: ["binary_tensor_data", "model_configuration"],
    });
    assert.deepEqual(await v2(server, "/v2/health/live"), { status: 200, body: { live: true } });
    assert.deepEqual(await v2(server, "/v2/health/ready"), { status: 200, body: { ready: true } });
  });

  await t.step("model metadata and readiness, with and without a version", async () => {
    const meta = await v2(server, "/v2/models/mlp");
    assert.equal(meta.status, 200);
    assert.deepEqual(meta.body, {
      name: "mlp",
      versions: ["1"],
      platform: "isolane_onnxruntime",
      inputs: [{ name: "x", datatype: "FP32", shape: [-1, 4] }],
      outputs: [{ name: "y", datatype: "FP32", shape: [-1, 3] }],
    });
    assert.equal((await v2(server, "/v2/models/mlp/versions/1")).status, 200);
    assert.deepEqual(await v2(server, "/v2/models/mlp/ready"), { status: 200, body: { name: "mlp", ready: true } });
    assert.equal((await v2(server, "/v2/models/mlp/versions/1/ready")).status, 200);
  });

  await t.step("infer: flat FP32 data in, the reference out, id echoed", async () => {
    const x = mlpInput(11, 2);
    const { status, body } = await v2(server, "/v2/models/mlp/infer", {
      id: "req-7",
      inputs: [{ name: "x", shape: [2, 4], datatype: "FP32", data: x.flat() }],
    });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.model_name, "mlp");
    assert.equal(body.model_version, "1");
    assert.equal(body.id, "req-7");
    const [y] = body.outputs;
    assert.equal(y.name, "y");
    assert.equal(y.datatype, "FP32");
    assert.deepEqual(y.shape, [2, 3]);
    assertClose([y.data.slice(0, 3), y.data.slice(3)], mlpReference(x), 1e-5, "v2 mlp");
  });

  await t.step("infer: nested data and a versioned path and an outputs list", async () => {
    const x = mlpInput(12, 1);
    const { status, body } = await v2(server, "/v2/models/mlp/versions/1/infer", {
      inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: x }],
      outputs: [{ name: "y" }],
    });
    assert.equal(status, 200);
    assert.equal(body.id, undefined);
    assertClose([body.outputs[0].data], mlpReference(x), 1e-5, "nested");
  });

  await t.step('errors take the protocol\'s shape {"error": string} with the right status', async () => {
    const cases: [string, unknown, number, RegExp][] = [
      [
        "/v2/models/mlp/infer",
        { inputs: [{ name: "x", shape: [1, 4], datatype: "INT32", data: [1, 2, 3, 4] }] },
        400,
        /must be FP32/,
      ],
      [
        "/v2/models/mlp/infer",
        { inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] },
        400,
        /shape \[1,3\]/,
      ],
      ["/v2/models/mlp/infer", { inputs: [] }, 400, /Not a v2 inference request/],
      ["/v2/models/mlp/infer", "{nope", 400, /not valid JSON/],
      [
        "/v2/models/mlp/infer",
        { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }], outputs: [{ name: "z" }] },
        400,
        /Unknown output 'z'/,
      ],
      ["/v2/models/nope/infer", { inputs: [] }, 404, /No function named 'nope'/],
      ["/v2/models/ocr/infer", { inputs: [] }, 404, /declares no tensor signature/],
      ["/v2/models/mlp/versions/9/infer", { inputs: [] }, 404, /serves version 1, not 9/],
    ];
    for (const [path, body, status, message] of cases) {
      const response = await v2(server, path, body);
      assert.equal(response.status, status, `${path} ${JSON.stringify(body)}`);
      assert.equal(typeof response.body.error, "string");
      assert.match(response.body.error, message);
    }
    const wrongType = await v2(server, "/v2/models/mlp/infer", "x=1", { "content-type": "text/plain" });
    assert.equal(wrongType.status, 415);
    assert.equal(typeof wrongType.body.error, "string");
  });
});
