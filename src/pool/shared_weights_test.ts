import assert from "node:assert/strict";
import type { LanePlan, ModelInfo, SharedWeights } from "../protocol.ts";
import { SharedWeightStore, type WeightLane } from "./shared_weights.ts";

const cuda = (device: number, provider: "cuda" | "tensorrt" = "cuda"): LanePlan => ({ kind: "cuda", device, provider });
const worker = (lane: LanePlan): WeightLane => ({ lane, isolation: "worker" });

function memory() {
  const held = new Map<string, number>();
  const freed: string[] = [];
  return {
    held,
    freed,
    hold(device: number, address: bigint) {
      held.set(`${device}:${address}`, device);
      return () => freed.push(`${device}:${address}`);
    },
  };
}

const block = (device: number, address: string): SharedWeights => ({
  device,
  address,
  bytes: 1024,
  tensors: [{ name: "w", type: "float32", dims: [16, 16], offset: 0, bytes: 1024 }],
});

const model = (weights?: ModelInfo["weights"]): ModelInfo => ({
  name: "m",
  inputs: [],
  outputs: [],
  providers: ["cuda"],
  api: "c",
  ...(weights ? { weights } : {}),
});

Deno.test("shared weights: the first lane of a device publishes, the others attach, a crash frees nothing, close frees", () => {
  const mem = memory();
  const lanes = [cuda(0), cuda(0), cuda(0), cuda(1), cuda(1)].map(worker);
  const store = new SharedWeightStore(mem, lanes);
  assert.deepEqual(store.planFor(lanes[0]), { mode: "publish" });
  assert.deepEqual(store.planFor(lanes[3]), { mode: "publish" });
  store.published(0, { m: block(0, "0x1000") }, [model({ shared: true, tensors: 1, bytes: 1024 })]);
  assert.deepEqual(store.planFor(lanes[1]), { mode: "attach", models: { m: block(0, "0x1000") } });
  assert.deepEqual(store.planFor(lanes[3]), { mode: "publish" }, "device 1 has its own copy to make");
  store.published(1, { m: block(1, "0x2000") }, [model({ shared: true, tensors: 1, bytes: 1024 })]);
  assert.deepEqual([...mem.held.keys()], ["0:4096", "1:8192"]);
  // A respawned lane (after a crash) attaches to the copy that stayed.
  assert.deepEqual(store.planFor(lanes[2]), { mode: "attach", models: { m: block(0, "0x1000") } });
  assert.deepEqual(mem.freed, []);
  const hosts = [0, 1, 2].map(() => ({ models: [model({ shared: true, tensors: 1, bytes: 1024 })] }));
  assert.deepEqual(store.summarise([model()], hosts)[0].weights, {
    shared: true,
    tensors: 1,
    bytes: 1024,
    lanes: 3,
    copies: 2,
  });
  store.close();
  assert.deepEqual(mem.freed, ["0:4096", "1:8192"]);
  store.close();
  assert.equal(mem.freed.length, 2, "freed once");
});

Deno.test("shared weights: process hosts, TensorRT, a device's only lane and CPU lanes load their own", () => {
  const mem = memory();
  const store = new SharedWeightStore(mem, [
    { lane: cuda(0), isolation: "process" },
    { lane: cuda(0), isolation: "process" },
    worker(cuda(1, "tensorrt")),
    worker(cuda(1, "tensorrt")),
    worker(cuda(2)),
    worker({ kind: "cpu" }),
  ]);
  assert.match((store.planFor({ lane: cuda(0), isolation: "process" }) as { reason: string }).reason, /CUDA context/);
  assert.match((store.planFor(worker(cuda(1, "tensorrt"))) as { reason: string }).reason, /TensorRT/);
  assert.match((store.planFor(worker(cuda(2))) as { reason: string }).reason, /only lane on cuda:2/);
  assert.equal(store.planFor(worker({ kind: "cpu" })), undefined);
  assert.match(
    (new SharedWeightStore(undefined, [worker(cuda(0)), worker(cuda(0))]).planFor(worker(cuda(0))) as {
      reason: string;
    }).reason,
    /ISOLANE_SHARED_WEIGHTS=off/,
  );
});

Deno.test("shared weights: a first lane that shares nothing sends the others to load their own, with its reason", () => {
  const mem = memory();
  const lanes = [worker(cuda(0)), worker(cuda(0))];
  const store = new SharedWeightStore(mem, lanes);
  store.published(0, {}, [model({ shared: false, reason: "ORT refused the shared weights: no" })]);
  assert.deepEqual(store.planFor(lanes[1]), { mode: "off", reason: "ORT refused the shared weights: no" });
  const hosts = [{ models: [model({ shared: false, reason: "ORT refused the shared weights: no" })] }];
  assert.deepEqual(store.summarise([model()], hosts)[0].weights, {
    shared: false,
    lanes: 0,
    copies: 0,
    reason: "ORT refused the shared weights: no",
  });
  assert.deepEqual(store.summarise([model()], [{ models: [model()] }])[0].weights, undefined, "CPU lanes: no report");
});
