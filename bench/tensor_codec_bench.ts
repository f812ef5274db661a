/**
 * The `/v1` tensor JSON codec of tensor functions (what HTTP threads and isolates run per request) against the bare
 * `JSON.parse` / `JSON.stringify` of the same numbers: one row of 1,024 FP32 values in, 1,024 out (the 8×1024 MLP).
 *
 *   deno bench -A bench/tensor_codec_bench.ts
 * @module
 */
import { outputsToJsonBody, wireFromJsonBody } from "../src/tensors.ts";
import type { TensorSignature } from "../src/sdk.ts";

const signature: TensorSignature = {
  inputs: [{ name: "x", datatype: "FP32", shape: [-1, 1024] }],
  outputs: [{ name: "y", datatype: "FP32", shape: [-1, 1024] }],
};
const row = Array.from({ length: 1024 }, (_, i) => Math.round(Math.sin(i * 0.37) * 5000) / 10_000);
const body = new TextEncoder().encode(JSON.stringify({ x: [row] })).buffer as ArrayBuffer;
const text = new TextDecoder().decode(body);
const y = Float32Array.from(row, (v, i) => v * Math.cos(i));
const wire = [{ name: "y", datatype: "FP32", shape: [1, 1024], data: y.buffer }];

Deno.bench("decode: JSON.parse alone (baseline)", { group: "decode", baseline: true }, () => {
  JSON.parse(text);
});
Deno.bench("decode: wireFromJsonBody (UTF-8, parse, shape, FP32 checks)", { group: "decode" }, () => {
  wireFromJsonBody(signature, body);
});
// A body of float32 texts as the writer gives them (8 or 9 significant digits, as a model's outputs sent back): about
// 11 KB for 1,024 values, each literal longer than the 4-decimal ones above.
const float32Body = outputsToJsonBody([{
  name: "x",
  datatype: "FP32",
  shape: [1, 1024],
  data: Float32Array.from(row, (v, i) => v * Math.cos(i) + 1e-3).buffer,
}]);
Deno.bench("decode: wireFromJsonBody, a body of float32 texts (8–9 digits each)", { group: "decode" }, () => {
  wireFromJsonBody(signature, float32Body);
});
Deno.bench("encode: JSON.stringify of the numbers alone (baseline)", { group: "encode", baseline: true }, () => {
  JSON.stringify([Array.from(y)]);
});
Deno.bench("encode: outputsToJsonBody (nested by shape, UTF-8)", { group: "encode" }, () => {
  outputsToJsonBody(wire);
});

// A model's outputs differ from request to request: V8 caches the text of numbers it wrote lately, which the same
// 1,024 values written over and over always hit. 64 different outputs (65,536 values) are past that cache.
const varied = Array.from({ length: 64 }, (_, k) => [{
  name: "y",
  datatype: "FP32",
  shape: [1, 1024],
  data: Float32Array.from(row, (v, i) => v * Math.cos(i + k * 0.1) + k * 1e-3).buffer,
}]);
let next = 0;
Deno.bench("encode: outputsToJsonBody, a different output each time (64 in turn)", { group: "encode" }, () => {
  outputsToJsonBody(varied[next++ & 63]);
});
