/**
 * isolane's benchmark suite (`deno task bench`): drives the real runtime and its baselines over HTTP with Debian's
 * `wrk` (closed loop, 127.0.0.1 only, bounded in requests and time) and writes a report.
 *
 *   deno task bench [--quick] [--scenarios A,B,C,D,E] [--cuda] [--duration 5] [--levels 1,8,32,64,256,512]
 *                   [--instances 2] [--http-threads n] [--out bench/results]
 *
 * Scenarios:
 * - A. echo through isolates vs. a plain Hono JSON echo (the c=1 run is the sequential latency);
 * - B. `mlp` and the 8×1024 MLP through isolane, dynamic batching off and on, vs. a plain Hono server calling
 *   ONNX Runtime inline, plus a bare ONNX Runtime loop (no HTTP) at batch 1/64/256 as the device ceiling;
 * - C. overload: `mlp` at 4× the concurrency that saturates it, and at c=32 and c=512;
 * - D. cold start (a deploy's upload to its first 200) and isolate respawn after a timeout;
 * - E. KServe v2 binary tensor extension vs. v2 JSON on the 8×1024 MLP with dynamic batching, over the sweep's
 *   levels ("n/a" while the runtime answers 4xx).
 *
 * The report goes to `<out>/<date>-<host>.json`, `.md` and `.svg` (throughput and p99 against concurrency, drawn
 * by vega-lite and vega's headless renderer); the Markdown is printed at the end, with where each target of issue
 * 14 stands.
 * @module
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { availableParallelism, cpus, hostname, loadavg, totalmem } from "node:os";
import { type Child, startChild } from "./child.ts";
import { packFolder } from "../src/registry/bundle.ts";
import { defaultHttpThreads } from "../src/config.ts";
import { findWrk, type LoadResult, runLoad, type WrkBinary } from "./wrk.ts";
import { type DynamicBatching, mlpFolder, v2BinaryBody, wideRow, writeBenchFunctions } from "./functions.ts";
import { ensureWideMlp } from "./make_mlp8x1024.ts";
import { renderMarkdown } from "./report_markdown.ts";
import { renderChart } from "./report_chart.ts";
import { evaluateTargets, type Target } from "./targets.ts";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const echoBaseline = here("./baselines/hono_echo.ts");
const binaryEchoBaseline = here("./baselines/hono_binary_echo.ts");
const ortBaseline = here("./baselines/hono_ort.ts");
const ortLoop = here("./baselines/ort_loop.ts");
const floorBaseline = here("./baselines/hop_floor.ts");
const mlpModel = here("../functions/mlp/mlp.onnx");

/** Every scenario the suite knows. */
export const allScenarios = ["A", "B", "C", "D", "E"] as const;
/** A scenario's letter. */
export type ScenarioId = typeof allScenarios[number];

/** Options of {@link runSuite}. */
export interface SuiteOptions {
  scenarios: ScenarioId[];
  /** Concurrency levels of the sweeps. */
  levels: number[];
  /** Seconds of one load run at most. */
  durationS: number;
  /** Answers after which one load run ends. */
  maxRequests: number;
  /** Seconds of the warm-up before each series. */
  warmupS: number;
  /** Isolates per bench function. */
  instances: number;
  /** The runtime's `ISOLANE_HTTP_THREADS`; undefined keeps its default (which depends on the cores). */
  httpThreads?: number;
  /** The runtime's `ISOLANE_LOG_LEVEL` (its default, info, writes a line per request). */
  logLevel: "debug" | "info" | "warn" | "error";
  /** Lines for the report's head (where it ran, how noisy the machine was). */
  notes: string[];
  /** Repetitions of each cold-start and respawn measurement. */
  repeats: number;
  /** Run isolane and the baselines on GPU 0 (else everything runs on the CPU). */
  cuda: boolean;
  quick: boolean;
  /** Dynamic batching options of the batching-on variants. */
  batching: DynamicBatching;
  /** Folder of the report files; null writes none. */
  out: string | null;
  /** Progress lines. */
  log: (line: string) => void;
}

/** One measured point of a series (a load run), with its ratio to the baseline at the same concurrency. */
export interface Point extends LoadResult {
  /** goodput (2xx/s) / the baseline's goodput at the same concurrency (null: no baseline point). */
  ratio: number | null;
  /** p50 / the baseline's p50 at the same concurrency. */
  p50Ratio: number | null;
  /** Scenario C: goodput / the peak goodput of the same system. */
  goodputToPeak?: number | null;
}

/** A system measured over the concurrency sweep of one scenario. */
export interface Series {
  /** Stable key, e.g. `isolane:mlp8x1024:batching`. */
  key: string;
  /** What is measured, in words. */
  label: string;
  /** Which chart panel and table it belongs to. */
  panel: string;
  /** Key of the series it is compared with (none for a baseline). */
  baseline: string | null;
  /** False when it could not be measured; `note` says why. */
  available: boolean;
  note?: string;
  points: Point[];
}

