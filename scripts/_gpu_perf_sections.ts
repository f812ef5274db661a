/**
 * The experiments of `gpu_perf_probe.ts`, one function per section. Each
 * prints one JSON line per result (through `emit`) and turns every failed
 * experiment into a line with its error (through `attempt`), so a section
 * always reports what it could measure.
 * @module
 */
import { streamNonBlocking } from "../native/mod.ts";
import { PinnedArena, type PrepackedWeights, type Session, type Value } from "../native/ort/mod.ts";
import { Tensor } from "onnxruntime-common";
import { checkOutputs, cutRows, runModelRows } from "../src/isolate/tensor_input.ts";
import { concatRows } from "../src/isolate/rows.ts";
import { stagedModel } from "../src/isolate/staged_model.ts";
import type { TensorSignature } from "../src/sdk.ts";
import { denseReluInitializers } from "../native/ort/test_models.ts";
import {
  attempt,
  dominant,
  effectiveCudaOptions,
  emit,
  FastPipeline,
  Gate,
  gpuUsedMiB,
  host,
  input,
  laneSession,
  LegacyPipeline,
  maxRelDiff,
  model,
  type ProbeContext,
  rawSession,
  reference,
  rssMiB,
  sample,
  type Sampled,
  type SessionSpec,
  summarise,
  tensorOf,
  timeCall,
} from "./_gpu_perf_harness.ts";

/** A section: runs its experiments on `ctx`; `arg` picks a mode where the section has several. */
export type Section = (ctx: ProbeContext, arg?: string) => Promise<void>;

function gpuOnly(ctx: ProbeContext, name: string): boolean {
  if (ctx.gpu) return true;
  emit(ctx, { case: name, skipped: `needs a GPU: ${ctx.noGpu}` });
  return false;
}

/** Times `n` back-to-back calls per sample and reports µs per call. */
async function perCall(ctx: ProbeContext, fn: () => unknown, n = 200): Promise<number> {
  const s = await sample(ctx, () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    return { us: (performance.now() - t0) * 1000 };
  }, { budgetMs: Math.min(300, ctx.caseMs), warmup: 3 });
  return Math.round((s.median.us / n) * 1000) / 1000;
}

function brief(s: Sampled): Record<string, unknown> {
  return { runs: s.runs, medianUs: s.median, p10Us: s.p10, p90Us: s.p90 };
}

/**
 * The floors: what a plain FFI call, ORT's table call, a stream wait and an
 * event cost; copies of each batch's input size every way the runtime could
 * make them; and ORT's cost of a run that does no work (an Identity model).
 */
