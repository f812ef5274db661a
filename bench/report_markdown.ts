/**
 * Renders a suite report as Markdown: a table per scenario and the targets of issues 14 and 17.
 * @module
 */
import type { Report, ScenarioReport } from "./suite.ts";

const ms = (us: number) => (us / 1000).toFixed(2);
const ratio = (r: number | null | undefined) => (r === null || r === undefined ? "—" : `${r.toFixed(2)}×`);
const n0 = (n: number) => Math.round(n).toLocaleString("en-US");

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function loadTable(scenario: ScenarioReport): string {
  const overload = scenario.id === "C";
  const header = overload
    ? ["system", "c", "rps", "2xx/s", "p50 ms", "p90 ms", "p99 ms", "errors", "429", "2xx/s ÷ peak"]
    : [
      "system",
      "c",
      "rps",
      "2xx/s",
      "p50 ms",
      "p90 ms",
      "p99 ms",
      "errors",
      "429",
      "2xx/s ÷ baseline",
      "p50 ÷ baseline",
    ];
  const rows: string[][] = [];
  for (const s of scenario.series) {
    if (!s.available) {
      rows.push([s.label, "—", s.note ?? "n/a", ...header.slice(3).map(() => "")]);
      continue;
    }
    for (const p of s.points) {
      rows.push(
        [
          s.label,
          String(p.connections),
          n0(p.rps),
          n0(p.goodput),
          ms(p.p50Us),
          ms(p.p90Us),
          ms(p.p99Us),
          n0(p.errors),
          n0(p.status429),
          ...(overload ? [ratio(p.goodputToPeak)] : [ratio(p.ratio), ratio(p.p50Ratio)]),
        ],
      );
    }
  }
  return table(header, rows);
}

function scenarioSection(scenario: ScenarioReport): string {
  const parts = [`## ${scenario.title}`];
  if (scenario.series.length) {
    for (const panel of [...new Set(scenario.series.map((s) => s.panel))]) {
      const sub = { ...scenario, series: scenario.series.filter((s) => s.panel === panel) };
      if (new Set(scenario.series.map((s) => s.panel)).size > 1) parts.push(`### ${panel}`);
      parts.push(loadTable(sub));
    }
  }
  if (scenario.id === "A") {
    const hono = scenario.series.find((s) => s.key === "hono:echo")?.points.find((p) => p.connections === 1);
    const isolane = scenario.series.find((s) => s.key === "isolane:echo")?.points.find((p) => p.connections === 1);
    if (hono && isolane) {
      parts.push(
        `Sequential (c=1) p50: isolane ${n0(isolane.p50Us)} µs, plain Hono ${n0(hono.p50Us)} µs: ${
          ratio(isolane.p50Us / hono.p50Us)
        }.`,
      );
    }
  }
  if (scenario.ceiling.length) {
    parts.push("Device ceiling: a bare ONNX Runtime loop, no HTTP");
    parts.push(table(
      ["model", "device", "batch", "rows/s", "p50 ms per run", "p99 ms per run"],
      scenario.ceiling.map((c) => [
        c.model,
        c.device,
        String(c.batch),
        n0(c.rowsPerSecond),
        c.p50Ms.toFixed(2),
        c.p99Ms.toFixed(2),
      ]),
    ));
  }
  if (scenario.timings.length) {
    parts.push(table(
      ["measurement", "runs", "median ms", "min ms", "max ms"],
      scenario.timings.map((t) => [
        t.label,
        String(t.samplesMs.length),
        t.medianMs?.toFixed(1) ?? "—",
        t.minMs?.toFixed(1) ?? "—",
        t.maxMs?.toFixed(1) ?? "—",
      ]),
    ));
  }
  for (const note of scenario.notes) parts.push(`- ${note}`);
  return parts.join("\n\n");
}

/** The report as Markdown. */
export function renderMarkdown(report: Report): string {
  const { meta } = report;
  const head = [
    `# isolane benchmarks: ${meta.date.slice(0, 16).replace("T", " ")} UTC on ${meta.host}`,
    `${meta.cpu}, ${meta.cores} cores, ${meta.memoryGiB} GiB; device ${meta.device}; Deno ${meta.deno}; ${meta.wrk}. ` +
    `Command: \`${meta.command}\`. Closed loop (wrk, 127.0.0.1), each run at most ${meta.options.durationS} s and ` +
    `${
      n0(meta.options.maxRequests)
    } answers; latencies over all answers. rps counts every answer; errors are non-2xx ` +
    "answers plus socket errors; 2xx/s is the goodput. Under overload the percentiles include the fast 429s. " +
    `Load average (1 min) ${meta.loadAverage.start.toFixed(2)} before, ${
      meta.loadAverage.end?.toFixed(2) ?? "?"
    } after.`,
    ...meta.notes.map((n) => `> ${n}`),
  ];
  const targets = [
    "## Targets of issues 14 and 17",
    table(
      ["target", "status", "figures"],
      report.targets.map((t) => [t.text, t.met === null ? "not measured" : t.met ? "met" : "not met", t.figures]),
    ),
  ];
  return [...head, ...report.scenarios.map(scenarioSection), ...targets].join("\n\n") + "\n";
}
