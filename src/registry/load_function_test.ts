import assert from "node:assert/strict";
import { defaultOrtThreads } from "./load_function.ts";
import type { LanePlan } from "../protocol.ts";

const cpu: LanePlan = { kind: "cpu" };
const gpu = (device: number): LanePlan => ({ kind: "cuda", device, provider: "cuda" });

Deno.test("defaultOrtThreads gives every CPU isolate all the cores", () => {
  assert.equal(defaultOrtThreads([cpu], 2), 2);
  assert.equal(defaultOrtThreads([cpu, cpu], 2), 2);
  assert.equal(defaultOrtThreads([cpu, cpu, cpu, cpu], 16), 16);
});

Deno.test("defaultOrtThreads gives GPU lanes one thread (they leave only shape arithmetic on the CPU)", () => {
  assert.equal(defaultOrtThreads([gpu(0), gpu(1)], 16), 1);
  assert.equal(defaultOrtThreads([gpu(0), gpu(0), gpu(1)], 2), 1);
  assert.equal(defaultOrtThreads([cpu], 0), 1);
});
