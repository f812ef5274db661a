import assert from "node:assert/strict";
import { planLanes } from "./plan_lanes.ts";

const cpuOnly = { cuda: [], reason: "no CUDA driver" };
const twoGpus = { cuda: [0, 1] };

Deno.test("planLanes uses the CPU for cpu, and for auto without a GPU", () => {
  assert.deepEqual(planLanes("f", { device: "cpu", instances: 2 }, twoGpus), [{ kind: "cpu" }, { kind: "cpu" }]);
  assert.deepEqual(planLanes("f", { device: "auto", instances: 1 }, cpuOnly), [{ kind: "cpu" }]);
});

Deno.test("planLanes spreads instances per device round-robin", () => {
  assert.deepEqual(
    planLanes("f", { device: [0, 1], instances: 2 }, twoGpus).map((l) => l.kind === "cuda" && l.device),
    [0, 1, 0, 1],
  );
  assert.deepEqual(
    planLanes("f", { device: "auto", instances: 1 }, twoGpus).map((l) => l.kind === "cuda" && l.device),
    [0, 1],
  );
  assert.deepEqual(planLanes("f", { device: [1], instances: 3 }, twoGpus).map((l) => l.kind === "cuda" && l.device), [
    1,
    1,
    1,
  ]);
});

Deno.test("planLanes refuses cuda without a GPU and devices that do not exist, saying why", () => {
  assert.throws(() => planLanes("f", { device: "cuda", instances: 1 }, cpuOnly), /needs a GPU .* but no CUDA driver/);
  assert.throws(
    () => planLanes("f", { device: [2], instances: 1 }, twoGpus),
    /asks for CUDA device 2 but usable devices are 0, 1/,
  );
  assert.throws(
    () => planLanes("f", { device: [0], instances: 1 }, cpuOnly),
    /asks for CUDA device 0 but no CUDA driver/,
  );
});
