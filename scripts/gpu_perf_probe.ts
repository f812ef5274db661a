/**
 * Where a run of the 8×1024 fp32 ReLU MLP spends its time on a CUDA lane,
 * what might close the gap to issue 15's targets (batch 64 ≤ 120 µs, batch
 * 256 ≤ 200 µs, copies included), whether weights can be shared between
 * sessions, and whether non-blocking runs keep the lane's guarantees.
 *
 *   deno run -A scripts/gpu_perf_probe.ts --json out.json [--seconds 0.3] [--budget 330] [--ncu]
 *   deno run -A scripts/gpu_perf_probe.ts --dry-run --json /tmp/probe.json    # CPU: every section, small model
 *
 * Each section runs in a child process of its own with a time limit (a
 * crash or a hang of ORT or the driver costs one section, not the run), and
 * prints one JSON line per result; the parent echoes them, keeps the tail of
 * each child's stderr (ORT's warnings), and rewrites `--json` after every
 * section, with a summary at the end. Without a GPU (or with `--dry-run`)
 * the sections run on ORT's CPU provider with host memory standing in for
 * pinned and device memory, and skip what needs CUDA, saying so.
 *
 * Sections: `breakdown` (per-run stages: legacy = `staging: "ort"`, fast =
 * `staging: "lane"`, and `NativeSession` end to end with each), `staged` (a
 * batch as the isolate serves it, copies included: a hand-written handler
 * against `runModel` staging in the pinned arena), `gated` (the
 * device's own time, the stream held until the run is queued), `floor` (FFI
 * calls, copies, an Identity model), `sharing:<mode>` (weights for 1, 4, 8
 * sessions), `nonblocking`, with `--ncu` `kernels:<case>` under Nsight
 * Compute (kernel names and times), and `variants` (options and model forms),
 * in that order: when `--budget` runs out, the last are skipped.
 * `--sections breakdown,floor` runs only those (a name matches every mode);
 * `variants:<prefix>+<prefix>` only the variants whose names start so, and
 * `kernels:<op>-<precision>-<batch>` (with `--ncu`) one more ncu case.
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { describeError, emit, openContext } from "./_gpu_perf_harness.ts";
import { sections, sharingModes } from "./_gpu_perf_sections.ts";

const self = fileURLToPath(import.meta.url);

/** `setsid` (util-linux), which starts each child as the leader of a process group of its own; `null` if missing. */
const setsid = ["/usr/bin/setsid", "/bin/setsid"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}) ?? null;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "string" },
    seconds: { type: "string", default: "0.3" },
    budget: { type: "string", default: "330" },
    sections: { type: "string" },
    ncu: { type: "boolean", default: false },
    "ncu-bin": { type: "string", default: Deno.env.get("NCU") ?? "ncu" },
    "dry-run": { type: "boolean", default: false },
    section: { type: "string" },
    arg: { type: "string" },
    deadline: { type: "string" },
  },
});

/** One planned child run. */
interface Planned {
  name: string;
  arg?: string;
  timeoutS: number;
  ncu?: boolean;
}

/** What a child run gave. */
interface SectionReport {
  section: string;
  arg: string | null;
  exitCode: number | null;
  timedOut: boolean;
  seconds: number;
  results: Record<string, unknown>[];
  skipped?: string;
  stderrTail?: string;
  otherOutputTail?: string;
  kernels?: KernelRow[];
}

/** One kernel name as ncu saw it, over every run of the phase. */
export interface KernelRow {
  kernel: string;
  count: number;
  meanUs: number;
  totalUs: number;
  streams: number[];
}

// Batch 1 and the Gemm form beside batch 64 and 256: which GEMMs cuBLAS runs without tensor cores, and when.
const ncuCases = ["matmul-tf32-1", "matmul-tf32-64", "matmul-fp32-64", "matmul-tf32-256", "gemm-tf32-64"];

