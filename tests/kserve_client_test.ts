/**
 * KServe v2 as Triton's own Python client speaks it (tests/support/triton_client.ts
 * reproduces its wire format): no content type, the binary tensor data
 * extension in and out, BYTES, every datatype exact, FP16, zero-size tensors,
 * the model configuration extension, and `{"error": string}` for every failure.
 */
import assert from "node:assert/strict";
import { startServer, type TestServer } from "./support/server.ts";
import { v2FunctionsDir } from "./support/tiny_models.ts";
import { assertClose, mlpInput, mlpReference } from "./support/mlp_reference.ts";
import {
  buildInferRequest,
  deserializeBytesTensor,
  type Elements,
  infer,
  type InferInput,
} from "./support/triton_client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON.parse keeping integer literals beyond 2^53 exact (as bigint), independent of the runtime's parser. */
function parseExact(text: string): Record<string, unknown> {
  return JSON.parse(
    text,
    (_k, v, context?: { source?: string }) =>
      typeof v === "number" && !Number.isSafeInteger(v) && /^-?\d+$/.test(context?.source ?? "")
        ? BigInt(context!.source!)
        : v,
  );
}

async function post(server: TestServer, path: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? encoder.encode(body) : body as Uint8Array<ArrayBuffer>,
  });
  const text = await response.text();
  return { status: response.status, text, headers: response.headers };
}

/** Every v2 datatype with values at its edges, as typed arrays (2 rows × 3). */
const edgeValues: Record<string, Elements | string[]> = {
  BOOL: Uint8Array.of(1, 0, 1, 1, 0, 0),
  UINT8: Uint8Array.of(0, 1, 127, 128, 254, 255),
  UINT16: Uint16Array.of(0, 1, 32767, 32768, 65534, 65535),
  UINT32: Uint32Array.of(0, 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1, 7),
  UINT64: BigUint64Array.of(0n, 1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 2n, 2n ** 64n - 1n),
  INT8: Int8Array.of(-128, -1, 0, 1, 126, 127),
  INT16: Int16Array.of(-32768, -1, 0, 1, 32766, 32767),
  INT32: Int32Array.of(-(2 ** 31), -1, 0, 1, 2 ** 31 - 2, 2 ** 31 - 1),
  INT64: BigInt64Array.of(-(2n ** 63n), -(2n ** 53n) - 1n, 0n, 9007199254740993n, 2n ** 63n - 2n, 2n ** 63n - 1n),
  FP16: new Uint16Array(Float16Array.of(0, -2.5, 65504, 0.000061035156, 1 / 3, -1).buffer),
  FP32: Float32Array.of(0, -1.5, 3.4028234663852886e38, 1.401298464324817e-45, 1 / 3, -7),
  FP64: Float64Array.of(0, -1.5, Number.MAX_VALUE, Number.MIN_VALUE, 1 / 3, -7),
  BYTES: ["", "a", "café", "日本", "\u0000nul", "x".repeat(300)],
};

function dtypeInputs(binary: boolean): InferInput[] {
  return Object.entries(edgeValues).map(([datatype, data]) => ({
    name: datatype.toLowerCase(),
    datatype,
    shape: [2, 3],
    data,
    binary,
  }));
}

/** Elements of a result output as the client's `as_numpy` would have them, compared as plain values. */
function valuesOf(datatype: string, output: { data?: unknown[]; bytes?: Uint8Array }): unknown[] {
  if (output.bytes) {
    const b = output.bytes;
    if (datatype === "BYTES") return deserializeBytesTensor(b).map((e) => decoder.decode(e));
    const typed = edgeValues[datatype] as Elements;
    const ctor = typed.constructor as new (buffer: ArrayBuffer) => Elements;
    return Array.from(new ctor(b.slice().buffer) as ArrayLike<unknown>);
  }
  return output.data!;
}

