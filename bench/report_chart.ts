/**
 * Draws a suite report's throughput and p99 latency against concurrency as SVG: a vega-lite specification,
 * compiled to vega and rendered by vega's headless view (`view.toSVG()`). One row per panel (scenario or model),
 * goodput (2xx/s) on the left (symlog axis, so that 0 shows), p99 on the right (log axis).
 * @module
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Report } from "./suite.ts";

interface Row {
  panel: string;
  system: string;
  c: number;
  rps: number;
  goodput: number;
  p99Ms: number;
}

/** The rows the chart plots: one per measured point. */
export function chartRows(report: Report): Row[] {
  return report.scenarios.flatMap((scenario) =>
    scenario.series.filter((s) => s.available).flatMap((s) =>
      s.points.map((p) => ({
        panel: s.panel,
        system: s.label,
        c: p.connections,
        rps: p.rps,
        goodput: p.goodput,
        p99Ms: Math.max(p.p99Us / 1000, 0.001),
      }))
    )
  );
}

/** The vega-lite specification of the chart; null when nothing was measured under load. */
export function chartSpec(report: Report): TopLevelSpec | null {
  const rows = chartRows(report);
  if (rows.length === 0) return null;
  const panels = [...new Set(rows.map((r) => r.panel))];
  const levels = [...new Set(rows.map((r) => r.c))].sort((a, b) => a - b);
  // One domain for every panel, so that rows line up and a panel with one level still has an axis.
  const domain = levels.length > 1 ? [levels[0], levels.at(-1)!] : [levels[0] / 2, levels[0] * 2];
  const x = {
    field: "c",
    type: "quantitative",
    title: "concurrency (connections)",
    scale: { type: "log", base: 2, domain },
    axis: { values: levels, labelFlush: false, labelOverlap: false },
  } as const;
  const color = {
    field: "system",
    type: "nominal",
    title: null,
    legend: { orient: "bottom", columns: 1, labelLimit: 600 },
  } as const;
  const decades = [0, 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7];
  const unit = (panel: string, field: "goodput" | "p99Ms", title: string) => ({
    title: `${panel}: ${title}`,
    width: 300,
    height: 200,
    transform: [{ filter: { field: "panel", equal: panel } }],
    mark: { type: "line", point: true },
    encoding: {
      x,
      // Goodput can fall to 0 under overload, which a log scale cannot show: symlog can.
      y: field === "goodput"
        ? { field, type: "quantitative", title, scale: { type: "symlog" }, axis: { values: decades } }
        : { field, type: "quantitative", title, scale: { type: "log" } },
      color,
      tooltip: [{ field: "system" }, { field: "c" }, { field: "rps" }, { field: "goodput" }, { field: "p99Ms" }],
    },
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    description: `isolane benchmarks, ${report.meta.date} on ${report.meta.host}`,
    data: { values: rows },
    vconcat: panels.map((panel) => ({
      hconcat: [unit(panel, "goodput", "2xx answers per second"), unit(panel, "p99Ms", "p99 latency (ms)")],
      resolve: { scale: { color: "shared" } },
    })),
    resolve: { scale: { color: "independent" } },
    config: { font: "DejaVu Sans, sans-serif" },
  } as TopLevelSpec;
}

/** The chart as an SVG document; null when nothing was measured under load. */
export async function renderChart(report: Report): Promise<string | null> {
  const spec = chartSpec(report);
  if (!spec) return null;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