async function floor(ctx: ProbeContext): Promise<void> {
  const { env, mem } = ctx;
  await attempt(ctx, "env", () => {
    const gpu = ctx.gpu;
    emit(ctx, {
      case: "env",
      ortVersion: env.version,
      caller: env.library.caller,
      deno: Deno.version.deno,
      shape: ctx.shape,
      gpu: gpu ? { ...gpu.driver.deviceInfo(gpu.lane.device), driver: gpu.driver.version() } : ctx.noGpu,
      laneContext: gpu?.lane.context,
      laneStreamId: gpu ? gpu.driver.streamId(gpu.lane.stream) : null,
      streamMemoryOps: gpu ? gpu.driver.streamMemoryOps : null,
      cudaOptions: effectiveCudaOptions(ctx, { tf32: true }),
    });
  });

  await attempt(ctx, "ffi", async () => {
    const scratch = mem.pinned.alloc(64);
    const word = new Uint32Array(1);
    const record: Record<string, number> = {
      "performance.now": await perCall(ctx, () => performance.now()),
      "deno ffi getpid": await perCall(ctx, () => host.getpid()),
      "ort table call through libffi (ReleaseStatus(NULL))": await perCall(
        ctx,
        () => env.library.fns.ReleaseStatus.call(0n),
      ),
      "writeHost 4 B (libc memcpy, buffer argument)": await perCall(ctx, () => env.writeHost(scratch, word)),
    };
    if (ctx.gpu) {
      const { driver, lane } = ctx.gpu;
      record["cuStreamQuery (idle)"] = await perCall(ctx, () => driver.streamIdle(lane.stream));
      record["cuStreamSynchronize (idle)"] = await perCall(ctx, () => driver.streamSynchronize(lane.stream));
      record["cuEventRecord"] = await perCall(ctx, () => mem.events!.record(5), 50);
      record["cuCtxGetCurrent"] = await perCall(ctx, () => driver.currentContext());
    }
    mem.pinned.free(scratch);
    emit(ctx, { case: "ffi", usPerCall: record });
  });

  for (const batch of ctx.batches) {
    const bytes = batch * ctx.shape.width * 4;
    await attempt(ctx, "copies", async () => {
      const x = input(ctx, batch);
      const pinned = mem.pinned.alloc(bytes);
      const device = mem.device.alloc(bytes);
      const reuse = new Float32Array(new ArrayBuffer(bytes));
      const view = new Float32Array(Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(pinned)!, bytes));
      const us = async (fn: () => unknown) =>
        (await timeCall(ctx, fn, { budgetMs: Math.min(300, ctx.caseMs) })).median.us;
      const record: Record<string, number> = {
        "new Float32Array (zeroed)": await us(() => new Float32Array(new ArrayBuffer(bytes))),
        "fill pinned: writeHost (libc memcpy)": await us(() => env.writeHost(pinned, x)),
        "fill pinned: view.set (ArrayBuffer over pinned memory)": await us(() => view.set(x)),
        "read pinned: new array + readHost": await us(() =>
          env.readHost(pinned, new Float32Array(new ArrayBuffer(bytes)))
        ),
        "read pinned: readHost into a reused array": await us(() => env.readHost(pinned, reuse)),
        "read pinned: view.slice()": await us(() => view.slice()),
        "read pinned: reused.set(view)": await us(() => reuse.set(view)),
      };
      if (ctx.gpu) {
        const { driver, lane } = ctx.gpu;
        const ev = mem.events!;
        const timed = async (name: string, fn: () => void) => {
          const s = await sample(ctx, () => {
            const t0 = performance.now();
            ev.record(0);
            fn();
            ev.record(1);
            driver.streamSynchronize(lane.stream);
            const t1 = performance.now();
            return { host: (t1 - t0) * 1000, device: ev.elapsedUs(0, 1) };
          }, { budgetMs: Math.min(300, ctx.caseMs) });
          record[`${name}, host incl. wait`] = s.median.host;
          record[`${name}, device`] = s.median.device;
        };
        await timed("H2D from pageable JS memory", () => driver.copyToDevice(device, x, lane.stream));
        await timed("H2D from pinned", () => driver.copyToDeviceFrom(device, pinned, bytes, lane.stream));
        await timed("D2H to pageable JS memory", () => driver.copyToHost(reuse, device, lane.stream));
        await timed("D2H to pinned", () => driver.copyToHostAt(pinned, device, bytes, lane.stream));
      }
      mem.device.free(device);
      mem.pinned.free(pinned);
      emit(ctx, { case: "copies", batch, bytes, medianUs: record });
    }, { batch });
  }

  // ORT's own cost of a run with no work: Identity at batch 64, every way of calling it.
  const batch = 64;
  const x = input(ctx, batch);
  const identity = await model(ctx, { kind: "identity" });
  for (const staging of ["ort", "lane"] as const) {
    await attempt(ctx, "identity.session", async () => {
      const session = laneSession(ctx, identity, { staging });
      try {
        const s = await timeCall(ctx, async () => (await session.run({ x: tensorOf(ctx, x) })).y.data);
        emit(ctx, { case: "identity.session", staging, batch, ...brief(s) });
      } finally {
        await session.release();
      }
    }, { staging });
  }
  await attempt(ctx, "identity.raw", async () => {
    const session = rawSession(ctx, identity, {});
    const memory = env.memoryInfo(mem.deviceName, 0);
    const bytes = x.byteLength;
    const din = mem.device.alloc(bytes);
    const dout = mem.device.alloc(bytes);
    const vin = env.tensorAt("float32", din, bytes, [batch, ctx.shape.width], memory);
    const vout = env.tensorAt("float32", dout, bytes, [batch, ctx.shape.width], memory);
    const binding = session.ioBinding();
    const sync = env.runOptions();
    const nosync = env.runOptions();
    nosync.config("disable_synchronize_execution_providers", "1");
    try {
      binding.bindInput("x", vin);
      binding.bindOutput("y", vout);
      const record: Record<string, unknown> = {
        "RunWithBinding, bound once, ORT waits": brief(await timeCall(ctx, () => binding.run(sync))),
        "RunWithBinding, bound once, no ORT wait + lane wait": brief(
          await timeCall(ctx, () => {
            binding.run(nosync);
            mem.device.synchronize();
          }),
        ),
        "RunWithBinding nonblocking, bound once, ORT waits": brief(await timeCall(ctx, () => binding.runAsync(sync))),
        "Run (CPU tensors in and out, no binding)": brief(
          await timeCall(ctx, () => {
            using v = env.tensor("float32", x, [batch, ctx.shape.width]);
            const out = session.run({ x: v });
            for (const o of Object.values(out)) o.close();
          }),
        ),
      };
      emit(ctx, { case: "identity.raw", batch, results: record });
    } finally {
      binding.close();
      sync.close();
      nosync.close();
      vin.close();
      vout.close();
      mem.device.free(din);
      mem.device.free(dout);
      memory.close();
      session.close();
    }
  });
}