function plan(): Planned[] {
  const all: Planned[] = [
    { name: "breakdown", timeoutS: 120 },
    { name: "staged", timeoutS: 90 },
    { name: "gated", timeoutS: 75 },
    { name: "floor", timeoutS: 60 },
    ...sharingModes.map((mode) => ({ name: "sharing", arg: mode, timeoutS: 60 })),
    { name: "nonblocking", timeoutS: 120 },
    ...(values.ncu ? ncuCases.map((c) => ({ name: "kernels", arg: c, timeoutS: 75, ncu: true })) : []),
    { name: "variants", timeoutS: 170 },
  ];
  if (!values.sections) return all;
  const wanted = values.sections.split(",").map((s) => s.trim());
  const chosen = all.filter((p) => wanted.includes(p.name) || wanted.includes(`${p.name}:${p.arg}`));
  // `variants:<prefix>+<prefix>` runs only the variants whose names start so; `kernels:<op>-<precision>-<batch>`
  // one ncu case of any op (`--ncu`).
  for (const w of wanted) {
    const [name, arg] = w.split(/:(.*)/s);
    if (arg && name === "variants") chosen.push({ name, arg, timeoutS: 170 });
    if (arg && name === "kernels" && values.ncu && !ncuCases.includes(arg)) {
      chosen.push({ name, arg, timeoutS: 75, ncu: true });
    }
  }
  return chosen;
}

function tail(text: string, n = 3000): string {
  return text.length > n ? text.slice(-n) : text;
}

/** Kernels from ncu's report: a header line per kernel, then its `gpu__time_duration.sum`. */
export function parseNcu(text: string): KernelRow[] {
  const rows = new Map<string, { count: number; totalUs: number; streams: Set<number> }>();
  let current: { name: string; stream: number } | null = null;
  const unit: Record<string, number> = { nsecond: 1e-3, usecond: 1, msecond: 1e3, second: 1e6 };
  for (const line of text.split("\n")) {
    const header = /^ {2}(\S.*?) \(.*?\)x\(.*?\), Context \d+, Stream (\d+), Device \d+/.exec(line);
    if (header) {
      current = { name: header[1].slice(0, 160), stream: Number(header[2]) };
      continue;
    }
    const duration = /gpu__time_duration\.sum\s+(\w+)\s+([\d.,]+)/.exec(line);
    if (duration && current) {
      const us = Number(duration[2].replace(/,/g, "")) * (unit[duration[1]] ?? NaN);
      const row = rows.get(current.name) ?? { count: 0, totalUs: 0, streams: new Set<number>() };
      row.count++;
      row.totalUs += us;
      row.streams.add(current.stream);
      rows.set(current.name, row);
      current = null;
    }
  }
  return [...rows].map(([kernel, r]) => ({
    kernel,
    count: r.count,
    meanUs: Math.round((r.totalUs / r.count) * 100) / 100,
    totalUs: Math.round(r.totalUs * 10) / 10,
    streams: [...r.streams],
  })).sort((a, b) => b.totalUs - a.totalUs);
}

