/**
 * GPU lanes on a real GPU: the five failure modes of serving models from many
 * threads, each as a named test, plus the examples served from CUDA lanes and
 * TensorRT detection. Skipped, with one line saying why, where no GPU (or no
 * ONNX Runtime CUDA provider) is usable; tests that need two GPUs skip with
 * their own line where fewer are visible.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { resizeNormalize } from "../../functions/ocr/image.ts";
import { assertClose, mlpInput, mlpReference } from "../support/mlp_reference.ts";
import { renderTextPng } from "../support/render_text.ts";
import { startServer, type TestServer, until } from "../support/server.ts";
import { gpus, settledMemory, skipReason, testImage, usedMemory, writeFunctions } from "./gpu_support.ts";

const ignore = skipReason !== null;
const twoGpus = gpus.length >= 2;
/** ONNX Runtime's CUDA provider computes MatMul in TF32 on Hopper: compare with a tolerance. */
const tf32 = 5e-3;
const MiB = 1024 * 1024;

// deno-lint-ignore no-explicit-any
type Json = any;

async function call(server: TestServer, name: string, body: unknown): Promise<Json> {
  const response = await server.invoke(name, body);
  const json = await response.json();
  assert.equal(response.status, 200, JSON.stringify(json));
  return json;
}

async function info(server: TestServer, name: string): Promise<Json> {
  return await (await fetch(`${server.url}/v1/functions/${name}`)).json();
}

/** The kernel's CPU reference for the probe's image. */
function kernelReference(image: ReturnType<typeof testImage>): number[] {
  const data = Uint8Array.from(image.rgba);
  return Array.from(resizeNormalize({ width: image.width, height: image.height, data }, {
    x: 0,
    y: 0,
    width: image.width,
    height: image.height,
  }, {
    width: Math.ceil(image.width * 0.75),
    height: Math.ceil(image.height * 0.75),
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
  }));
}

function assertKernelOutput(tensor: number[], expected: number[]): void {
  assert.equal(tensor.length, expected.length);
  assert.ok(tensor.some((v) => v !== 0), "the kernel's output is all zeros");
  const worst = Math.max(...tensor.map((v, i) => Math.abs(v - expected[i])));
  assert.ok(worst < 1e-4, `kernel output differs from the CPU reference by ${worst}`);
}