/**
 * Per-run breakdown at each batch, with and without a CUDA graph: the two
 * pipelines call by call (stages timed on the host, copies and the run on
 * the device by events), and `NativeSession` end to end with either staging.
 */
async function breakdown(ctx: ProbeContext): Promise<void> {
  const graphs = ctx.gpu ? [false, true] : [false];
  const dynamicPath = await model(ctx, {});
  const e2e = new Map<string, ReturnType<typeof laneSession>>();
  try {
    for (const batch of ctx.batches) {
      const x = input(ctx, batch);
      const ref = await reference(ctx, batch);
      for (const graph of graphs) {
        const path = graph ? await model(ctx, { batch }) : dynamicPath;
        const where = { batch, graph };
        await attempt(ctx, "legacy", async () => {
          using p = new LegacyPipeline(ctx, rawSession(ctx, path, { graph }), { batch, graph });
          const s = await sample(ctx, () => p.run(x).times);
          emit(ctx, {
            case: "legacy",
            ...where,
            ...brief(s),
            dominant: dominant(s),
            maxRelDiff: maxRelDiff(p.run(x).y, ref),
          });
        }, where);
        await attempt(ctx, "fast", async () => {
          using p = new FastPipeline(ctx, rawSession(ctx, path, { graph }), { batch, graph });
          const s = await sample(ctx, async () => (await p.run(x)).times);
          const hostStages = ["fill", "copyIn", "run", "copyOut", "sync", "read"];
          emit(ctx, {
            case: "fast",
            ...where,
            ...brief(s),
            dominant: dominant(s, hostStages),
            maxRelDiff: maxRelDiff((await p.run(x)).y, ref),
          });
        }, where);
        for (const staging of ["ort", "lane"] as const) {
          await attempt(ctx, "session", async () => {
            const key = `${staging}/${graph ? batch : "dynamic"}`;
            let session = e2e.get(key);
            if (!session) {
              session = laneSession(ctx, path, { staging, graph });
              e2e.set(key, session);
            }
            const run = async () => (await session.run({ x: tensorOf(ctx, x) })).y.data as Float32Array;
            const s = await timeCall(ctx, run);
            emit(ctx, { case: "session", staging, ...where, ...brief(s), maxRelDiff: maxRelDiff(await run(), ref) });
          }, { staging, ...where });
        }
        for (const [key, session] of [...e2e]) {
          if (key.endsWith(`/${batch}`)) {
            await session.release();
            e2e.delete(key);
          }
        }
      }
    }
  } finally {
    for (const session of e2e.values()) await session.release();
  }
}

/**
 * The device's own time: every copy and kernel of a run queued behind a
 * gate before the device may start, so the events see no host gaps.
 */
async function gated(ctx: ProbeContext): Promise<void> {
  if (!gpuOnly(ctx, "gated")) return;
  if (!ctx.gpu!.driver.streamMemoryOps) {
    emit(ctx, { case: "gated", skipped: "cuStreamWaitValue32_v2 is missing in this driver" });
    return;
  }
  using gate = new Gate(ctx);
  // Once ORT is seen waiting inside Run for a replay, further graph cases would each cost the watchdog's delay.
  let graphWaits = false;
  const kinds: [string, SessionSpec][] = [
    ["matmul tf32", { tf32: true }],
    ["matmul fp32", { tf32: false }],
    ["gemm tf32", { tf32: true, model: { op: "gemm" } }],
    ["matmul fp16", { model: { float16: true } }],
  ];
  for (const [variant, spec] of kinds) {
    for (const batch of ctx.batches) {
      for (const graph of [false, true]) {
        const where = { variant, batch, graph };
        if (graph && graphWaits) {
          emit(ctx, { case: "gated", ...where, skipped: "ORT waited inside Run in an earlier graph case" });
          continue;
        }
        await attempt(ctx, "gated", async () => {
          const path = await model(ctx, { ...spec.model, batch: graph ? batch : undefined });
          using p = new FastPipeline(ctx, rawSession(ctx, path, { ...spec, graph }), { batch, graph });
          const x = input(ctx, batch);
          for (let i = 0; i < 5; i++) await p.run(x);
          let last: Float32Array = new Float32Array();
          const s = await sample(ctx, () => {
            const { y, times } = p.runGated(x, gate);
            if (times.waitedInsideRun) {
              if (graph) graphWaits = true;
              throw new Error("ORT waited for the stream inside Run (freed by the watchdog)");
            }
            last = y;
            return times;
          }, { warmup: 1 });
          emit(ctx, {
            case: "gated",
            ...where,
            ...brief(s),
            maxRelDiff: maxRelDiff(last, await reference(ctx, batch)),
          });
        }, where);
      }
    }
  }
}