async function runChild(p: Planned, deadline: number): Promise<SectionReport> {
  const started = performance.now();
  const childArgs = [
    "run",
    "-A",
    self,
    "--section",
    p.name,
    ...(p.arg ? ["--arg", p.arg] : []),
    "--seconds",
    values.seconds,
    "--deadline",
    String(deadline - 4000),
    ...(values["dry-run"] ? ["--dry-run"] : []),
  ];
  // Each child leads a process group of its own (setsid), so a timeout ends ncu and the deno it started together.
  const argv = p.ncu
    ? [
      values["ncu-bin"],
      "--clock-control",
      "none",
      "--target-processes",
      "all",
      "--metrics",
      "gpu__time_duration.sum",
      "--launch-count",
      "600",
      Deno.execPath(),
      ...childArgs,
    ]
    : [Deno.execPath(), ...childArgs];
  const grouped = setsid !== null;
  const command = new Deno.Command(grouped ? setsid! : argv[0], {
    args: grouped ? argv : argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  });
  const report: SectionReport = {
    section: p.name,
    arg: p.arg ?? null,
    exitCode: null,
    timedOut: false,
    seconds: 0,
    results: [],
  };
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (error) {
    report.skipped = `could not start: ${describeError(error).error}`;
    return report;
  }
  const killAt = Math.max(1000, deadline - Date.now());
  const timer = setTimeout(() => {
    report.timedOut = true;
    try {
      if (grouped) Deno.kill(-child.pid, "SIGKILL");
      else child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, killAt);
  const other: string[] = [];
  let all = "";
  const readStdout = (async () => {
    const decoder = new TextDecoderStream();
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(decoder)) {
      all += chunk;
      buffered += chunk;
      let at: number;
      while ((at = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (line.startsWith("{")) {
          try {
            report.results.push(JSON.parse(line));
            console.log(line);
            continue;
          } catch {
            // Not ours: kept below.
          }
        }
        other.push(line);
      }
    }
  })();
  const readStderr = new Response(child.stderr).text();
  const status = await child.status;
  clearTimeout(timer);
  // A grandchild that outlives the child could hold the pipes open: wait for them a little, not for ever.
  const settle = <T>(p: Promise<T>, fallback: T) =>
    Promise.race([p.catch(() => fallback), new Promise<T>((r) => setTimeout(() => r(fallback), 3000))]);
  await settle(readStdout, undefined);
  const stderr = await settle(readStderr, "");
  report.exitCode = status.code;
  report.seconds = Math.round((performance.now() - started) / 100) / 10;
  if (stderr.trim()) report.stderrTail = tail(stderr);
  if (p.ncu) {
    report.kernels = parseNcu(all);
    report.otherOutputTail = tail(other.filter((l) => !/^\s{2,}|^\s*-+\s*$/.test(l)).join("\n"), 2000);
  } else if (other.length) {
    report.otherOutputTail = tail(other.join("\n"));
  }
  return report;
}

type Result = Record<string, unknown>;

function pick(reports: SectionReport[], section: string, kase: string): Result[] {
  return reports.filter((r) => r.section === section).flatMap((r) => r.results).filter((r) => r.case === kase);
}

function median(r: Result, key: string): number | null {
  const m = r.medianUs as Record<string, number> | undefined;
  return m?.[key] ?? null;
}

/** The headline numbers: end-to-end per run against the targets, where the time goes, sharing, nonblocking. */
function summarise(reports: SectionReport[]): Record<string, unknown> {
  const targets: Record<number, number> = { 64: 120, 256: 200 };
  const sessions = pick(reports, "breakdown", "session").map((r) => ({
    staging: r.staging,
    graph: r.graph,
    batch: r.batch,
    medianUs: median(r, "us"),
    target: targets[r.batch as number] ?? null,
    met: targets[r.batch as number] ? (median(r, "us") ?? Infinity) <= targets[r.batch as number] : null,
  }));
  const served = reports.filter((r) => r.section === "staged").flatMap((r) => r.results)
    .filter((r) => String(r.case).startsWith("staged.") && r.medianUs)
    .map((r) => {
      const us = median(r, "us") ?? median(r, "total");
      const target = targets[r.batch as number] ?? null;
      return {
        path: String(r.case).slice("staged.".length),
        graph: r.graph,
        batch: r.batch,
        requests: r.requests,
        medianUs: us,
        ...(median(r, "fill") !== null ? { fillUs: median(r, "fill"), consumeUs: median(r, "consume") } : {}),
        target,
        met: target ? (us ?? Infinity) <= target : null,
      };
    });
  const stages = [...pick(reports, "breakdown", "legacy"), ...pick(reports, "breakdown", "fast")].map((r) => ({
    pipeline: r.case,
    graph: r.graph,
    batch: r.batch,
    medianUs: r.medianUs,
    dominant: r.dominant,
  }));
  const device = pick(reports, "gated", "gated").map((r) => ({
    variant: r.variant,
    graph: r.graph,
    batch: r.batch,
    deviceRunUs: median(r, "device.run"),
    deviceTotalUs: median(r, "device.total"),
  }));
  const sharing = reports.filter((r) => r.section === "sharing").flatMap((r) => r.results)
    .filter((r) => r.case === "sharing" || r.case === "sharing.proof")
    .map((r) => ({ ...r, section: undefined }));
  const nonblocking = pick(reports, "nonblocking", "nonblocking.run").map((r) => ({
    staging: r.staging,
    graph: r.graph,
    blockingMedianUs: (r.blocking as Result)?.medianUs,
    nonblockingMedianUs: (r.nonblocking as Result)?.medianUs,
    changingThreadsMedianUs: (r.nonblockingChangingThreads as Result)?.medianUs,
    mismatches: ((r.nonblocking as Result)?.mismatches as number ?? 0) +
      ((r.nonblockingChangingThreads as Result)?.mismatches as number ?? 0),
    slowRuns: (r.nonblockingChangingThreads as Result)?.slowerThan5xMedian,
    gpuGrowthMiB: r.gpuGrowthMiB,
  }));
  const errors = reports.flatMap((r) =>
    r.results.filter((x) => "error" in x).map((x) => ({ section: r.section, arg: r.arg, case: x.case, error: x.error }))
  );
  const failedSections = reports.filter((r) => r.exitCode !== 0 || r.timedOut || r.skipped).map((r) => ({
    section: r.section,
    arg: r.arg,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    skipped: r.skipped,
  }));
  const kernels = reports.filter((r) => r.kernels?.length).map((r) => ({ case: r.arg, top: r.kernels!.slice(0, 10) }));
  return { sessions, served, stages, device, sharing, nonblocking, kernels, errors, failedSections };
}

async function parent(): Promise<void> {
  const budgetEnd = Date.now() + Number(values.budget) * 1000;
  const out = {
    meta: {
      started: new Date().toISOString(),
      args: Deno.args,
      deno: Deno.version.deno,
      hostname: Deno.hostname(),
      cpus: navigator.hardwareConcurrency,
    },
    sections: [] as SectionReport[],
    summary: {} as Record<string, unknown>,
  };
  const write = async () => {
    if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(out, null, 2));
  };
  for (const p of plan()) {
    const left = budgetEnd - Date.now();
    if (left < 15_000) {
      out.sections.push({
        section: p.name,
        arg: p.arg ?? null,
        exitCode: null,
        timedOut: false,
        seconds: 0,
        results: [],
        skipped: "the probe's --budget is spent",
      });
      continue;
    }
    const deadline = Date.now() + Math.min(p.timeoutS * 1000, left);
    console.error(
      `gpu_perf_probe: ${p.name}${p.arg ? `:${p.arg}` : ""} (≤ ${Math.round((deadline - Date.now()) / 1000)} s)`,
    );
    out.sections.push(await runChild(p, deadline));
    out.summary = summarise(out.sections);
    await write();
  }
  out.summary = summarise(out.sections);
  await write();
  console.log(JSON.stringify({ summary: out.summary }));
}

async function child(name: string): Promise<void> {
  const section = sections[name];
  if (!section) throw new Error(`Unknown section '${name}' (sections: ${Object.keys(sections).join(", ")})`);
  const ctx = await openContext({
    section: name,
    seconds: Number(values.seconds),
    deadline: Number(values.deadline ?? Date.now() + 60_000),
    dryRun: values["dry-run"],
  });
  try {
    await section(ctx, values.arg);
  } catch (error) {
    emit(ctx, { case: "section", ...describeError(error) });
  } finally {
    await ctx.close();
  }
}

if (import.meta.main) {
  if (values.section) {
    await child(values.section);
    Deno.exit(0);
  }
  await parent();
}