/** A time measured several times (cold start, respawn), in milliseconds. */
export interface Timing {
  key: string;
  label: string;
  samplesMs: number[];
  medianMs: number | null;
  minMs: number | null;
  maxMs: number | null;
  note?: string;
}

/** A bare ONNX Runtime loop at one batch size. */
export interface CeilingPoint {
  model: string;
  device: string;
  batch: number;
  runs: number;
  seconds: number;
  rowsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** What one scenario measured. */
export interface ScenarioReport {
  id: ScenarioId;
  title: string;
  series: Series[];
  timings: Timing[];
  ceiling: CeilingPoint[];
  notes: string[];
}

/** The whole report, as written to `<date>-<host>.json`. */
export interface Report {
  meta: {
    date: string;
    host: string;
    cpu: string;
    cores: number;
    memoryGiB: number;
    deno: string;
    wrk: string;
    device: "cpu" | "cuda";
    options: Omit<SuiteOptions, "log" | "out" | "notes">;
    command: string;
    /** The 1-minute load average before and after the run (other work on the machine shows here). */
    loadAverage: { start: number; end: number | null };
    notes: string[];
  };
  scenarios: ScenarioReport[];
  targets: Target[];
}

const defaultLevels = [1, 8, 32, 64, 256, 512];
const quickLevels = [1, 32];

/** Parses the command line of `deno task bench`. */
export function parseSuiteArgs(args: string[]): SuiteOptions {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      scenarios: { type: "string" },
      cuda: { type: "boolean", default: false },
      duration: { type: "string" },
      levels: { type: "string" },
      "max-requests": { type: "string" },
      instances: { type: "string" },
      "http-threads": { type: "string" },
      repeats: { type: "string" },
      "max-batch-size": { type: "string", default: "64" },
      "max-queue-delay-ms": { type: "string", default: "0" },
      out: { type: "string", default: here("./results") },
      "no-out": { type: "boolean", default: false },
      "log-level": { type: "string", default: "info" },
      note: { type: "string", multiple: true, default: [] },
    },
  });
  const quick = values.quick;
  const scenarios = (values.scenarios ?? allScenarios.join(",")).split(",").map((s) => s.trim().toUpperCase());
  for (const s of scenarios) {
    if (!(allScenarios as readonly string[]).includes(s)) {
      throw new Error(`Unknown scenario '${s}': choose among ${allScenarios.join(", ")}`);
    }
  }
  const numbers = (text: string, what: string) =>
    text.split(",").map((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--${what} takes positive integers, not '${v}'`);
      return n;
    });
  const positive = (text: string | undefined, fallback: number, what: string, { zero = false } = {}) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!(zero ? n >= 0 : n > 0)) {
      throw new Error(`--${what} takes ${zero ? "a number of 0 or more" : "a positive number"}, not '${text}'`);
    }
    return n;
  };
  const nonNegative = (text: string) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--http-threads takes an integer of 0 or more, not '${text}'`);
    return n;
  };
  return {
    scenarios: scenarios as ScenarioId[],
    levels: values.levels ? numbers(values.levels, "levels") : quick ? quickLevels : defaultLevels,
    durationS: positive(values.duration, quick ? 1 : 5, "duration"),
    // One bound for both: a short run that stops at a small bound (wrk stops on SIGINT, in 100 ms ticks) read fast
    // servers low (a 20,000-answer bound ended in 0.4–0.5 s), so quick runs are bounded by their 1 s alone.
    maxRequests: positive(values["max-requests"], 1_000_000, "max-requests"),
    warmupS: quick ? 1 : 2,
    instances: positive(values.instances, 2, "instances"),
    ...(values["http-threads"] !== undefined ? { httpThreads: nonNegative(values["http-threads"]) } : {}),
    repeats: positive(values.repeats, quick ? 2 : 5, "repeats"),
    cuda: values.cuda,
    quick,
    batching: {
      maxBatchSize: positive(values["max-batch-size"], 64, "max-batch-size"),
      maxQueueDelayMs: positive(values["max-queue-delay-ms"], 0, "max-queue-delay-ms", { zero: true }),
    },
    out: values["no-out"] ? null : values.out,
    logLevel: z.enum(["debug", "info", "warn", "error"]).parse(values["log-level"]),
    notes: values.note,
    log: (line) => console.error(line),
  };
}

// ---------------------------------------------------------------------------------------------------------------