/** A variant of session or provider options, measured like `fast` at every batch, with and without a graph. */
const variantList: [string, SessionSpec][] = [
  ["base (matmul, tf32)", {}],
  ["tf32 off", { tf32: false }],
  ["gemm model", { model: { op: "gemm" } }],
  ["gemm model, tf32 off", { model: { op: "gemm" }, tf32: false }],
  ["gemm model, weights [out, in] (transB)", { model: { op: "gemm-t" } }],
  ["bias folded into the weights (MatMul + Relu)", { model: { op: "folded" } }],
  ["fp16 weights", { model: { float16: true } }],
  ["graph optimization disabled", { graphOptimization: "disabled" }],
  ["graph optimization basic", { graphOptimization: "basic" }],
  ["graph optimization extended", { graphOptimization: "extended" }],
  ["intra-op threads: ORT default", { intraOpThreads: 0 }],
  ["lane defaults (kSameAsRequested, HEURISTIC)", { laneDefaults: true }],
  ["session.use_env_allocators=1", { config: { "session.use_env_allocators": "1" } }],
  ["do_copy_in_default_stream=0", { extra: { do_copy_in_default_stream: "0" } }],
  ["use_ep_level_unified_stream=1", { extra: { use_ep_level_unified_stream: "1" } }],
  ["cudnn_conv_use_max_workspace=1", { extra: { cudnn_conv_use_max_workspace: "1" } }],
  ["prefer_nhwc=1", { extra: { prefer_nhwc: "1" } }],
  ["enable_skip_layer_norm_strict_mode=1", { extra: { enable_skip_layer_norm_strict_mode: "1" } }],
  ["tunable_op_enable=1, tunable_op_tuning_enable=1", {
    extra: { tunable_op_enable: "1", tunable_op_tuning_enable: "1" },
  }],
];

async function variants(ctx: ProbeContext, only?: string): Promise<void> {
  const graphs = ctx.gpu ? [false, true] : [false];
  const wanted = only?.split("+");
  for (const [variant, spec] of variantList) {
    if (wanted && !wanted.some((w) => variant.startsWith(w))) continue;
    if (spec.extra && !ctx.gpu) {
      emit(ctx, { case: "variant", variant, skipped: `CUDA provider options need a GPU: ${ctx.noGpu}` });
      continue;
    }
    if (spec.extra) {
      const accepted = await attempt(ctx, "variant.options", () => {
        const held = effectiveCudaOptions(ctx, spec);
        const keys = Object.keys(spec.extra!);
        emit(ctx, {
          case: "variant.options",
          variant,
          heldByOrt: typeof held === "string" ? held : Object.fromEntries(keys.map((k) => [k, held[k] ?? null])),
        });
      }, { variant });
      if (!accepted) continue;
    }
    for (const graph of graphs) {
      for (const batch of ctx.batches) {
        const where = { variant, batch, graph };
        await attempt(ctx, "variant", async () => {
          const path = await model(ctx, { ...spec.model, batch: graph ? batch : undefined });
          using p = new FastPipeline(ctx, rawSession(ctx, path, { ...spec, graph }), { batch, graph });
          const x = input(ctx, batch);
          const s = await sample(ctx, async () => (await p.run(x)).times, { budgetMs: ctx.caseMs * 0.6 });
          emit(ctx, {
            case: "variant",
            ...where,
            ...brief(s),
            maxRelDiff: maxRelDiff((await p.run(x)).y, await reference(ctx, batch)),
          });
        }, where);
      }
    }
  }
}

/** The sharing modes: provider, and how the weights are given. */
export const sharingModes = [
  "cuda-none",
  "cuda-device",
  "cuda-host",
  "cuda-prepacked",
  "cpu-none",
  "cpu-prepacked",
  "cpu-host-prepacked",
] as const;

/**
 * Weight sharing (issue 15) for 1, 4 and 8 sessions of one model: device
 * and host memory used, and a proof of what is shared: after the sessions
 * exist, the last layer's weights are zeroed where the caller keeps them;
 * a session that reads the caller's memory then answers zeros.
 */