async function withRuntime(
  functions: Parameters<typeof writeFunctions>[0],
  fn: (server: TestServer) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const dir = await writeFunctions(functions);
  try {
    await using server = await startServer({ functionsDir: dir, env });
    await fn(server);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const allDevices = gpus.map((g) => g.index);

Deno.test({
  name: "gpu 1: device binding from many threads: every lane binds its own device's primary context first",
  ignore,
  fn: () =>
    withRuntime({ probe: { device: "cuda", instances: 4 } }, async (server) => {
      const { isolates } = await info(server, "probe");
      assert.equal(isolates.length, 4 * gpus.length);
      for (const isolate of isolates) {
        // Checked on the isolate's thread right after binding, before ONNX Runtime or any kernel ran.
        assert.equal(isolate.gpu.boundBeforeWork.primary, true, JSON.stringify(isolate.gpu));
        assert.equal(isolate.gpu.boundBeforeWork.device, isolate.gpu.device);
        // Observed, not planned: ORT's own placement log put the compute nodes on CUDA.
        assert.equal(isolate.providers[0], "cuda", JSON.stringify(isolate.providers));
      }
      if (twoGpus) assert.deepEqual([...new Set(isolates.map((i: Json) => i.gpu.device))].sort(), allDevices);
      const image = testImage();
      const expected = kernelReference(image);
      const results = await Promise.all(Array.from({ length: 32 }, (_, i) =>
        call(server, "probe", {
          x: mlpInput(i),
          image,
          order: i % 2 ? "kernel_first" : "ort_first",
        })));
      results.forEach((r: Json, i) => {
        assert.equal(r.before.primary, true, `request ${i} ran with ${JSON.stringify(r.before)}`);
        assert.equal(r.after.primary, true, `request ${i} ended with ${JSON.stringify(r.after)}`);
        assert.equal(r.before.device, r.lane.device);
        assertClose(r.y, mlpReference(mlpInput(i)), tf32, `request ${i}`);
        assertKernelOutput(r.tensor, expected);
      });
      // All isolates served, at the same time, on every device.
      const lanesUsed = new Set(results.map((r: Json) => r.lane.stream));
      assert.ok(lanesUsed.size >= 2, `only ${lanesUsed.size} lane(s) served 32 concurrent requests`);
      if (twoGpus) assert.deepEqual([...new Set(results.map((r: Json) => r.lane.device))].sort(), allDevices);
    }),
});

Deno.test({
  name: "gpu 2: two CUDA users in one process: ONNX Runtime and isolane's kernels share the primary context",
  ignore,
  fn: () =>
    withRuntime({ probe: { device: [0], instances: 2 } }, async (server) => {
      const image = testImage(80, 60);
      const expected = kernelReference(image);
      for (const order of ["ort_first", "kernel_first", "ort_first", "kernel_first"]) {
        const r = await call(server, "probe", { x: mlpInput(3, 5), image, order });
        assert.ok(r.y.flat().some((v: number) => v !== 0), `${order}: ONNX Runtime returned all zeros`);
        assertClose(r.y, mlpReference(mlpInput(3, 5)), tf32, order);
        assertKernelOutput(r.tensor, expected);
        assert.equal(r.after.primary, true);
      }
      // Every lane on a device holds the same context: the device's primary one, not one of its own.
      const { isolates } = await info(server, "probe");
      assert.equal(new Set(isolates.map((i: Json) => i.gpu.context)).size, 1);
    }),
});

for (const device of allDevices.length > 0 ? allDevices : [0]) {
  Deno.test({
    name: `gpu 3: pinned to one device: a function pinned to cuda:${device} allocates and runs only there`,
    ignore,
    fn: () =>
      withRuntime({ pinned: { device: [device], instances: 1 } }, async (server) => {
        // The runtime has started (its isolate bound the lane and loaded the model) but served nothing yet.
        const loaded = usedMemory();
        const r = await call(server, "pinned", { x: mlpInput(1), image: testImage() });
        assert.equal(r.lane.device, device);
        const after = usedMemory();
        const report = await (await fetch(`${server.url}/v1/devices`)).json();
        for (const d of report.devices) {
          const lanes = d.lanes.filter((l: Json) => l.function === "pinned");
          assert.equal(lanes.length, d.index === device ? 1 : 0, `lanes on device ${d.index}`);
        }
        const pinnedLane = report.devices[device].lanes[0];
        assert.equal(pinnedLane.served, 1);
        assert.ok(report.devices[device].memory.usedBytes > 0);
        console.log(`  used MiB after load ${loaded.map((b) => Math.round(b / MiB))}, after a request ${
          after.map((b) => Math.round(b / MiB))
        }`);
        for (
          const other of allDevices.filter((d) =>
            d !== device
          )
        ) {
          // NVML reads memory without creating a context, so reading cannot itself touch the other device.
          assert.ok(
            Math.abs(after[other] - loaded[other]) < 4 * MiB,
            `device ${other} moved by ${(after[other] - loaded[other]) / MiB} MiB`,
          );
        }
      }),
  });
}

Deno.test({
  name: "gpu 3b: pinned to one device: memory before the runtime starts and after, from the driver",
  ignore,
  fn: async () => {
    const before = await settledMemory();
    await withRuntime({ pinned: { device: [allDevices.at(-1)!], instances: 1 } }, async (server) => {
      await call(server, "pinned", { x: mlpInput(2) });
      const after = usedMemory();
      const pinned = allDevices.at(-1)!;
      console.log(
        `  used MiB before start ${before.map((b) => Math.round(b / MiB))}, after ${
          after.map((b) => Math.round(b / MiB))
        }`,
      );
      assert.ok(after[pinned] - before[pinned] > 64 * MiB, "the pinned device gained the lane's context and session");
      for (const other of allDevices.filter((d) => d !== pinned)) {
        assert.ok(Math.abs(after[other] - before[other]) < 4 * MiB, `device ${other} moved`);
      }
    });
  },
});

Deno.test({
  name: "gpu 4: concurrency: 64 concurrent requests across isolates sharing one model file equal the CPU reference",
  ignore,
  fn: () =>
    withRuntime({ probe: { device: "cuda", instances: 4 } }, async (server) => {
      const image = testImage(32, 24);
      const expected = kernelReference(image);
      const results = await Promise.all(Array.from({ length: 64 }, (_, i) =>
        call(server, "probe", { x: mlpInput(100 + i, 1 + (i % 7)), image: i % 4 === 0 ? image : undefined })));
      results.forEach((r: Json, i) => {
        assertClose(r.y, mlpReference(mlpInput(100 + i, 1 + (i % 7))), tf32, `request ${i}`);
        if (i % 4 === 0) {
          assertKernelOutput(r.tensor, expected);
        }
      });
      const { isolates } = await info(server, "probe");
      const served = isolates.map((i: Json) =>
        i.served
      );
      assert.equal(served.reduce((a: number, b: number) => a + b, 0), 64);
      assert.ok(served.filter((n: number) => n > 0).length >= 2, `served per isolate: ${served}`);
    }),
});

Deno.test({
  name:
    "gpu 5: never the default stream: each lane's stream is a created non-blocking stream, and all our work goes there",
  ignore,
  fn: () =>
    withRuntime({ probe: { device: "cuda", instances: 3 } }, async (server) => {
      const { isolates } = await info(server, "probe");
      const streams = isolates.map((i: Json) => i.gpu.stream);
      assert.equal(new Set(streams).size, streams.length, "every lane has a stream of its own");
      for (const isolate of isolates) {
        assert.ok(!["0x0", "0x1", "0x2"].includes(isolate.gpu.stream), `default stream handle ${isolate.gpu.stream}`);
        assert.equal(isolate.gpu.streamFlags, 1, "CU_STREAM_NON_BLOCKING");
      }
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => call(server, "probe", { x: mlpInput(i), image: testImage(16, 16) })),
      );
      for (const r of results) {
        // Allocations, copies, the launch and frees: every one on the lane's stream, none elsewhere.
        assert.deepEqual(Object.keys(r.streamUse), [r.lane.stream]);
        assert.ok(r.streamUse[r.lane.stream] >= 5);
      }
      // The lanes show in the metrics and on the status page too.
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const lanes = metrics.split("\n").filter((l) => l.startsWith("isolane_gpu_lanes{"));
      assert.equal(lanes.reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0), 3 * gpus.length, lanes.join("; "));
      assert.match(metrics, /^isolane_gpu_memory_used_bytes\{device="0",name="[^"]+"\} [1-9]\d*$/m);
      const page = await (await fetch(`${server.url}/?part=status`)).text();
      for (const stream of streams) {
        assert.ok(page.includes(`stream ${stream}`), `status page shows lane stream ${stream}`);
      }
    }),
});

