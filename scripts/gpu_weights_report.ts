/**
 * Device and host memory of one function served from 1, 4 and 8
 * Worker-hosted CUDA lanes on GPU 0, with one copy of the weights per device
 * (`ISOLANE_SHARED_WEIGHTS=on`, the default) and with a copy per lane
 * (`off`) (issue 15). Each case starts the real runtime on the generated
 * model, sends four requests per lane, and reads the device's used memory
 * from NVML (less what was in use before the runtime started) and the
 * runtime's resident memory from `/proc`.
 *
 *   deno run -A scripts/gpu_weights_report.ts [--shape 8x1024] [--instances 1,4,8] [--modes on,off] [--json out.json]
 *
 * Prints one JSON line per case, then one with the summary: per mode, the
 * device and host MiB each lane adds beyond the first.
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { denseReluModel } from "../native/ort/test_models.ts";
import { discoverDevices, Nvml } from "../native/mod.ts";
import { startServer } from "../tests/support/server.ts";

const MiB = 1024 * 1024;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    shape: { type: "string", default: "8x1024" },
    instances: { type: "string", default: "1,4,8" },
    modes: { type: "string", default: "on,off" },
    json: { type: "string" },
  },
});

const [layers, width] = values.shape.split("x").map(Number);
const counts = values.instances.split(",").map(Number);
const modes = values.modes.split(",") as ("on" | "off")[];
const found = discoverDevices();
if (found.devices.length === 0) {
  console.log(JSON.stringify({ skipped: found.reason ?? "no CUDA device" }));
  Deno.exit(0);
}
const opened = Nvml.open();
if (!opened) throw new Error("NVML cannot be opened: the device's memory cannot be read");
const nvml = opened;
const pciBusId = found.devices[0].pciBusId;

function deviceUsed(): number {
  return nvml.memory(pciBusId).usedBytes;
}

/** Used device memory once it stops moving (a runtime that just exited may still be releasing its context). */
async function settled(timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = deviceUsed();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = deviceUsed();
    if (now === last) return now;
    last = now;
  }
  return last;
}

async function residentBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN) * 1024;
}

function source(instances: number): string {
  return `import { defineFunction, runModel } from "isolane";
export default defineFunction({
  description: "${layers}×${width} MLP on ${instances} lane(s) of cuda:0",
  models: { mlp: "model.onnx" },
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, ${width}] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, ${width}] }],
  },
  device: [0],
  instances: ${instances},
  timeoutMs: 120000,
  handler: runModel("mlp"),
});
`;
}

const dir = await Deno.makeTempDir({ prefix: "isolane-weights-report-" });
const cases: Record<string, unknown>[] = [];
try {
  const model = join(dir, "model.onnx");
  await Deno.writeFile(model, denseReluModel({ layers, width }));
  const weightsMiB = (layers * (width * width + width) * 4) / MiB;
  for (const instances of counts) {
    await Deno.mkdir(join(dir, `i${instances}`, "mlp"), { recursive: true });
    await Deno.writeTextFile(join(dir, `i${instances}`, "mlp", "mod.ts"), source(instances));
    await Deno.link(model, join(dir, `i${instances}`, "mlp", "model.onnx"));
  }
  const x = [Array.from({ length: width }, (_, i) => Math.sin(i * 0.01))];
  for (const mode of modes) {
    for (const instances of counts) {
      const before = await settled();
      const t0 = performance.now();
      await using server = await startServer({
        functionsDir: join(dir, `i${instances}`),
        env: { ISOLANE_SHARED_WEIGHTS: mode, ISOLANE_LOG_LEVEL: "info" },
      });
      const loadMs = Math.round(performance.now() - t0);
      await Promise.all(Array.from({ length: instances * 4 }, async () => {
        const response = await server.invoke("mlp", { x });
        await response.body?.cancel();
        if (response.status !== 200) throw new Error(`request failed with ${response.status}`);
      }));
      const pid = Number(server.logs.find((l) => l.msg === "starting")?.pid);
      const info = await (await fetch(`${server.url}/v1/functions/mlp`)).json();
      const record = {
        case: "weights",
        shape: values.shape,
        weightsMiB: Math.round(weightsMiB * 10) / 10,
        mode,
        instances,
        loadMs,
        deviceMiB: Math.round(((await settled(5000)) - before) / MiB),
        hostMiB: Math.round((await residentBytes(pid)) / MiB),
        weights: info.models?.[0]?.weights ?? null,
      };
      cases.push(record);
      console.log(JSON.stringify(record));
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** Per mode: MiB each lane adds beyond the first (device and host), from the smallest to the largest count. */
const summary = Object.fromEntries(modes.map((mode) => {
  const rows = cases.filter((c) => c.mode === mode) as { instances: number; deviceMiB: number; hostMiB: number }[];
  const first = rows[0];
  const last = rows[rows.length - 1];
  const added = last && first && last.instances > first.instances ? last.instances - first.instances : NaN;
  return [mode, {
    deviceMiBPerAddedLane: Math.round((last.deviceMiB - first.deviceMiB) / added),
    hostMiBPerAddedLane: Math.round((last.hostMiB - first.hostMiB) / added),
    byInstances: Object.fromEntries(rows.map((r) => [r.instances, { deviceMiB: r.deviceMiB, hostMiB: r.hostMiB }])),
  }];
}));
console.log(JSON.stringify({ summary }));
if (values.json) await Deno.writeTextFile(values.json, JSON.stringify({ cases, summary }, null, 2));