async function sharing(ctx: ProbeContext, mode = "cuda-none"): Promise<void> {
  const cuda = mode.startsWith("cuda");
  if (cuda && !gpuOnly(ctx, `sharing ${mode}`)) return;
  const { env } = ctx;
  const path = await model(ctx, {});
  const batch = 64;
  const x = input(ctx, batch);
  const ref = await reference(ctx, batch);
  const dims = (
    data: Float32Array,
  ) => (data.length === ctx.shape.width ? [ctx.shape.width] : [ctx.shape.width, ctx.shape.width]);
  const before = { gpu: gpuUsedMiB(ctx), rss: await rssMiB() };
  const initializers: Record<string, Value> = {};
  const hostData = new Map<string, Float32Array>();
  const deviceData = new Map<string, bigint>();
  const deviceMemory = cuda ? env.memoryInfo("Cuda", 0) : null;
  let container: PrepackedWeights | null = null;
  const sessions: Session[] = [];
  try {
    if (mode.includes("host")) {
      for (const [name, data] of denseReluInitializers(ctx.shape)) {
        hostData.set(name, data);
        initializers[name] = env.tensor("float32", data, dims(data));
      }
    }
    if (mode === "cuda-device") {
      const { driver, lane } = ctx.gpu!;
      for (const [name, data] of denseReluInitializers(ctx.shape)) {
        const address = driver.alloc(data.byteLength);
        deviceData.set(name, address);
        driver.copyToDevice(address, data, lane.stream);
        initializers[name] = env.tensorAt("float32", address, data.byteLength, dims(data), deviceMemory!);
      }
      driver.streamSynchronize(lane.stream);
    }
    if (mode.includes("prepacked")) container = env.prepackedWeights();
    const afterValues = { gpu: gpuUsedMiB(ctx), rss: await rssMiB() };
    const runOnce = (session: Session) => {
      using v = env.tensor("float32", x, [batch, ctx.shape.width]);
      const { y } = session.run({ x: v });
      try {
        return y.read() as Float32Array;
      } finally {
        y.close();
      }
    };
    let worst = 0;
    let previous = afterValues;
    const mib = (v: number) => Math.round(v * 10) / 10;
    for (const target of [1, 4, 8]) {
      const t0 = performance.now();
      const made = sessions.length;
      const created = await attempt(ctx, "sharing", () => {
        while (sessions.length < target) {
          sessions.push(rawSession(ctx, path, { initializers, prepacked: container ?? undefined, cpu: !cuda }));
          worst = Math.max(worst, maxRelDiff(runOnce(sessions[sessions.length - 1]), ref));
        }
      }, { mode, sessions: target });
      if (!created) break;
      const added = Math.max(1, target - made);
      const now = { gpu: gpuUsedMiB(ctx), rss: await rssMiB() };
      emit(ctx, {
        case: "sharing",
        mode,
        provider: cuda ? "cuda" : "cpu",
        sessions: target,
        gpuMiB: now.gpu === null ? null : mib(now.gpu - before.gpu!),
        rssMiB: mib(now.rss - before.rss),
        gpuMiBPerAddedSession: now.gpu === null ? null : mib((now.gpu - previous.gpu!) / added),
        rssMiBPerAddedSession: mib((now.rss - previous.rss) / added),
        weightsGpuMiB: afterValues.gpu === null ? null : mib(afterValues.gpu - before.gpu!),
        weightsRssMiB: mib(afterValues.rss - before.rss),
        msPerNewSession: Math.round((performance.now() - t0) / added),
        maxRelDiff: worst,
      });
      previous = now;
    }
    if (sessions.length > 0 && (hostData.size > 0 || deviceData.size > 0)) {
      await attempt(ctx, "sharing.proof", () => {
        const last = ctx.shape.layers - 1;
        for (const name of [`w${last}`, `b${last}`]) {
          hostData.get(name)?.fill(0);
          const address = deviceData.get(name);
          if (address !== undefined) {
            const zeros = new Float32Array(name.startsWith("w") ? ctx.shape.width * ctx.shape.width : ctx.shape.width);
            ctx.gpu!.driver.copyToDevice(address, zeros, ctx.gpu!.lane.stream);
            ctx.gpu!.driver.streamSynchronize(ctx.gpu!.lane.stream);
          }
        }
        const zeroed = sessions.filter((s) => runOnce(s).every((v) => v === 0)).length;
        emit(ctx, {
          case: "sharing.proof",
          mode,
          sessions: sessions.length,
          sessionsReadingCallersWeights: zeroed,
          meaning: zeroed === sessions.length
            ? "every session computes with the caller's memory: one copy of the weights"
            : zeroed === 0
            ? "no session reads the caller's memory after creation: ORT copied (or pre-packed) the weights"
            : "some sessions read the caller's memory",
        });
      }, { mode });
    }
  } finally {
    for (const s of sessions) s.close();
    container?.close();
    for (const v of Object.values(initializers)) v.close();
    for (const address of deviceData.values()) ctx.gpu?.driver.free(address);
    deviceMemory?.close();
  }
}