Deno.test({
  name: "gpu: ocr and mlp served from CUDA lanes give the CPU answers",
  ignore,
  fn: async () => {
    const functionsDir = fileURLToPath(new URL("../../functions", import.meta.url));
    await using gpu = await startServer({ functionsDir });
    await using cpu = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });
    const ocrOnGpu = await info(gpu, "ocr");
    assert.ok(
      ocrOnGpu.isolates.every((i: Json) => i.gpu && i.providers[0] === "cuda"),
      JSON.stringify(ocrOnGpu.isolates),
    );
    // What serves the recogniser is its sessions per shape (setup's warm-up made one), each planned for its shapes:
    // ORT's placement log of each shows every node on CUDA, where the model as declared keeps 12 shape nodes on the
    // CPU (the first session, which no longer serves).
    const recOf = (i: Json) => i.models.find((m: Json) => m.name === "rec");
    const rec = recOf(ocrOnGpu);
    assert.ok(Object.keys(rec.shapes ?? {}).length >= 1, JSON.stringify(rec));
    for (const placement of [rec.placement, ...Object.values(rec.shapes)] as Json[]) {
      assert.ok(placement.cuda > 0 && !("cpu" in placement), JSON.stringify(rec));
    }
    assert.ok((await info(cpu, "ocr")).isolates.every((i: Json) => !i.gpu && i.providers[0] === "cpu"));

    const x = mlpInput(42, 9);
    const [yGpu, yCpu] = await Promise.all([call(gpu, "mlp", { x }), call(cpu, "mlp", { x })]);
    assertClose(yGpu.y, yCpu.y, tf32, "mlp GPU vs CPU");

    const png = await renderTextPng(["Hello World", "Lane 7 on cuda", "Total 318.75"], { width: 700 });
    const body = { image: Buffer.from(png).toString("base64") };
    const [onGpu, onCpu] = await Promise.all([call(gpu, "ocr", body), call(cpu, "ocr", body)]);
    assert.deepEqual(onGpu.lines.map((l: Json) => l.text), onCpu.lines.map((l: Json) => l.text));
    assert.equal(onGpu.lines.map((l: Json) => l.text).join("|"), "Hello World|Lane 7 on cuda|Total 318.75");
    if (ocrOnGpu.isolates.length === 1) {
      // The request's own line widths made sessions of their own, and the isolate reported where they run.
      const shapes = Object.keys(rec.shapes).length;
      await until(gpu, "ocr", (i) => Object.keys(recOf(i).shapes).length > shapes);
      const now = recOf(await info(gpu, "ocr"));
      assert.ok(Object.values(now.shapes).every((p) => (p as Json).cuda > 0), JSON.stringify(now));
    }
    // A tilted line: rotated boxes and the perspective crop feed the GPU path's pre-processing too.
    const tilted = await renderTextPng(["Hello Edge World 2025"], { width: 700, tiltDegrees: 15 });
    const tiltedOnGpu = await call(gpu, "ocr", { image: Buffer.from(tilted).toString("base64") });
    assert.deepEqual(tiltedOnGpu.lines.map((l: Json) => l.text), ["Hello Edge World 2025"]);
    // A line upside down, and vertical text that reads bottom to top: the angle classifier runs on the lane (its
    // input warped on the device, functions/ocr/classify.ts), and a turned line's transform reads it upright.
    const cls = ocrOnGpu.models.find((m: Json) => m.name === "cls");
    assert.ok(cls.placement.cuda > 0, JSON.stringify(cls));
    for (const tilt of [180, -90]) {
      const turned = await renderTextPng(["Hello Edge World 2025"], { width: 700, tiltDegrees: tilt });
      const turnedOnGpu = await call(gpu, "ocr", { image: Buffer.from(turned).toString("base64") });
      assert.deepEqual(turnedOnGpu.lines.map((l: Json) => l.text), ["Hello Edge World 2025"], `tilt ${tilt}`);
    }
    // A line wider than the canvas: the detector and the recogniser run it at its own shapes, not squeezed.
    const words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa " +
      "quebec romeo sierra tango uniform victor whiskey xray yankee zulu one two three four five six seven eight nine ten";
    const wide = await renderTextPng([words], { width: 4512 });
    const wideOnGpu = await call(gpu, "ocr", { image: Buffer.from(wide).toString("base64") });
    assert.deepEqual(wideOnGpu.lines.map((l: Json) => l.text), [words]);
    // The GPU path letterboxes the detector's input (fixed shapes, see functions/ocr/detect.ts) and convolves in
    // TF32, so box edges may move by a pixel or few; a fifth of the line height is the bound.
    let worst = 0;
    onGpu.lines.forEach((line: Json, i: number) => {
      const height = onCpu.lines[i].box[3][1] - onCpu.lines[i].box[0][1];
      line.box.forEach((p: number[], k: number) =>
        p.forEach((v, j) => {
          const diff = Math.abs(v - onCpu.lines[i].box[k][j]);
          worst = Math.max(worst, diff);
          assert.ok(
            diff <= height / 5,
            `line ${i} corner ${k}: ${v} on the GPU, ${onCpu.lines[i].box[k][j]} on the CPU`,
          );
        })
      );
    });
    console.log(`  largest box corner difference GPU vs CPU: ${worst} px`);
  },
});