interface Context {
  options: SuiteOptions;
  wrk: WrkBinary;
  scratch: string;
  /** Body files by name. */
  bodies: Map<string, string>;
  /** Servers started by the scenario in progress, to explain its failure. */
  children: { name: string; child: Child }[];
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function timing(key: string, label: string, samplesMs: number[], note?: string): Timing {
  return {
    key,
    label,
    samplesMs,
    medianMs: median(samplesMs),
    minMs: samplesMs.length ? Math.min(...samplesMs) : null,
    maxMs: samplesMs.length ? Math.max(...samplesMs) : null,
    ...(note ? { note } : {}),
  };
}

async function bodyFile(ctx: Context, name: string, bytes: Uint8Array | string): Promise<string> {
  const existing = ctx.bodies.get(name);
  if (existing) return existing;
  const path = join(ctx.scratch, `${name}.body`);
  if (typeof bytes === "string") await Deno.writeTextFile(path, bytes);
  else await Deno.writeFile(path, bytes);
  ctx.bodies.set(name, path);
  return path;
}

async function startRuntime(
  ctx: Context,
  functions: Parameters<typeof writeBenchFunctions>[1],
  env: Record<string, string> = {},
): Promise<Child> {
  const dir = await Deno.makeTempDir({ dir: ctx.scratch, prefix: "functions-" });
  await writeBenchFunctions(dir, functions);
  return track(
    ctx,
    "the runtime",
    await startChild({
      env: {
        ISOLANE_FUNCTIONS: dir,
        ISOLANE_DATA: await Deno.makeTempDir({ dir: ctx.scratch, prefix: "data-" }),
        ISOLANE_LOG_LEVEL: ctx.options.logLevel,
        ...(ctx.options.httpThreads !== undefined ? { ISOLANE_HTTP_THREADS: String(ctx.options.httpThreads) } : {}),
        ...(ctx.options.cuda ? {} : { CUDA_VISIBLE_DEVICES: "" }),
        ...env,
      },
    }),
  );
}

function track(ctx: Context, name: string, child: Child): Child {
  ctx.children.push({ name, child });
  return child;
}

/** What a scenario's failure says: the error, and any server of it that exited, with its last output. */
function failureNote(ctx: Context, error: unknown): string {
  const parts = [`failed: ${error instanceof Error ? error.message : String(error)}`];
  for (const { name, child } of ctx.children) {
    const status = child.exitStatus();
    // A server stopped by the scenario's own clean-up exits on SIGTERM with 0; anything else is a crash.
    if (status && !(status.success || status.signal === "SIGTERM")) {
      parts.push(
        `${name} exited with code ${status.code}${status.signal ? ` (${status.signal})` : ""}; its last output:\n` +
          "```\n" + child.tail().trim().split("\n").slice(-12).join("\n") + "\n```",
      );
    }
  }
  return parts.join("\n");
}

/** Waits until a function is ready or failed; returns its API view. */
async function settled(server: Child, name: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let info: Record<string, unknown> = {};
  while (Date.now() < deadline) {
    const response = await fetch(`${server.url}/v1/functions/${name}`);
    info = await response.json();
    if (info.status === "ready" || info.status === "failed" || response.status === 404) return info;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`Function '${name}' did not settle within ${timeoutMs} ms: ${JSON.stringify(info)}`);
}

/**
 * Whether the runtime serves `name` with dynamic batching: it loaded, and its API view mentions the option (a
 * runtime that does not know `dynamicBatching` ignores it and would serve the function unbatched).
 */
async function batchingSupport(server: Child, name: string): Promise<{ ok: boolean; note?: string }> {
  const info = await settled(server, name);
  if (info.status !== "ready") {
    return {
      ok: false,
      note: `n/a: the function with dynamicBatching did not load (${JSON.stringify(info.error ?? info.status)})`,
    };
  }
  const text = JSON.stringify(info);
  if (!/dynamicBatching|maxBatchSize/.test(text)) {
    return { ok: false, note: "n/a: this runtime ignores dynamicBatching (GET /v1/functions/:name does not show it)" };
  }
  return { ok: true };
}

/** Runs the sweep of one system; points carry ratios once the baseline is known. */
async function sweep(
  ctx: Context,
  spec: { key: string; label: string; panel: string; baseline: string | null; url: string; body: string },
  levels: number[],
  extra: { contentType?: string; headers?: Record<string, string> } = {},
  warmUp = true,
): Promise<Series> {
  const { options, wrk } = ctx;
  if (warmUp && levels.length) {
    options.log(`  ${spec.label}: warm-up`);
    await runLoad(wrk, {
      url: spec.url,
      bodyFile: spec.body,
      connections: Math.min(8, Math.max(...levels)),
      durationS: options.warmupS,
      maxRequests: 2000,
      ...extra,
    });
  }
  const points: Point[] = [];
  for (const c of levels) {
    const result = await runLoad(wrk, {
      url: spec.url,
      bodyFile: spec.body,
      connections: c,
      durationS: options.durationS,
      maxRequests: options.maxRequests,
      ...extra,
    });
    options.log(
      `  ${spec.label} c=${c}: ${result.rps.toFixed(0)} rps, p50 ${(result.p50Us / 1000).toFixed(2)} ms, p99 ${
        (result.p99Us / 1000).toFixed(2)
      } ms, ${result.errors} errors (${result.status429} × 429)`,
    );
    points.push({ ...result, ratio: null, p50Ratio: null });
  }
  return { key: spec.key, label: spec.label, panel: spec.panel, baseline: spec.baseline, available: true, points };
}

function unavailable(
  spec: { key: string; label: string; panel: string; baseline: string | null },
  note: string,
): Series {
  return { ...spec, available: false, note, points: [] };
}

/** Fills each point's ratios against its baseline's point at the same concurrency. */
function linkRatios(series: Series[]): void {
  for (const s of series) {
    const base = series.find((b) => b.key === s.baseline);
    if (!base) continue;
    for (const p of s.points) {
      const b = base.points.find((q) => q.connections === p.connections);
      p.ratio = b && b.goodput > 0 ? p.goodput / b.goodput : null;
      p.p50Ratio = b && b.p50Us > 0 ? p.p50Us / b.p50Us : null;
    }
  }
}

// --- Scenario A -------------------------------------------------------------------------------------------------

async function scenarioA(ctx: Context): Promise<ScenarioReport> {
  const { options } = ctx;
  const levels = [...new Set([1, ...options.levels])].sort((a, b) => a - b);
  const body = await bodyFile(ctx, "echo", JSON.stringify({ message: "hi" }));
  const series: Series[] = [];
  options.log("A. echo: plain Hono vs. isolane");
  {
    await using hono = track(ctx, "the Hono echo", await startChild({ entry: echoBaseline }));
    series.push(
      await sweep(ctx, {
        key: "hono:echo",
        label: "plain Hono JSON echo",
        panel: "A. echo",
        baseline: null,
        url: `${hono.url}/v1/functions/echo`,
        body,
      }, levels),
    );
  }
  if (!options.cuda) {
    await using floor = track(
      ctx,
      "the floor of the design",
      await startChild({ entry: floorBaseline, env: { BENCH_CHILDREN: String(options.instances) } }),
    );
    series.push(
      await sweep(ctx, {
        key: "floor:echo",
        label: `floor: Deno.serve + socket hop (${options.instances} children)`,
        panel: "A. echo",
        baseline: "hono:echo",
        url: `${floor.url}/v1/functions/echo`,
        body,
      }, levels),
    );
  }
  {
    await using runtime = await startRuntime(ctx, {
      instances: options.instances,
      echo: true,
      batching: options.batching,
    });
    await settled(runtime, "echo");
    series.push(
      await sweep(ctx, {
        key: "isolane:echo",
        label: `isolane echo (${options.instances} isolates)`,
        panel: "A. echo",
        baseline: "hono:echo",
        url: `${runtime.url}/v1/functions/echo`,
        body,
      }, levels),
    );
  }
  linkRatios(series);
  return {
    id: "A",
    title: "A. Echo through isolates vs. plain Hono",
    series,
    timings: [],
    ceiling: [],
    notes: [
      'Body {"message":"hi"}. The c=1 run is the sequential latency (one request at a time).',
      ...(options.cuda ? [] : [floorNote]),
    ],
  };
}

// --- Scenario B -------------------------------------------------------------------------------------------------

async function ceiling(ctx: Context, model: string, name: string): Promise<CeilingPoint[]> {
  const { options } = ctx;
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      ortLoop,
      "--model",
      model,
      "--batches",
      "1,64,256",
      "--seconds",
      String(options.quick ? 0.5 : 2),
      ...(options.cuda ? ["--cuda"] : []),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(`ort_loop failed: ${new TextDecoder().decode(output.stderr)}`);
  return new TextDecoder().decode(output.stdout).trim().split("\n").map((line) => ({
    model: name,
    device: options.cuda ? "cuda" : "cpu",
    ...JSON.parse(line),
  }));
}

const mlpRow = [0.5, -1, 2, 0.25];

const floorNote = "floor: the floor of the design (`bench/baselines/hop_floor.ts`): `Deno.serve` hands each body, " +
  "unparsed, over a Unix socket to child processes that parse it and run the model once for whatever is queued " +
  "(ORT threads as isolane's), with none of isolane's limits, deadlines, logs, metrics or checks: what any runtime " +
  "that runs functions in other processes pays on this machine.";

async function scenarioB(ctx: Context, wideModel: string): Promise<ScenarioReport> {
  const { options } = ctx;
  const device = options.cuda ? "CUDA" : "CPU";
  options.log(`B. mlp and the 8×1024 MLP: plain Hono + ONNX Runtime (${device}) vs. isolane, batching off and on`);
  const bodies = {
    mlp: await bodyFile(ctx, "mlp", JSON.stringify({ x: [mlpRow] })),
    mlp8x1024: await bodyFile(ctx, "mlp8x1024", JSON.stringify({ x: [wideRow()] })),
  };
  const models = [
    { name: "mlp", panel: "B. mlp (4→16→3)" },
    { name: "mlp8x1024", panel: "B. 8×1024 MLP" },
  ] as const;
  const series: Series[] = [];
  {
    await using hono = track(
      ctx,
      "the Hono + ORT server",
      await startChild({
        entry: ortBaseline,
        env: {
          BENCH_MODELS: JSON.stringify({ mlp: mlpModel, mlp8x1024: wideModel }),
          BENCH_DEVICE: options.cuda ? "cuda" : "cpu",
        },
      }),
    );
    for (const m of models) {
      series.push(
        await sweep(ctx, {
          key: `hono-ort:${m.name}`,
          label: `plain Hono + ORT inline (${device}), ${m.name}`,
          panel: m.panel,
          baseline: null,
          url: `${hono.url}/v1/functions/${m.name}`,
          body: bodies[m.name],
        }, options.levels),
      );
    }
  }
  if (!options.cuda) {
    await using floor = track(
      ctx,
      "the floor of the design",
      await startChild({
        entry: floorBaseline,
        env: {
          BENCH_MODELS: JSON.stringify({ mlp_batched: mlpModel, mlp8x1024_batched: wideModel }),
          BENCH_CHILDREN: String(options.instances),
        },
      }),
    );
    for (const m of models) {
      series.push(
        await sweep(ctx, {
          key: `floor:${m.name}:batching`,
          label: `floor: Deno.serve + socket hop (${options.instances} children), ${m.name} batched`,
          panel: m.panel,
          baseline: `hono-ort:${m.name}`,
          url: `${floor.url}/v1/functions/${m.name}_batched`,
          body: bodies[m.name],
        }, options.levels),
      );
    }
  }
  {
    await using runtime = await startRuntime(ctx, {
      instances: options.instances,
      mlp: true,
      wideMlp: wideModel,
      batching: options.batching,
    });
    for (const m of models) {
      await settled(runtime, m.name);
      series.push(
        await sweep(ctx, {
          key: `isolane:${m.name}`,
          label: `isolane ${m.name}, batching off (${options.instances} isolates)`,
          panel: m.panel,
          baseline: `hono-ort:${m.name}`,
          url: `${runtime.url}/v1/functions/${m.name}`,
          body: bodies[m.name],
        }, options.levels),
      );
      const spec = {
        key: `isolane:${m.name}:batching`,
        label:
          `isolane ${m.name}, batching on (max ${options.batching.maxBatchSize}, ${options.batching.maxQueueDelayMs} ms${
            options.cuda ? ", CUDA graphs" : ""
          })`,
        panel: m.panel,
        baseline: `hono-ort:${m.name}`,
      };
      const support = await batchingSupport(runtime, `${m.name}_batched`);
      if (!support.ok) {
        options.log(`  ${spec.label}: ${support.note}`);
        series.push(unavailable(spec, support.note!));
      } else {
        series.push(
          await sweep(
            ctx,
            { ...spec, url: `${runtime.url}/v1/functions/${m.name}_batched`, body: bodies[m.name] },
            options.levels,
          ),
        );
      }
    }
  }
  linkRatios(series);
  options.log("  bare ONNX Runtime loop (no HTTP)");
  const points = [...await ceiling(ctx, mlpModel, "mlp"), ...await ceiling(ctx, wideModel, "mlp8x1024")];
  return {
    id: "B",
    title: `B. Models through isolane vs. plain Hono + ONNX Runtime inline (${device})`,
    series,
    timings: [],
    ceiling: points,
    notes: [
      'Batch-1 JSON requests: mlp {"x": [[4 numbers]]}, 8×1024 MLP {"x": [[1024 numbers]]} (about 8 KB).',
      `The plain Hono + ORT server uses ${
        options.cuda ? "GPU 0" : `all ${availableParallelism()} cores as intra-op threads`
      }; ` +
      (options.cuda
        ? "isolane gives each CUDA isolate one intra-op thread (its default on GPU lanes, ISOLANE_ORT_THREADS)."
        : "isolane gives each isolate every core as intra-op threads that sleep when idle (its default on CPU lanes), " +
          "and sends a request to the idle isolate that finished last (docs/cpu-mlp.md)."),
      ...(options.cuda ? [] : [floorNote]),
    ],
  };
}

// --- Scenario C -------------------------------------------------------------------------------------------------

/** The lowest concurrency whose rate is within 10 % of the peak of the sweep. */
function saturation(points: Point[]): { c: number; peak: number } | null {
  if (points.length === 0) return null;
  const peak = Math.max(...points.map((p) => p.goodput));
  const c = points.filter((p) => p.goodput >= 0.9 * peak).map((p) => p.connections).sort((a, b) => a - b)[0];
  return { c, peak };
}

async function scenarioC(ctx: Context): Promise<ScenarioReport> {
  const { options } = ctx;
  options.log("C. overload: mlp at 4× the concurrency that saturates it");
  const body = await bodyFile(ctx, "mlp", JSON.stringify({ x: [mlpRow] }));
  const series: Series[] = [];
  const notes: string[] = [];
  await using runtime = await startRuntime(ctx, {
    instances: options.instances,
    mlp: true,
    batching: options.batching,
  });
  await settled(runtime, "mlp");
  for (const variant of [{ name: "mlp", key: "isolane:mlp" }, { name: "mlp_batched", key: "isolane:mlp:batching" }]) {
    const label = `isolane ${variant.name}${variant.name === "mlp" ? ", batching off" : ", batching on"}`;
    const spec = { key: `overload:${variant.name}`, label, panel: "C. overload (mlp)", baseline: null };
    if (variant.name === "mlp_batched") {
      const support = await batchingSupport(runtime, variant.name);
      if (!support.ok) {
        series.push(unavailable(spec, support.note!));
        continue;
      }
    }
    const url = `${runtime.url}/v1/functions/${variant.name}`;
    // Its own sweep up to c=64 (in this runtime, right before the overload runs: on a shared machine B's figures
    // are too far away in time to compare with), then the overload levels the sweep did not cover.
    const sweepLevels = [...new Set([...options.levels.filter((c) => c <= 64), 32])].sort((a, b) => a - b);
    const measured = await sweep(ctx, { ...spec, url, body }, sweepLevels);
    const sat = saturation(measured.points);
    if (!sat) continue;
    const overload = 4 * sat.c;
    const more = [...new Set([overload, 512])].filter((c) => !sweepLevels.includes(c)).sort((a, b) => a - b);
    measured.points.push(...(await sweep(ctx, { ...spec, url, body }, more, {}, false)).points);
    measured.points.sort((a, b) => a.connections - b.connections);
    const peak = Math.max(...measured.points.map((p) => p.goodput));
    notes.push(
      `${label}: saturates at c=${sat.c} (the lowest c within 10 % of the sweep's peak); overload runs at ` +
        `c=${overload} (4×) and c=512; peak ${peak.toFixed(0)} 2xx/s.`,
    );
    for (const p of measured.points) p.goodputToPeak = peak > 0 ? p.goodput / peak : null;
    series.push(measured);
  }
  return {
    id: "C",
    title: "C. Overload: goodput at and past saturation",
    series,
    timings: [],
    ceiling: [],
    notes: [
      ...notes,
      "Goodput is 2xx answers per second; 429s count as errors. The ratio is goodput over the sweep's peak goodput.",
    ],
  };
}

// --- Scenario D -------------------------------------------------------------------------------------------------

async function post(url: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function scenarioD(ctx: Context): Promise<ScenarioReport> {
  const { options } = ctx;
  options.log("D. cold start (deploy upload → first 200) and respawn after a timeout, Worker and process hosts");
  const timings: Timing[] = [];
  const notes: string[] = [];
  for (const isolation of ["worker", "process"] as const) {
    const measured = await coldStartAndRespawn(ctx, isolation);
    // The Worker host's keys are the ones the targets read; the process host's carry a suffix.
    const suffix = isolation === "worker" ? "" : ":process";
    timings.push(
      timing(
        `cold-start:mlp${suffix}`,
        `${isolation} host: PUT /v1/functions/:name (tar.gz) → first 200`,
        measured.cold,
      ),
      timing(`deploy-ready:mlp${suffix}`, `${isolation} host: PUT → its 201 (isolates ready)`, measured.ready),
      timing(
        `respawn${suffix}`,
        `${isolation} host: the 504 of a call past timeoutMs (${hangTimeoutMs} ms) → the next 200`,
        measured.respawn,
      ),
    );
    notes.push(...measured.notes.map((n) => `${isolation} host: ${n}`));
  }
  return {
    id: "D",
    title: "D. Cold start and respawn (Worker and process hosts)",
    series: [],
    timings,
    ceiling: [],
    notes: ["One isolate per function, its isolation forced with ISOLANE_ISOLATION.", ...notes],
  };
}

const hangTimeoutMs = 300;

async function coldStartAndRespawn(
  ctx: Context,
  isolation: "worker" | "process",
): Promise<{ cold: number[]; ready: number[]; respawn: number[]; notes: string[] }> {
  const { options } = ctx;
  const token = crypto.randomUUID();
  await using runtime = await startRuntime(ctx, {
    instances: 1,
    hang: { timeoutMs: hangTimeoutMs },
    batching: options.batching,
  }, { ISOLANE_ADMIN_TOKEN: token, ISOLANE_ISOLATION: isolation });
  await settled(runtime, "hang");
  const bundle = await packFolder(mlpFolder);
  const cold: number[] = [];
  const ready: number[] = [];
  const notes: string[] = [];
  try {
    for (let i = 0; i < options.repeats; i++) {
      const name = `cold${i}`;
      const start = performance.now();
      const put = await fetch(`${runtime.url}/v1/functions/${name}`, {
        method: "PUT",
        headers: { "content-type": "application/gzip", authorization: `Bearer ${token}` },
        body: bundle,
      });
      const answer = await put.text();
      if (put.status !== 201) throw new Error(`Deploy of ${name} answered ${put.status}: ${answer}`);
      ready.push(performance.now() - start);
      let status = 0;
      for (let tries = 0; status !== 200 && tries < 1000; tries++) {
        const response = await post(`${runtime.url}/v1/functions/${name}`, { x: [mlpRow] });
        await response.arrayBuffer();
        status = response.status;
      }
      if (status !== 200) throw new Error(`Deployed ${name} never answered 200`);
      cold.push(performance.now() - start);
      options.log(
        `  cold start ${name}: ${cold.at(-1)!.toFixed(1)} ms (deploy answered after ${ready.at(-1)!.toFixed(1)} ms)`,
      );
      await (await fetch(`${runtime.url}/v1/functions/${name}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      })).arrayBuffer();
    }
  } catch (error) {
    // Keep what was measured; say what broke.
    notes.push(`Cold start: ${failureNote(ctx, error)}`);
  }
  const respawn: number[] = [];
  try {
    for (let i = 0; i < options.repeats; i++) {
      const hung = await post(`${runtime.url}/v1/functions/hang`, { hang: true });
      await hung.arrayBuffer();
      if (hung.status !== 504) throw new Error(`The hanging call answered ${hung.status}, not 504`);
      const start = performance.now();
      // The next call waits for the respawned isolate; on a loaded machine that can take longer than the function's
      // timeoutMs, and the call is answered 504 again: call again until the 200, which is what the row measures.
      let status = 504;
      for (let tries = 0; status === 504 && tries < 20; tries++) {
        const next = await post(`${runtime.url}/v1/functions/hang`, { hang: false });
        await next.arrayBuffer();
        status = next.status;
      }
      if (status !== 200) throw new Error(`The call after the timeout answered ${status}, not 200`);
      respawn.push(performance.now() - start);
      options.log(`  respawn ${i + 1}: ${respawn.at(-1)!.toFixed(1)} ms`);
    }
  } catch (error) {
    notes.push(`Respawn: ${failureNote(ctx, error)}`);
  }
  for (const note of notes) options.log(`  ${note}`);
  return { cold, ready, respawn, notes };
}

// --- Scenario E -------------------------------------------------------------------------------------------------

async function scenarioE(ctx: Context, wideModel: string): Promise<ScenarioReport> {
  const { options } = ctx;
  options.log("E. KServe v2: binary tensor extension vs. JSON (8×1024 MLP)");
  const row = wideRow();
  const jsonBody = JSON.stringify({ inputs: [{ name: "x", shape: [1, 1024], datatype: "FP32", data: row }] });
  const { body: binary, headerLength } = v2BinaryBody(row);
  // Issue 17's target is at c=64, batch-1 requests, so the sweep is the suite's own, through the batched function.
  const levels = options.quick ? [1] : [...new Set([1, ...options.levels])].sort((a, b) => a - b);
  const series: Series[] = [];
  await using runtime = await startRuntime(ctx, {
    instances: options.instances,
    wideMlp: wideModel,
    batching: options.batching,
  });
  const support = await batchingSupport(runtime, "mlp8x1024_batched");
  const name = support.ok ? "mlp8x1024_batched" : "mlp8x1024";
  if (!support.ok) options.log(`  batching unavailable (${support.note}): E measures mlp8x1024 unbatched`);
  await settled(runtime, name);
  const url = `${runtime.url}/v2/models/${name}/infer`;
  const variants = [
    {
      key: "v2:json",
      label: "v2 JSON",
      body: await bodyFile(ctx, "v2-json", jsonBody),
      contentType: "application/json",
      headers: {} as Record<string, string>,
      baseline: null,
    },
    {
      key: "v2:binary",
      label: "v2 binary tensor extension",
      body: await bodyFile(ctx, "v2-binary", binary),
      contentType: "application/octet-stream",
      headers: { "Inference-Header-Content-Length": String(headerLength) },
      baseline: "v2:json",
    },
  ];
  for (const v of variants) {
    const spec = { key: v.key, label: v.label, panel: "E. KServe v2 (8×1024 MLP)", baseline: v.baseline };
    const probe = await fetch(url, {
      method: "POST",
      headers: { "content-type": v.contentType, ...v.headers },
      body: await Deno.readFile(v.body),
    });
    const text = await probe.text();
    if (!probe.ok) {
      const note = `n/a: the runtime answered ${probe.status} (${text.slice(0, 160)})`;
      options.log(`  ${v.label}: ${note}`);
      series.push(unavailable(spec, note));
      continue;
    }
    series.push(
      await sweep(ctx, { ...spec, url, body: v.body }, levels, { contentType: v.contentType, headers: v.headers }),
    );
  }
  {
    // What Deno's HTTP stack alone does with a body of that size, on as many threads as the runtime serves HTTP with.
    const threads = Math.max(1, options.httpThreads ?? defaultHttpThreads());
    await using hono = track(
      ctx,
      "the Hono binary echo",
      await startChild({ entry: binaryEchoBaseline, env: { BENCH_THREADS: String(threads) } }),
    );
    const spec = {
      key: "hono:binary-echo",
      label: `plain Hono echo of the binary body (${threads} thread${threads === 1 ? "" : "s"})`,
      panel: "E. KServe v2 (8×1024 MLP)",
      baseline: null,
      url: `${hono.url}/echo`,
      body: variants[1].body,
    };
    series.push(await sweep(ctx, spec, levels, { contentType: "application/octet-stream" }));
  }
  linkRatios(series);
  return {
    id: "E",
    title: "E. KServe v2 binary tensor data vs. JSON",
    series,
    timings: [],
    ceiling: [],
    notes: [
      `POST /v2/models/${name}/infer, one row of 1,024 FP32 values; binary: 4,096 bytes after the JSON header.` +
      (support.ok
        ? ` Dynamic batching on (max ${options.batching.maxBatchSize}, ${options.batching.maxQueueDelayMs} ms)` +
          (options.cuda ? ", CUDA graphs on (`cudaGraph: true`, batches padded to powers of two)." : ".")
        : ""),
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------

async function version(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
    return (new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr)).split("\n")[0].trim();
  } catch {
    return "unknown";
  }
}

/** The report's file name stem: `<YYYY-MM-DD>-<host>`. */
export function reportStem(report: Report): string {
  return `${report.meta.date.slice(0, 10)}-${report.meta.host.replace(/[^A-Za-z0-9_.-]/g, "_")}`;
}

/**
 * Runs the chosen scenarios and returns the report; writes `<out>/<date>-<host>.{json,md,svg}` unless `out` is null.
 * @throws Error when `wrk` is not installed (see `scripts/stage_wrk.sh`) or a server fails to start.
 */
export async function runSuite(options: SuiteOptions): Promise<{ report: Report; markdown: string; files: string[] }> {
  const wrk = await findWrk();
  if (!wrk) throw new Error("wrk not found: apt-get install wrk, or stage it with scripts/stage_wrk.sh");
  const scratch = await Deno.makeTempDir({ prefix: "isolane-bench-" });
  const report: Report = {
    meta: {
      date: new Date().toISOString(),
      host: hostname(),
      cpu: cpus()[0]?.model ?? "unknown",
      cores: availableParallelism(),
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      deno: Deno.version.deno,
      wrk: (await version(wrk.path, ["-v"], wrk.env)).replace(/ Copyright.*$/, ""),
      device: options.cuda ? "cuda" : "cpu",
      options: (({ log: _log, out: _out, notes: _notes, ...rest }) => rest)(options),
      command: ["deno task bench", ...Deno.args.map((a) => (/^[\w.,=\/-]+$/.test(a) ? a : `'${a}'`))].join(" "),
      loadAverage: { start: loadavg()[0], end: null },
      notes: options.notes,
    },
    scenarios: [],
    targets: [],
  };
  const ctx: Context = { options, wrk, scratch, bodies: new Map(), children: [] };
  try {
    const needsWide = options.scenarios.includes("B") || options.scenarios.includes("E");
    const wideModel = needsWide ? await ensureWideMlp() : "";
    for (const id of options.scenarios) {
      ctx.children = [];
      try {
        const scenario = id === "A"
          ? await scenarioA(ctx)
          : id === "B"
          ? await scenarioB(ctx, wideModel)
          : id === "C"
          ? await scenarioC(ctx)
          : id === "D"
          ? await scenarioD(ctx)
          : await scenarioE(ctx, wideModel);
        report.scenarios.push(scenario);
      } catch (error) {
        // One scenario's failure (a crashed server, say) is reported, and the others still run.
        const note = failureNote(ctx, error);
        options.log(`${id}: ${note}`);
        report.scenarios.push({ id, title: `${id}. (failed)`, series: [], timings: [], ceiling: [], notes: [note] });
      }
    }
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  report.meta.loadAverage.end = loadavg()[0];
  report.targets = evaluateTargets(report);
  let markdown = renderMarkdown(report);
  const files: string[] = [];
  if (options.out) {
    await Deno.mkdir(options.out, { recursive: true });
    const stem = join(options.out, reportStem(report));
    await Deno.writeTextFile(`${stem}.json`, JSON.stringify(report, null, 2) + "\n");
    await Deno.writeTextFile(`${stem}.md`, markdown);
    files.push(`${stem}.json`, `${stem}.md`);
    // In the repository's own format (aligned tables), so that committed results pass `deno fmt --check`.
    await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", ...files], stdout: "null", stderr: "null" })
      .output();
    markdown = await Deno.readTextFile(`${stem}.md`);
    const svg = await renderChart(report);
    if (svg) {
      await Deno.writeTextFile(`${stem}.svg`, svg);
      files.push(`${stem}.svg`);
    }
  }
  return { report, markdown, files };
}

if (import.meta.main) {
  if (Deno.args.includes("--help")) {
    console.log(
      "deno task bench [--quick] [--scenarios A,B,C,D,E] [--cuda] [--duration s] [--levels 1,8,...] " +
        "[--max-requests n] [--instances n] [--repeats n] [--max-batch-size n] [--max-queue-delay-ms ms] " +
        "[--log-level info] [--note text] [--out dir | --no-out]",
    );
    Deno.exit(0);
  }
  try {
    const { markdown, files } = await runSuite(parseSuiteArgs(Deno.args));
    console.log(markdown);
    if (files.length) console.error(`wrote ${files.join(", ")}`);
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