function stats(us: number[]): Record<string, number> {
  const s = [...us].sort((a, b) => a - b);
  const median = s[Math.floor(s.length / 2)] ?? NaN;
  return {
    runs: s.length,
    medianUs: Math.round(median),
    p99Us: Math.round(s[Math.floor(s.length * 0.99)] ?? NaN),
    maxUs: Math.round(s[s.length - 1] ?? NaN),
    slowerThan5xMedian: s.filter((v) => v > 5 * median).length,
  };
}

/**
 * Non-blocking runs on CUDA: what context the pool threads have, whether
 * results and CUDA graphs survive thread changes (compared with blocking
 * runs), per-run time blocking against nonblocking, and, with the stream
 * held by a gate, whether ORT's work is queued on the lane's stream.
 */
async function nonblocking(ctx: ProbeContext): Promise<void> {
  const runs = ctx.dryRun ? 50 : 1000;
  const contexts = async (label: string) => {
    if (!ctx.gpu) return;
    await attempt(ctx, `nonblocking.context.${label}`, async () => {
      const { driver, lane } = ctx.gpu!;
      const ctxs = await Promise.all(Array.from({ length: 8 }, () => driver.currentContextOnPoolThread()));
      const tids = await Promise.all(Array.from({ length: 8 }, () => host.gettidOnPool()));
      emit(ctx, {
        case: `nonblocking.context.${label}`,
        laneContext: lane.context,
        isolateThreadContext: driver.currentContext(),
        isolateThread: host.gettid(),
        poolThreadContexts: [...new Set(ctxs)],
        poolThreadsAnswering: [...new Set(tids)],
        allPrimary: ctxs.every((c) => c === lane.context),
      });
    });
  };
  await contexts("before");

  const batch = 64;
  const xs = Array.from({ length: 8 }, (_, seed) => input(ctx, batch, seed));
  const graphs = ctx.gpu ? [false, true] : [false];
  for (const graph of graphs) {
    for (const staging of ["ort", "lane"] as const) {
      const where = { staging, graph, batch };
      await attempt(ctx, "nonblocking.run", async () => {
        const path = await model(ctx, graph ? { batch } : {});
        const blocking = laneSession(ctx, path, { staging, graph });
        const nb = laneSession(ctx, path, { staging, graph, nonblocking: true });
        try {
          const run = async (s: typeof nb, x: Float32Array) =>
            (await s.run({ x: tensorOf(ctx, x) })).y.data as Float32Array;
          const expected: Float32Array[] = [];
          for (const x of xs) expected.push(await run(blocking, x));
          const cpuDiff = maxRelDiff(expected[0], await reference(ctx, batch, 0));
          const gpuBefore = gpuUsedMiB(ctx);
          const timed = async (fn: (i: number) => Promise<Float32Array>) => {
            const us: number[] = [];
            let worst = 0;
            let mismatches = 0;
            let busyAfter = 0;
            const end = Math.min(ctx.deadline - 3000, Date.now() + Math.max(3000, ctx.caseMs * 8));
            for (let i = 0; i < runs && Date.now() < end; i++) {
              const t0 = performance.now();
              const y = await fn(i);
              us.push((performance.now() - t0) * 1000);
              if (ctx.gpu && !ctx.gpu.driver.streamIdle(ctx.gpu.lane.stream)) busyAfter++;
              const d = maxRelDiff(y, expected[i % xs.length]);
              worst = Math.max(worst, d);
              if (d > 1e-3) mismatches++;
            }
            return { ...stats(us), maxRelDiffVsBlocking: worst, mismatches, streamBusyAfterRun: busyAfter };
          };
          for (let i = 0; i < 5; i++) await run(nb, xs[i % xs.length]);
          const blockingStats = await timed((i) => run(blocking, xs[i % xs.length]));
          const plain = await timed((i) => run(nb, xs[i % xs.length]));
          const poolThreads = new Set<number>();
          const churn = await timed(async (i) => {
            // Keeps other pool threads busy so that runs land on changing threads.
            const [y, ...rest] = await Promise.all([
              run(nb, xs[i % xs.length]),
              host.sleepOnPool(150).then(() => -1),
              host.sleepOnPool(150).then(() => -1),
              host.gettidOnPool(),
            ]);
            for (const t of rest) if (t > 0) poolThreads.add(t as number);
            return y as Float32Array;
          });
          emit(ctx, {
            case: "nonblocking.run",
            ...where,
            blocking: blockingStats,
            nonblocking: plain,
            nonblockingChangingThreads: { ...churn, poolThreadsSeen: poolThreads.size },
            maxRelDiffBlockingVsCpu: cpuDiff,
            gpuGrowthMiB: ctx.gpu ? Math.round((gpuUsedMiB(ctx)! - gpuBefore!) * 10) / 10 : null,
          });
        } finally {
          await nb.release();
          await blocking.release();
        }
      }, where);
    }
  }
  await contexts("after");

  if (!ctx.gpu || !ctx.gpu.driver.streamMemoryOps) {
    emit(ctx, { case: "nonblocking.gate", skipped: ctx.gpu ? "no cuStreamWaitValue32" : `needs a GPU: ${ctx.noGpu}` });
    return;
  }
  // Without a CUDA graph only: a capture on a pool thread while this thread reads the output would be disturbed.
  for (const gb of [64, 256]) {
    const graph = false;
    await attempt(ctx, "nonblocking.gate", async () => {
      const { driver, lane } = ctx.gpu!;
      const path = await model(ctx, graph ? { batch: gb } : {});
      using p = new FastPipeline(ctx, rawSession(ctx, path, { graph }), { batch: gb, graph, nonblocking: true });
      using gate = new Gate(ctx, 3000);
      const reader = driver.streamCreate(streamNonBlocking);
      const peek = ctx.mem.pinned.alloc(4096);
      try {
        const x = input(ctx, gb);
        for (let i = 0; i < 5; i++) await p.run(x);
        const expected = (await p.run(x)).y;
        const sentinel = new Uint32Array(1024).fill(0xffffffff);
        const now = new Uint32Array(1024);
        const { binding, runOptions } = p.parts;
        let queued = 0;
        let resolvedEarly = 0;
        let correct = 0;
        const trials = 20;
        for (let t = 0; t < trials; t++) {
          driver.copyToDevice(p.outputAddress, sentinel, lane.stream);
          driver.streamSynchronize(lane.stream);
          const k = gate.arm();
          driver.streamWaitValue32(lane.stream, gate.deviceAddress, k);
          p.stageInput(x);
          let resolved = false;
          const running = binding.runAsync(runOptions).then(() => (resolved = true));
          await new Promise((r) => setTimeout(r, 20));
          // Read the output buffer on a stream of its own, which waits for nothing: still the sentinel while gated.
          driver.copyToHostAt(peek, p.outputAddress, 4096, reader);
          driver.streamSynchronize(reader);
          ctx.env.readHost(peek, now);
          if (now.every((v) => v === 0xffffffff)) queued++;
          if (resolved) resolvedEarly++;
          gate.release(k);
          await running;
          const y = p.finish();
          if (maxRelDiff(y, expected) === 0) correct++;
        }
        emit(ctx, {
          case: "nonblocking.gate",
          graph,
          batch: gb,
          trials,
          workHeldBackWithTheLaneStream: queued,
          runReturnedBeforeTheStreamWasFreed: resolvedEarly,
          resultsEqualToUngated: correct,
        });
      } finally {
        ctx.mem.pinned.free(peek);
        driver.streamDestroy(reader);
      }
    }, { graph, batch: gb });
  }
}