Deno.test({
  name: "gpu: TensorRT: detected as missing; required fails the load with the reason, preferred falls back to CUDA",
  ignore,
  fn: () =>
    withRuntime({
      trt: { device: [0], instances: 1, gpuProvider: "tensorrt" },
      trtOrCuda: { device: [0], instances: 1, gpuProvider: "tensorrt-or-cuda" },
    }, async (server) => {
      const trt = await info(server, "trt");
      assert.equal(trt.status, "failed");
      assert.match(trt.error, /TensorRT provider, but TensorRT \(libnvinfer\.so\.10\) cannot be loaded/);
      const fallback = await info(server, "trtOrCuda");
      assert.equal(fallback.status, "ready");
      assert.equal(fallback.isolates[0].providers[0], "cuda");
      await server.waitForLog((l) =>
        l.function === "trtOrCuda" && /using the CUDA provider instead/.test(String(l.msg))
      );
      const r = await call(server, "trtOrCuda", { x: mlpInput(5) });
      assertClose(r.y, mlpReference(mlpInput(5)), tf32, "fallback");
    }),
});

Deno.test({
  name: "gpu two devices: device [0, 1] with instances 2 gets four lanes, two per device, shown by GET /v1/devices",
  ignore: ignore || !twoGpus,
  fn: () =>
    withRuntime({ spread: { device: [0, 1], instances: 2 } }, async (server) => {
      const { isolates } = await info(server, "spread");
      assert.deepEqual(isolates.map((i: Json) => i.gpu.device), [0, 1, 0, 1]);
      const report = await (await fetch(`${server.url}/v1/devices`)).json();
      assert.deepEqual(report.devices.slice(0, 2).map((d: Json) => d.lanes.length), [2, 2]);
      const results = await Promise.all(
        Array.from({ length: 64 }, (_, i) => call(server, "spread", { x: mlpInput(i) })),
      );
      results.forEach((r: Json, i) => assertClose(r.y, mlpReference(mlpInput(i)), tf32, `request ${i}`));
      assert.deepEqual([...new Set(results.map((r: Json) => r.lane.device))].sort(), [0, 1]);
    }),
});

