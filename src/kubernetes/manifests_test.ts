import assert from "node:assert/strict";
import {
  capacityOf,
  functionSpecSchema,
  manifestDefaults,
  renderManifests,
  serviceName,
  wantsGpu,
} from "./manifests.ts";

const spec = (fields: Record<string, unknown>) => functionSpecSchema.parse({ name: "f", ...fields });

Deno.test("capacity is isolates times the batch size", () => {
  assert.equal(capacityOf(spec({ instances: 3 })), 3);
  assert.equal(capacityOf(spec({ instances: 2, dynamicBatching: { maxBatchSize: 8 } })), 16);
  assert.equal(capacityOf(spec({ instances: 2, dynamicBatching: null })), 2);
});

Deno.test("GPU variant for cuda or GPU lists; always/never override", () => {
  assert.equal(wantsGpu(spec({ device: "cuda" }), "auto"), true);
  assert.equal(wantsGpu(spec({ device: [0, 1] }), "auto"), true);
  assert.equal(wantsGpu(spec({ device: "auto" }), "auto"), false);
  assert.equal(wantsGpu(spec({ device: "cpu" }), "always"), true);
  assert.equal(wantsGpu(spec({ device: "cuda" }), "never"), false);
});

Deno.test("Service names are DNS labels; two functions on one name are refused", () => {
  assert.equal(serviceName("My_Fn"), "isolane-my-fn");
  assert.ok(serviceName("x".repeat(64)).length <= 63);
  assert.throws(
    () => renderManifests([spec({ name: "a_b" }), spec({ name: "a-b" })], { ...manifestDefaults, adminToken: "t" }),
    /both be served by Service 'isolane-a-b'/,
  );
});