/** What ncu watches: a few runs of one case (`arg`: `<op>-<tf32|fp32|fp16>-<batch>`). */
async function kernels(ctx: ProbeContext, arg = "matmul-tf32-64"): Promise<void> {
  const [op, precision, batchText] = arg.split("-");
  const batch = Number(batchText);
  const spec: SessionSpec = {
    model: { op: op === "gemm" || op === "folded" ? op : "matmul", float16: precision === "fp16" },
    tf32: precision === "tf32",
  };
  const path = await model(ctx, spec.model!);
  using p = new FastPipeline(ctx, rawSession(ctx, path, spec), { batch, events: false });
  const x = input(ctx, batch);
  // ncu prints its report when the process ends, so a run it times out on reports nothing: few runs.
  for (let i = 0; i < 2; i++) await p.run(x);
  const times = [];
  for (let i = 0; i < 3; i++) times.push((await p.run(x)).times);
  emit(ctx, { case: "kernels.work", arg, runsUnderNcu: 5, ...brief(summarise(times)) });
}

/** Every section by name. */
/**
 * A batch as the isolate serves it (issue 15: copies included), on
 * `NativeSession`s with `staging: "lane"`, for batches of one-row requests
 * and of one request with every row:
 *
 * - `handler`: what a hand-written handler costs: the requests' rows
 *   concatenated into a new array, `run` (the input copied into pinned
 *   staging, the outputs read into a new array), the outputs cut into each
 *   request's buffers;
 * - `runModel`: what a `runModel` handler costs (`runModelRows`, the
 *   runtime's own code): the rows written straight into the session's pinned
 *   arena, the outputs cut straight out of it into each request's buffers;
 * - `runModel, no arena`: the same without the arena (copies in between).
 *
 * Per case: µs per batch end to end (`total`), and inside `runModel` the
 * time in `fill` and in `consume` (the cut), the rest being the run.
 */