Deno.test({
  name: "gpu two devices: CUDA_VISIBLE_DEVICES=1 makes the runtime see one device, numbered 0, and run there",
  ignore: ignore || !twoGpus,
  fn: async () => {
    const dir = await writeFunctions({ probe: { device: "cuda", instances: 1 } });
    try {
      const before = await settledMemory();
      await using server = await startServer({ functionsDir: dir, env: { CUDA_VISIBLE_DEVICES: "1" } });
      const report = await (await fetch(`${server.url}/v1/devices`)).json();
      assert.equal(report.devices.length, 1);
      assert.equal(report.devices[0].index, 0);
      assert.equal(report.devices[0].pciBusId, gpus[1].pciBusId);
      const r = await call(server, "probe", { x: mlpInput(9) });
      assert.equal(r.lane.device, 0);
      const after = usedMemory();
      assert.ok(after[1] - before[1] > 64 * MiB, "physical device 1 holds the lane");
      assert.ok(Math.abs(after[0] - before[0]) < 4 * MiB, "physical device 0 untouched");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "gpu 6: process-hosted lanes bind, run and stay on their stream exactly as Worker lanes do; what each costs",
  ignore,
  fn: async () => {
    const cost: Record<string, { loadMs: number; deviceMiB: number; hostMiB: number }> = {};
    for (const isolation of ["worker", "process"] as const) {
      const before = await settledMemory();
      await withRuntime({ probe: { device: [gpus[0].index], instances: 2 } }, async (server) => {
        const { isolates } = await info(server, "probe");
        for (const isolate of isolates) {
          assert.equal(isolate.isolation, isolation);
          assert.equal(isolate.gpu.boundBeforeWork.primary, true, JSON.stringify(isolate.gpu));
          assert.equal(isolate.gpu.streamFlags, 1, "CU_STREAM_NON_BLOCKING");
          assert.equal(isolate.providers[0], "cuda");
        }
        const image = testImage(16, 16);
        const expected = kernelReference(image);
        const results = await Promise.all(
          Array.from({ length: 16 }, (_, i) => call(server, "probe", { x: mlpInput(200 + i), image })),
        );
        results.forEach((r: Json, i) => {
          assert.equal(r.before.primary, true);
          assert.equal(r.after.primary, true);
          assertClose(r.y, mlpReference(mlpInput(200 + i)), tf32, `${isolation} request ${i}`);
          assertKernelOutput(r.tensor, expected);
          assert.deepEqual(Object.keys(r.streamUse), [r.lane.stream]);
        });
        const loaded = server.logs.find((l) => l.msg === "function loaded" && l.function === "probe");
        const after = usedMemory();
        const resident = isolates.reduce((n: number, i: Json) => n + (i.residentMb ?? 0), 0);
        cost[isolation] = {
          loadMs: Number(loaded?.ms),
          deviceMiB: Math.round((after[0] - before[0]) / MiB),
          hostMiB: resident,
        };
      }, { ISOLANE_ISOLATION: isolation });
    }
    // Reported, not asserted: what a process-hosted lane costs beside a Worker lane (2 lanes each).
    console.log(`lane cost (2 lanes): ${JSON.stringify(cost)}`);
  },
});
