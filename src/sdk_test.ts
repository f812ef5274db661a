import assert from "node:assert/strict";
import { defineFunction, functionOptionsSchema, modelRunBy, runModel, Tensor, z } from "./sdk.ts";

const minimal = { description: "d", input: z.object({}), output: z.object({}), handler: () => ({}) };

Deno.test("defineFunction applies defaults through the options schema", () => {
  const options = functionOptionsSchema.parse(defineFunction(minimal));
  assert.equal(options.device, "auto");
  assert.equal(options.instances, 1);
  assert.equal(options.timeoutMs, 30_000);
  assert.equal(options.queueDepth, 1024);
  assert.deepEqual(options.models, {});
});

Deno.test("defineFunction rejects bad options with the field in the message", () => {
  assert.throws(() => defineFunction({ ...minimal, instances: 0 }), /instances/);
  assert.throws(() => defineFunction({ ...minimal, device: "tpu" as "cpu" }), /device/);
  assert.throws(() => defineFunction({ ...minimal, device: [] }), /device/);
  assert.throws(() => defineFunction({ ...minimal, models: { "bad name": "m.onnx" } }), /models/);
  assert.throws(() => defineFunction({ ...minimal, input: {} as z.ZodType }), /'input' must be a Zod schema/);
  assert.throws(() => defineFunction({ ...minimal, handler: 1 as never }), /'handler' must be a function/);
});

Deno.test("defineFunction refuses an unknown key, naming it and every known option", () => {
  const typo = { ...minimal, timeOutMs: 5000 } as typeof minimal;
  assert.throws(
    () => defineFunction(typo),
    (e: Error) =>
      e instanceof TypeError &&
      /^Invalid function definition: Unknown option 'timeOutMs'; known options: /.test(e.message) &&
      ["description", "timeoutMs", "permissions", "input", "output", "handler", "setup"].every((k) =>
        e.message.includes(k)
      ),
  );
  // Setup and every option are known keys.
  defineFunction({ ...minimal, setup: () => 1, timeoutMs: 10, permissions: { net: ["a.example"] } });
});

Deno.test("defineFunction accepts a device list", () => {
  assert.deepEqual(functionOptionsSchema.parse(defineFunction({ ...minimal, device: [0, 1] })).device, [0, 1]);
});

Deno.test("tensor functions: a signature instead of input/output; unique names; dynamic batching off by default", () => {
  const signature = {
    inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1, 4] }],
    outputs: [{ name: "y", datatype: "FP32" as const, shape: [-1, 3] }],
  };
  const tensor = { description: "d", signature, handler: () => ({}) };
  const options = functionOptionsSchema.parse(defineFunction(tensor));
  assert.equal(options.dynamicBatching, undefined);
  const batching = { maxBatchSize: 8, maxQueueDelayMs: 1, preferredBatchSizes: [4] };
  assert.deepEqual(
    functionOptionsSchema.parse(defineFunction({ ...tensor, dynamicBatching: batching })).dynamicBatching,
    batching,
  );
  assert.throws(
    () => defineFunction({ ...tensor, dynamicBatching: { maxBatchSize: 0, maxQueueDelayMs: 1 } }),
    /maxBatchSize/,
  );
  // A batch never grows past maxBatchSize, so a larger preferred size is never reached (Triton refuses such a config;
  // on CUDA lanes a request of more rows than maxBatchSize was padded up to it).
  assert.throws(
    () => defineFunction({ ...tensor, dynamicBatching: { maxBatchSize: 8, preferredBatchSizes: [4, 16] } }),
    /preferredBatchSizes.*16 > maxBatchSize 8: .*leave out the larger sizes/,
  );
  assert.throws(
    () => defineFunction({ ...tensor, input: z.object({}) } as unknown as typeof tensor),
    /leave out 'input' and 'output'/,
  );
  assert.throws(
    () =>
      defineFunction({ ...tensor, signature: { ...signature, inputs: [signature.inputs[0], signature.inputs[0]] } }),
    /duplicate input names/,
  );
});

Deno.test("runModel: a handler the runtime recognises, which runs the model as written; misuse is refused", async () => {
  const signature = {
    inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1, 1] }],
    outputs: [{ name: "y", datatype: "FP32" as const, shape: [-1, 1] }],
  };
  const handler = runModel("m");
  assert.equal(modelRunBy(handler), "m");
  assert.equal(modelRunBy(({ x }: { x: Tensor }) => ({ y: x })), undefined);
  assert.equal(modelRunBy(Object.assign(() => ({}), { model: "m" })), undefined, "the tag cannot be forged");
  defineFunction({ description: "d", models: { m: "m.onnx" }, signature, handler });
  assert.throws(
    () => defineFunction({ description: "d", models: { other: "m.onnx" }, signature, handler: runModel("m") as never }),
    /runModel\('m'\) names no declared model; models: other/,
  );
  assert.throws(
    () => defineFunction({ ...minimal, models: { m: "m.onnx" }, handler: runModel("m") as never }),
    /runModel\('m'\) is a tensor handler/,
  );
  const x = new Tensor("float32", Float32Array.of(1), [1, 1]);
  const models = { m: { run: (feeds: Record<string, Tensor>) => Promise.resolve({ y: feeds.x }) } };
  const out = await handler({ x }, { models } as never);
  assert.equal(out.y, x, "outside the runtime's own path it is ctx.models[model].run(inputs)");
});

Deno.test("cudaGraph: true for every model, or the names of declared models; an undeclared name is refused", () => {
  const base = { ...minimal, models: { det: "det.onnx", rec: "rec.onnx" } };
  defineFunction({ ...base, cudaGraph: true });
  defineFunction({ ...base, cudaGraph: ["det"] });
  assert.throws(
    () => defineFunction({ ...base, cudaGraph: ["det", "cls"] }),
    /cudaGraph names no declared model: cls; models: det, rec/,
  );
});

Deno.test("cudaGraph and shapeSessions: a value of the wrong kind is refused with what is expected", () => {
  const base = { ...minimal, models: { det: "det.onnx" } };
  assert.throws(
    () => defineFunction({ ...base, cudaGraph: "det" as never }),
    /^TypeError: Invalid function definition: 'cudaGraph' expected true, false or a list of model names/,
  );
  assert.throws(() => defineFunction({ ...base, shapeSessions: 0 }), /'shapeSessions' Too small/);
  assert.throws(() => defineFunction({ ...base, shapeSessions: 2.5 }), /'shapeSessions' expected int/);
  assert.throws(() => defineFunction({ ...base, shapeSessions: 17 }), /'shapeSessions' Too big/);
});

Deno.test("a schema from Zod 3 is refused with the way to the Zod 4 the runtime checks with", () => {
  // The shape of a Zod 3 schema (zod@3's ZodObject: _def with typeName, parse and safeParse, no _zod).
  const zod3 = {
    _def: { typeName: "ZodObject", shape: () => ({}) },
    parse: (v: unknown) => v,
    safeParse: (v: unknown) => ({ success: true, data: v }),
  } as unknown as z.ZodType;
  assert.throws(
    () => defineFunction({ ...minimal, input: zod3 }),
    (e: Error) =>
      e.message ===
        "Invalid function definition: 'input' must be a Zod 4 schema, and this one is from Zod 3: " +
          'import { z } from "isolane" rather than a zod of your own',
  );
});
