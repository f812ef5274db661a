import assert from "node:assert/strict";
import { planLanes } from "./plan_lanes.ts";

const noTrt = { ok: false as const, reason: "libnvinfer.so.10: cannot open shared object file" };
const cpuOnly = { cuda: [], reason: "no CUDA driver", tensorRt: noTrt };
const twoGpus = { cuda: [0, 1], tensorRt: noTrt };
const opts = (
  device: "auto" | "cpu" | "cuda" | number[],
  instances: number,
  gpuProvider: "cuda" | "tensorrt" | "tensorrt-or-cuda" = "cuda",
) => ({
  device,
  instances,
  gpuProvider,
});
const devicesOf = (r: ReturnType<typeof planLanes>) => r.lanes.map((l) => (l.kind === "cuda" ? l.device : "cpu"));

Deno.test("planLanes uses the CPU for cpu, and for auto without a GPU", () => {
  assert.deepEqual(devicesOf(planLanes("f", opts("cpu", 2), twoGpus)), ["cpu", "cpu"]);
  assert.deepEqual(devicesOf(planLanes("f", opts("auto", 1), cpuOnly)), ["cpu"]);
});

Deno.test("planLanes spreads instances per device round-robin", () => {
  assert.deepEqual(devicesOf(planLanes("f", opts([0, 1], 2), twoGpus)), [0, 1, 0, 1]);
  assert.deepEqual(devicesOf(planLanes("f", opts("auto", 1), twoGpus)), [0, 1]);
  assert.deepEqual(devicesOf(planLanes("f", opts([1], 3), twoGpus)), [1, 1, 1]);
});

Deno.test("planLanes refuses cuda without a GPU and devices that do not exist, saying why", () => {
  assert.throws(() => planLanes("f", opts("cuda", 1), cpuOnly), /needs a GPU .* but no CUDA driver/);
  assert.throws(() => planLanes("f", opts([2], 1), twoGpus), /asks for CUDA device 2 but usable devices are 0, 1/);
  assert.throws(() => planLanes("f", opts([0], 1), cpuOnly), /asks for CUDA device 0 but no CUDA driver/);
});

Deno.test("planLanes: TensorRT required without TensorRT fails the load with the loader's reason", () => {
  assert.throws(
    () => planLanes("f", opts("cuda", 1, "tensorrt"), twoGpus),
    /TensorRT provider, but TensorRT \(libnvinfer\.so\.10\) cannot be loaded: libnvinfer/,
  );
});

Deno.test("planLanes: TensorRT preferred without TensorRT falls back to CUDA and says so", () => {
  const result = planLanes("f", opts([0], 1, "tensorrt-or-cuda"), twoGpus);
  assert.deepEqual(result.lanes, [{ kind: "cuda", device: 0, provider: "cuda" }]);
  assert.match(result.notes[0], /using the CUDA provider instead/);
  const withTrt = planLanes("f", opts([0], 1, "tensorrt-or-cuda"), { cuda: [0], tensorRt: { ok: true } });
  assert.deepEqual(withTrt.lanes, [{ kind: "cuda", device: 0, provider: "tensorrt" }]);
  assert.deepEqual(withTrt.notes, []);
});

Deno.test("planLanes: CPU lanes ignore the GPU provider", () => {
  assert.deepEqual(planLanes("f", opts("auto", 1, "tensorrt"), cpuOnly).lanes, [{ kind: "cpu" }]);
});