function expectedValues(datatype: string, json: boolean): unknown[] {
  const data = edgeValues[datatype];
  if (!json) return Array.from(data as ArrayLike<unknown>);
  if (datatype === "BOOL") return Array.from(data as Uint8Array, (b) => b !== 0);
  if (datatype === "FP16") return Array.from(new Float16Array((data as Uint16Array).buffer));
  // Each the shortest decimal that reads back to the float32 (NumPy's text), not the double it widens to.
  if (datatype === "FP32") return [0, -1.5, 3.4028235e38, 1e-45, 0.33333334, -7];
  if (datatype === "UINT64" || datatype === "INT64") {
    // Exact on the wire: small values parse as numbers, large ones as bigints.
    return Array.from(data as BigInt64Array, (v) => (v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : v));
  }
  return Array.from(data as ArrayLike<unknown>);
}

Deno.test("kserve v2 with Triton's client wire format", async (t) => {
  const functionsDir = await v2FunctionsDir();
  await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });

  await t.step(
    "binary inputs, no content type, no outputs named: binary outputs with the response header",
    async () => {
      const x = mlpInput(3, 5);
      const { status, result, contentType, error } = await infer(server.url, "mlp", [
        { name: "x", shape: [5, 4], datatype: "FP32", data: Float32Array.from(x.flat()) },
      ], { requestId: "r1" });
      assert.equal(status, 200, error ?? "");
      assert.equal(contentType, "application/octet-stream");
      assert.equal(result!.json.id, "r1");
      const y = result!.outputs.get("y")!;
      assert.deepEqual(y.shape, [5, 3]);
      assert.equal(y.datatype, "FP32");
      assert.equal(y.bytes!.length, 5 * 3 * 4);
      const data = Array.from(new Float32Array(y.bytes!.slice().buffer));
      assertClose(Array.from({ length: 5 }, (_, r) => data.slice(r * 3, r * 3 + 3)), mlpReference(x), 1e-5, "binary");
    },
  );

  await t.step("JSON inputs and JSON outputs with no content type; a versioned path", async () => {
    const x = mlpInput(4, 2);
    const { status, result, contentType } = await infer(server.url, "mlp", [
      { name: "x", shape: [2, 4], datatype: "FP32", data: Float32Array.from(x.flat()), binary: false },
    ], { outputs: [{ name: "y", binary: false }], version: "1" });
    assert.equal(status, 200);
    assert.match(contentType!, /^application\/json/);
    const y = result!.outputs.get("y")!;
    assert.equal(y.bytes, undefined);
    const data = y.data as number[];
    assertClose([data.slice(0, 3), data.slice(3)], mlpReference(x), 1e-5, "json");
  });

  await t.step("gzip and deflate request bodies (request_compression_algorithm)", async () => {
    for (const compression of ["gzip", "deflate"] as const) {
      const x = mlpInput(5, 1);
      const { status, result, error } = await infer(server.url, "mlp", [
        { name: "x", shape: [1, 4], datatype: "FP32", data: Float32Array.from(x.flat()) },
      ], { compression });
      assert.equal(status, 200, error ?? "");
      assertClose(
        [Array.from(new Float32Array(result!.outputs.get("y")!.bytes!.slice().buffer))],
        mlpReference(x),
        1e-5,
        compression,
      );
    }
  });

  await t.step("BYTES in and out, binary and JSON, with a mix of binary and JSON outputs", async () => {
    const text = ["héllo", "", "ok", "日本語"];
    for (const binary of [true, false]) {
      const { status, result, error } = await infer(server.url, "strings", [
        { name: "text", shape: [4], datatype: "BYTES", data: text, binary },
      ], { outputs: [{ name: "upper", binary }, { name: "length", binary: !binary }] });
      assert.equal(status, 200, error ?? "");
      const upper = result!.outputs.get("upper")!;
      const length = result!.outputs.get("length")!;
      assert.deepEqual(upper.shape, [4]);
      assert.equal(upper.datatype, "BYTES");
      const strings = binary ? deserializeBytesTensor(upper.bytes!).map((b) => decoder.decode(b)) : upper.data;
      assert.deepEqual(strings, ["HÉLLO", "", "OK", "日本語"]);
      const lengths = binary ? length.data : Array.from(new BigInt64Array(length.bytes!.slice().buffer), Number);
      assert.deepEqual(lengths, [6, 0, 2, 9]);
    }
  });

  await t.step("every datatype round-trips exactly, in JSON and in binary", async () => {
    for (const binary of [true, false]) {
      const { body, headers } = await buildInferRequest(
        dtypeInputs(binary),
        { outputs: Object.keys(edgeValues).map((d) => ({ name: `${d.toLowerCase()}_out`, binary })) },
      );
      const response = await fetch(`${server.url}/v2/models/dtypes/infer`, {
        method: "POST",
        headers,
        body: body as Uint8Array<ArrayBuffer>,
      });
      const bytes = new Uint8Array(await response.arrayBuffer());
      assert.equal(response.status, 200, decoder.decode(bytes));
      const headerLength = response.headers.get("Inference-Header-Content-Length");
      assert.equal(headerLength === null, !binary);
      const json = parseExact(
        decoder.decode(bytes.subarray(0, headerLength === null ? undefined : Number(headerLength))),
      );
      let offset = headerLength === null ? 0 : Number(headerLength);
      for (
        const output of json.outputs as {
          name: string;
          datatype: string;
          shape: number[];
          data?: unknown[];
          parameters?: { binary_data_size: number };
        }[]
      ) {
        const datatype = output.datatype;
        assert.equal(output.name, `${datatype.toLowerCase()}_out`);
        assert.deepEqual(output.shape, [2, 3]);
        let values: unknown[];
        if (output.parameters) {
          const size = output.parameters.binary_data_size;
          values = valuesOf(datatype, { bytes: bytes.slice(offset, offset + size) });
          offset += size;
        } else values = valuesOf(datatype, { data: output.data });
        assert.deepEqual(values, expectedValues(datatype, !binary), `${datatype} ${binary ? "binary" : "json"}`);
      }
      assert.equal(offset, binary ? bytes.length : 0);
    }
  });

  await t.step("INT64 above 2^53 stays exact through JSON; /v1 too", async () => {
    const request = `{"inputs":[${
      Object.keys(edgeValues).map((d) => {
        const data = d === "INT64" ? "[9007199254740993,-9223372036854775808]" : JSON.stringify(valuesFor(d));
        return `{"name":"${d.toLowerCase()}","datatype":"${d}","shape":[1,2],"data":${data}}`;
      }).join(",")
    }],"outputs":[{"name":"int64_out"}]}`;
    const response = await post(server, "/v2/models/dtypes/infer", request);
    assert.equal(response.status, 200, response.text);
    assert.match(response.text, /"data":\[9007199254740993,-9223372036854775808\]/);
    const v1 = await post(
      server,
      "/v1/functions/dtypes",
      `{${
        Object.keys(edgeValues).map((d) =>
          `"${d.toLowerCase()}":${
            d === "UINT64" ? "[[18446744073709551615]]" : JSON.stringify([valuesFor(d).slice(0, 1)])
          }`
        ).join(",")
      }}`,
      { "content-type": "application/json" },
    );
    assert.equal(v1.status, 200, v1.text);
    assert.match(v1.text, /"uint64_out":\[\[18446744073709551615\]\]/);
  });

  await t.step(
    "INT64 beyond 2^53 exact through ONNX Runtime (BigInt64Array), JSON and binary, /v1 and /v2",
    async () => {
      const x = BigInt64Array.of(9007199254740992n, -(2n ** 63n), 2n ** 63n - 2n, 0n);
      const y = [9007199254740993n, -(2n ** 63n) + 1n, 2n ** 63n - 1n, 1n];
      for (const binary of [true, false]) {
        const { body, headers } = await buildInferRequest([{
          name: "x",
          shape: [4],
          datatype: "INT64",
          data: x,
          binary,
        }], {
          outputs: [{ name: "y", binary }],
        });
        const response = await fetch(`${server.url}/v2/models/int64/infer`, {
          method: "POST",
          headers,
          body: body as Uint8Array<ArrayBuffer>,
        });
        const bytes = new Uint8Array(await response.arrayBuffer());
        assert.equal(response.status, 200, decoder.decode(bytes));
        const length = response.headers.get("Inference-Header-Content-Length");
        if (binary) assert.deepEqual([...new BigInt64Array(bytes.slice(Number(length)).buffer)], y);
        else {assert.deepEqual((parseExact(decoder.decode(bytes)).outputs as { data: unknown[] }[])[0].data, [
            ...y.slice(0, 3),
            1,
          ]);}
      }
      const v1 = await post(server, "/v1/functions/int64", '{"x":[9007199254740992,9223372036854775806]}', {
        "content-type": "application/json",
      });
      assert.equal(v1.status, 200, v1.text);
      assert.equal(v1.text, '{"y":[9007199254740993,9223372036854775807]}');
    },
  );

  await t.step("BYTES through ONNX Runtime: string models run on onnxruntime-node, the rest on the C API", async () => {
    const v1 = await post(server, "/v1/functions/shout", '{"text":["café","日本","x y"]}', {
      "content-type": "application/json",
    });
    assert.equal(v1.status, 200, v1.text);
    assert.deepEqual(JSON.parse(v1.text), { shout: ["café!", "日本!", "x y!"] });
    const { status, result, error } = await infer(server.url, "shout", [
      { name: "text", shape: [2], datatype: "BYTES", data: ["ab", ""], binary: true },
    ], { outputs: [{ name: "shout", binary: false }] });
    assert.equal(status, 200, error ?? "");
    assert.deepEqual(result!.outputs.get("shout")!.data, ["ab!", "!"]);
    const apiOf = async (name: string) =>
      (await (await fetch(`${server.url}/v1/functions/${name}`)).json()).models[0].api;
    assert.equal(await apiOf("shout"), "onnxruntime-node");
    for (const name of ["mlp", "fp16", "int64", "detector"]) assert.equal(await apiOf(name), "c", name);
  });

  await t.step("FP16 end to end: /v1, /v2 JSON and /v2 binary", async () => {
    const v1 = await post(server, "/v1/functions/fp16", '{"x":[[1,2.5,-3],[0.5,0,65504]]}', {
      "content-type": "application/json",
    });
    assert.equal(v1.status, 200, v1.text);
    // 65504 + 65504 overflows FP16 to infinity, which JSON writes as null.
    assert.deepEqual(JSON.parse(v1.text), { y: [[2, 5, -6], [1, 0, null]] });
    const bits = new Uint16Array(Float16Array.of(1, 2.5, -3, 0.25, -0.5, 1000).buffer);
    for (const binary of [true, false]) {
      const { status, result, error } = await infer(server.url, "fp16", [
        { name: "x", shape: [2, 3], datatype: "FP16", data: bits, binary },
      ], { outputs: [{ name: "y", binary }] });
      assert.equal(status, 200, error ?? "");
      const y = result!.outputs.get("y")!;
      const values = binary ? Array.from(new Float16Array(y.bytes!.slice().buffer)) : y.data;
      assert.deepEqual(values, [2, 5, -6, 0.5, -1, 2000]);
    }
  });

  await t.step("zero-size tensors: batch 0 in, and a model output with no rows, answer 200", async () => {
    for (const binary of [true, false]) {
      const { status, result, error } = await infer(server.url, "mlp", [
        { name: "x", shape: [0, 4], datatype: "FP32", data: new Float32Array(0), binary },
      ], { outputs: [{ name: "y", binary }] });
      assert.equal(status, 200, error ?? "");
      const y = result!.outputs.get("y")!;
      assert.deepEqual(y.shape, [0, 3]);
      assert.deepEqual(binary ? y.bytes!.length : y.data, binary ? 0 : []);
    }
    const none = await infer(server.url, "detector", [
      { name: "candidates", shape: [2, 3], datatype: "FP32", data: Float32Array.of(0.1, 1, 2, 0.4, 3, 4) },
    ], { outputs: [{ name: "boxes", binary: false }] });
    assert.equal(none.status, 200, none.error ?? "");
    assert.deepEqual(none.result!.outputs.get("boxes"), { name: "boxes", datatype: "FP32", shape: [0, 3], data: [] });
    const some = await infer(server.url, "detector", [
      { name: "candidates", shape: [2, 3], datatype: "FP32", data: Float32Array.of(0.1, 1, 2, 0.75, 3, 4) },
    ], { outputs: [{ name: "boxes", binary: false }] });
    assert.deepEqual(some.result!.outputs.get("boxes")!.data, [0.75, 3, 4]);
    const v1 = await post(server, "/v1/functions/detector", '{"candidates":[[0,1,2]]}', {
      "content-type": "application/json",
    });
    assert.deepEqual([v1.status, JSON.parse(v1.text)], [200, { boxes: [] }]);
  });

  await t.step('refusals are 400 with the protocol\'s {"error": string}', async () => {
    const x = (data: Elements, shape = [1, 4], datatype = "FP32") => ({ name: "x", shape, datatype, data });
    const cases: [string, InferInput[], RegExp][] = [
      ["wrong datatype", [x(Int32Array.of(1, 2, 3, 4), [1, 4], "INT32")], /must be FP32, got INT32/],
      ["wrong shape", [x(Float32Array.of(1, 2, 3), [1, 3])], /shape \[1,3\]/],
      [
        "binary size not the shape's",
        [x(Float32Array.of(1, 2, 3), [1, 4])],
        /12 bytes of binary data; FP32\[1,4\] needs 16/,
      ],
      [
        "duplicate input names",
        [x(Float32Array.of(1, 2, 3, 4)), x(Float32Array.of(5, 6, 7, 8))],
        /given more than once/,
      ],
      [
        "unknown input",
        [{ name: "z", shape: [1], datatype: "FP32", data: Float32Array.of(1) }],
        /Unexpected input 'z'/,
      ],
    ];
    for (const [what, inputs, message] of cases) {
      const { status, error } = await infer(server.url, "mlp", inputs);
      assert.equal(status, 400, what);
      assert.match(error!, message, what);
    }
    const jsonCases: [string, string, RegExp][] = [
      [
        "UINT8 256",
        '{"name":"uint8","datatype":"UINT8","shape":[3],"data":[7,256,1]}',
        /element 1 \(256\) is not UINT8: out of range/,
      ],
      ["UINT8 -1", '{"name":"uint8","datatype":"UINT8","shape":[3],"data":[7,1,-1]}', /element 2 \(-1\) is not UINT8/],
      ["INT8 1.5", '{"name":"int8","datatype":"INT8","shape":[1],"data":[1.5]}', /is not INT8/],
      [
        "INT64 above range",
        '{"name":"int64","datatype":"INT64","shape":[1],"data":[9223372036854775808]}',
        /out of range/,
      ],
      ["INT64 inexact", '{"name":"int64","datatype":"INT64","shape":[1],"data":[1e19]}', /plain digits/],
      ["BOOL as 1", '{"name":"bool","datatype":"BOOL","shape":[1],"data":[1]}', /is not BOOL/],
      ["FP32 overflow", '{"name":"fp32","datatype":"FP32","shape":[1],"data":[1e300]}', /out of range/],
      ["FP16 overflow", '{"name":"fp16","datatype":"FP16","shape":[1],"data":[70000]}', /out of range/],
      ["BYTES not a string", '{"name":"bytes","datatype":"BYTES","shape":[1],"data":[1]}', /is not BYTES/],
      [
        "data count",
        '{"name":"uint8","datatype":"UINT8","shape":[2],"data":[1]}',
        /has 1 values; shape \[1,2\] needs 2/,
      ],
    ];
    for (const [what, tensor, message] of jsonCases) {
      // The dtypes model wants rank 2; these go to a model that checks values first, so use rank-2 shapes.
      const fixed = tensor.replace(/"shape":\[(\d+)\]/, '"shape":[1,$1]');
      const response = await post(server, "/v2/models/dtypes/infer", `{"inputs":[${fixed}]}`);
      assert.equal(response.status, 400, `${what}: ${response.text}`);
      const body = JSON.parse(response.text);
      assert.equal(typeof body.error, "string", what);
      assert.match(body.error, message, what);
    }
  });

  await t.step("binary framing errors are 400", async () => {
    const header = encoder.encode(
      '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}',
    );
    const data = new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer);
    const frame = (extra: number[] = []) => new Uint8Array([...header, ...data, ...extra]);
    const cases: [Uint8Array, Record<string, string>, RegExp][] = [
      [frame(), { "Inference-Header-Content-Length": String(header.length + 100) }, /must be a byte count/],
      [frame(), { "Inference-Header-Content-Length": "-1" }, /must be a byte count/],
      [frame([1, 2]), { "Inference-Header-Content-Length": String(header.length) }, /2 bytes after the inputs/],
      [
        frame().subarray(0, header.length + 8),
        { "Inference-Header-Content-Length": String(header.length) },
        /needs 16 bytes/,
      ],
      [frame(), {}, /not valid (JSON|UTF-8)/],
      [
        frame(),
        { "Inference-Header-Content-Length": String(header.length), "Content-Encoding": "gzip" },
        /not valid gzip/,
      ],
    ];
    for (const [body, headers, message] of cases) {
      const response = await post(server, "/v2/models/mlp/infer", body, headers);
      assert.equal(response.status, 400, response.text);
      assert.match(JSON.parse(response.text).error, message);
    }
    const ok = await post(server, "/v2/models/mlp/infer", frame(), {
      "Inference-Header-Content-Length": String(header.length),
      "content-type": "application/octet-stream",
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers.get("content-type"), "application/json");
  });

  await t.step('every /v2 failure, unknown routes too, is {"error": string}', async () => {
    const checks: [string, string, number][] = [
      ["GET", "/v2/nope", 404],
      ["GET", "/v2/models/mlp/infer", 405],
      ["DELETE", "/v2/models/mlp", 404],
      ["GET", "/v2/models/nope", 404],
      ["GET", "/v2/models/nope/config", 404],
      ["POST", "/v2/models/mlp/versions/9/infer", 404],
    ];
    for (const [method, path, status] of checks) {
      const response = await fetch(`${server.url}${path}`, { method });
      const body = await response.json();
      assert.equal(response.status, status, `${method} ${path}`);
      assert.equal(typeof body.error, "string", `${method} ${path}: ${JSON.stringify(body)}`);
    }
    const wrongType = await post(server, "/v2/models/mlp/infer", "x=1", { "content-type": "text/plain" });
    assert.equal(wrongType.status, 415);
    assert.equal(typeof JSON.parse(wrongType.text).error, "string");
  });

  await t.step("server metadata lists the extensions; model configuration in Triton's names", async () => {
    const meta = await (await fetch(`${server.url}/v2`)).json();
    assert.deepEqual(meta.extensions, ["binary_tensor_data", "model_configuration"]);
    const config = await (await fetch(`${server.url}/v2/models/strings/config`)).json();
    assert.deepEqual(config, {
      name: "strings",
      platform: "isolane_onnxruntime",
      backend: "onnxruntime",
      max_batch_size: 0,
      input: [{ name: "text", data_type: "TYPE_STRING", dims: [-1] }],
      output: [
        { name: "upper", data_type: "TYPE_STRING", dims: [-1] },
        { name: "length", data_type: "TYPE_INT64", dims: [-1] },
      ],
    });
    // With dynamic batching, Triton leaves the batch dimension out of dims.
    const batched = await fetch(`${server.url}/v2/models/fp16/versions/1/config`);
    assert.deepEqual(await batched.json(), {
      name: "fp16",
      platform: "isolane_onnxruntime",
      backend: "onnxruntime",
      max_batch_size: 8,
      input: [{ name: "x", data_type: "TYPE_FP16", dims: [3] }],
      output: [{ name: "y", data_type: "TYPE_FP16", dims: [3] }],
      dynamic_batching: { max_queue_delay_microseconds: 2500, preferred_batch_size: [4, 8] },
    });
  });

  await t.step("a body that is not UTF-8 is 400 invalid_json on /v1 and /v2", async () => {
    const latin1 = new Uint8Array([...encoder.encode('{"s":["caf'), 0xe9, ...encoder.encode('"]}')]);
    const v1 = await post(server, "/v1/functions/mlp", latin1, { "content-type": "application/json" });
    assert.equal(v1.status, 400);
    assert.equal(JSON.parse(v1.text).error.code, "invalid_json");
    const v2 = await post(server, "/v2/models/mlp/infer", latin1);
    assert.equal(v2.status, 400);
    assert.match(JSON.parse(v2.text).error, /not valid UTF-8/);
  });

  await Deno.remove(functionsDir, { recursive: true });
});

function valuesFor(datatype: string): unknown[] {
  return expectedValues(datatype, true).slice(0, 2).map((v) => (typeof v === "bigint" ? Number(v & 0xffn) : v));
}