async function staged(ctx: ProbeContext): Promise<void> {
  const width = ctx.shape.width;
  const signature: TensorSignature = {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, width] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, width] }],
  };
  const graphs = ctx.gpu ? [false, true] : [false];
  const biggest = Math.max(...ctx.batches);
  const layout = { inputs: { x: biggest * width * 4 }, outputs: { y: biggest * width * 4 } };
  for (const graph of graphs) {
    for (const batch of ctx.batches.filter((b) => b > 1)) {
      const path = await model(ctx, graph ? { batch } : {});
      const x = input(ctx, batch);
      const ref = await reference(ctx, batch);
      for (const rowsPerRequest of [1, batch]) {
        const requests = Array.from({ length: batch / rowsPerRequest }, (_, i) => ({
          x: new Tensor("float32", x.slice(i * rowsPerRequest * width, (i + 1) * rowsPerRequest * width), [
            rowsPerRequest,
            width,
          ]),
        }));
        const rows = requests.map(() => rowsPerRequest);
        const where = { batch, graph, requests: requests.length };
        const joined = (split: { bytes: Uint8Array }[][]) => {
          const out = new Float32Array(batch * width);
          let at = 0;
          for (const [{ bytes }] of split) {
            out.set(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), at);
            at += bytes.byteLength / 4;
          }
          return out;
        };
        await attempt(ctx, "staged.handler", async () => {
          const session = laneSession(ctx, path, { staging: "lane", graph });
          try {
            const once = async () => {
              const merged = concatRows(requests.map((r) => r.x));
              const value = await session.run({ x: merged });
              return cutRows(checkOutputs(signature, value, { name: "probe" }), rows);
            };
            const s = await timeCall(ctx, once);
            emit(ctx, {
              case: "staged.handler",
              ...where,
              ...brief(s),
              maxRelDiff: maxRelDiff(joined(await once()), ref),
            });
          } finally {
            await session.release();
          }
        }, where);
        for (const withArena of [true, false]) {
          const name = withArena ? "staged.runModel" : "staged.runModel.noArena";
          await attempt(ctx, name, async () => {
            const arena = withArena ? PinnedArena.map(ctx.mem.pinned, layout) : undefined;
            const session = laneSession(ctx, path, { staging: "lane", graph, arena });
            const model = stagedModel(session);
            // The stages inside: fill and the cut, timed by wrapping the staged model's callbacks.
            let fillUs = 0;
            let consumeUs = 0;
            const timed = {
              run: <T>(request: Parameters<typeof model.run<T>>[0]) =>
                model.run<T>({
                  inputs: request.inputs,
                  fill: (n, into) => {
                    const t0 = performance.now();
                    request.fill(n, into);
                    fillUs = (performance.now() - t0) * 1000;
                  },
                  consume: (outputs) => {
                    const t0 = performance.now();
                    try {
                      return request.consume(outputs);
                    } finally {
                      consumeUs = (performance.now() - t0) * 1000;
                    }
                  },
                }),
            };
            try {
              const once = async () => (await runModelRows(timed, signature, requests, { name: "probe" }))!;
              const s = await sample(ctx, async () => {
                const t0 = performance.now();
                await once();
                const total = (performance.now() - t0) * 1000;
                return { total, fill: fillUs, consume: consumeUs, run: total - fillUs - consumeUs };
              });
              emit(ctx, { case: name, ...where, ...brief(s), maxRelDiff: maxRelDiff(joined(await once()), ref) });
            } finally {
              await session.release();
              arena?.close();
            }
          }, where);
        }
      }
    }
  }
}

export const sections: Record<string, Section> = {
  floor,
  breakdown,
  staged,
  gated,
  variants,
  sharing,
  nonblocking,
  kernels,
};
