/**
 * The status page at `/`: functions with status and versions, isolates, GPU
 * devices and their lanes, and the last minute's request rate and latency.
 * Rendered on the server with Hono JSX; a few lines of script fetch the same
 * rendering (`/?part=status`) every second, so there is one way to render.
 *
 * Below the tables, small charts of the last 15 minutes: per function the
 * request rate, p50/p99 latency, batch size and errors; per GPU its memory and
 * lanes. They are drawn by uPlot, served from its npm package on this host
 * (no CDN), from `GET /status/series` (see `series.ts`), every two seconds.
 * @module
 */
import { Hono } from "hono";
import type { Child } from "hono/jsx";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Registry } from "../registry/registry.ts";
import type { Metrics } from "./metrics.ts";
import type { DeviceSources } from "./devices_report.ts";
import { devicesReport } from "./devices_report.ts";

/** What the page shows. */
export interface StatusSources {
  registry: Registry;
  metrics: Metrics;
  devices: DeviceSources;
  version: string;
  startedAt: Date;
}

const MiB = 1024 * 1024;

const style = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #1d2330; }
h1 { font-size: 1.4rem; margin: 0 0 .2rem } h2 { font-size: 1.1rem; margin-top: 1.6rem }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e3e6ec; }
th { font-weight: 600; background: #f5f7fa } .muted { color: #6b7385 } code { font-size: 12px }
.ready { color: #137a3a } .failed, .unhealthy { color: #b42318 } .loading { color: #8a6d00 }
.chart-row { display: flex; flex-wrap: wrap; gap: .8rem; align-items: flex-start; margin: .4rem 0 1rem }
.chart-row h3 { flex-basis: 100%; font-size: .95rem; margin: .2rem 0 0 }
.chart { border: 1px solid #e3e6ec; border-radius: 4px; padding: .2rem }
`;

function Functions({ sources }: { sources: StatusSources }) {
  const recent = sources.metrics.recent();
  const entries = sources.registry.list();
  return (
    <table id="functions">
      <thead>
        <tr>
          <th>function</th>
          <th>status</th>
          <th>version</th>
          <th>source</th>
          <th>isolates</th>
          <th>requests (1 min)</th>
          <th>req/s</th>
          <th>p50 ms</th>
          <th>p99 ms</th>
        </tr>
      </thead>
      <tbody>
        {entries.map((entry) => {
          const status = sources.registry.status(entry);
          const isolates = entry.current?.pool.isolates() ?? [];
          const r = recent[entry.name];
          return (
            <tr data-function={entry.name}>
              <td>
                <b>{entry.name}</b>
                <div class="muted">{entry.current?.manifest.options.description ?? entry.error ?? ""}</div>
              </td>
              <td class={status}>{status}</td>
              <td>{entry.current?.version ?? "-"}</td>
              <td>{entry.source}</td>
              <td>
                {isolates.map((i) => `${i.device}: ${i.status} (${i.served} served, ${i.restarts} restarts)`).join(
                  ", ",
                ) || "-"}
              </td>
              <td data-requests={r?.requests ?? 0}>{r?.requests ?? 0}</td>
              <td>{r?.perSecond ?? 0}</td>
              <td>{r?.p50Ms ?? "-"}</td>
              <td>{r?.p99Ms ?? "-"}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function Devices({ sources }: { sources: StatusSources }) {
  const report = devicesReport(sources.devices, sources.registry) as {
    reason?: string;
    devices: {
      index: number;
      name: string;
      pciBusId: string;
      memory: { usedBytes: number; totalBytes: number } | null;
      lanes: { function: string; isolate: number; stream: string; served: number }[];
    }[];
  };
  if (report.devices.length === 0) return <p id="devices" class="muted">CPU only: {report.reason ?? "no GPU"}</p>;
  return (
    <table id="devices">
      <thead>
        <tr>
          <th>GPU</th>
          <th>memory used</th>
          <th>lanes</th>
        </tr>
      </thead>
      <tbody>
        {report.devices.map((d) => (
          <tr>
            <td>
              cuda:{d.index} {d.name} <span class="muted">{d.pciBusId}</span>
            </td>
            <td>
              {d.memory
                ? `${Math.round(d.memory.usedBytes / MiB)} / ${Math.round(d.memory.totalBytes / MiB)} MiB`
                : "-"}
            </td>
            <td>
              {d.lanes.map((l) => `${l.function}#${l.isolate} stream ${l.stream} (${l.served})`).join(", ") || "-"}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The part of the page that refreshes. */
export function StatusPart({ sources }: { sources: StatusSources }) {
  const uptime = Math.round((Date.now() - sources.startedAt.getTime()) / 1000);
  return (
    <div id="status">
      <p class="muted">
        isolane {sources.version}, up {uptime} s, ready: {sources.registry.allReady() ? "yes" : "no"}
      </p>
      <h2>Functions</h2>
      <Functions sources={sources} />
      <h2>Devices</h2>
      <Devices sources={sources} />
    </div>
  );
}

const refresh = `
setInterval(async () => {
  try {
    const response = await fetch("/?part=status");
    if (response.ok) document.getElementById("status").outerHTML = await response.text();
  } catch (_) { /* the runtime may be restarting */ }
}, 1000);
`;

// Charts: one row per function and per GPU, built once and fed new data every two seconds.
// window.isolaneCharts maps "<row>/<chart>" to its uPlot instance (the browser test reads it).
const charts = `
const charts = window.isolaneCharts = new Map();
const palette = ["#2563eb", "#dc2626", "#16a34a"];
function chartRow(id, title) {
  let row = document.getElementById(id);
  if (!row) {
    row = document.createElement("div");
    row.id = id;
    row.className = "chart-row";
    row.innerHTML = "<h3></h3>";
    row.firstChild.textContent = title;
    document.getElementById(id.startsWith("gpu-") ? "gpu-charts" : "function-charts").append(row);
  }
  return row;
}
function draw(row, key, title, time, lines) {
  const data = [time, ...lines.map(([, values]) => values)];
  const existing = charts.get(key);
  if (existing) return existing.setData(data);
  const box = document.createElement("div");
  box.className = "chart";
  box.dataset.chart = key;
  row.append(box);
  charts.set(key, new uPlot({
    title, width: 280, height: 130, legend: { show: true },
    scales: { y: { range: (u, min, max) => [0, Math.max(max ?? 0, 1)] } },
    axes: [{ size: 30 }, { size: 44 }],
    series: [{}, ...lines.map(([label], i) => ({ label, stroke: palette[i], width: 1.5, points: { show: true, size: 3 } }))],
  }, data, box));
}
async function refreshCharts() {
  try {
    const response = await fetch("/status/series");
    if (!response.ok) return;
    const s = await response.json();
    for (const [name, f] of Object.entries(s.functions)) {
      const row = chartRow("fn-" + name, name);
      draw(row, name + "/rate", "requests / s", s.time, [["req/s", f.rate]]);
      draw(row, name + "/latency", "latency (ms)", s.time, [["p50", f.p50Ms], ["p99", f.p99Ms]]);
      draw(row, name + "/batch", "batch size", s.time, [["jobs / dispatch", f.batchSize]]);
      draw(row, name + "/errors", "errors", s.time, [["4xx", f.errors4xx], ["5xx", f.errors5xx]]);
    }
    for (const g of s.gpus) {
      const row = chartRow("gpu-" + g.index, "cuda:" + g.index + " " + g.name);
      draw(row, "gpu" + g.index + "/memory", "memory used (MiB of " + g.totalMiB + ")", s.time, [["used", g.usedMiB]]);
      draw(row, "gpu" + g.index + "/lanes", "lanes", s.time, [["lanes", g.lanes]]);
    }
    document.getElementById("gpu-charts-none").hidden = s.gpus.length > 0;
  } catch (_) { /* the runtime may be restarting */ }
}
refreshCharts();
setInterval(refreshCharts, 2000);
`;

/** uPlot's files, served from its npm package. */
const uplotDir = fileURLToPath(new URL("../../node_modules/uplot/dist", import.meta.url));
const uplotAssets: Record<string, string> = {
  "uPlot.iife.min.js": "text/javascript; charset=utf-8",
  "uPlot.min.css": "text/css; charset=utf-8",
};

/** The whole page. */
export function StatusPage({ sources }: { sources: StatusSources }): Child {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>isolane status</title>
        <link rel="stylesheet" href="/status/assets/uPlot.min.css" />
        <style dangerouslySetInnerHTML={{ __html: style }} />
      </head>
      <body>
        <h1>isolane</h1>
        <p class="muted">
          <a href="/docs">API docs</a> · <a href="/metrics">metrics</a> · <a href="/v1/functions">functions</a> ·{" "}
          <a href="/v1/devices">devices</a>
        </p>
        <StatusPart sources={sources} />
        <h2>Last 15 minutes</h2>
        <div id="function-charts"></div>
        <div id="gpu-charts">
          <p id="gpu-charts-none" class="muted">No GPU charts: CPU only</p>
        </div>
        <script dangerouslySetInnerHTML={{ __html: refresh }} />
        <script src="/status/assets/uPlot.iife.min.js"></script>
        <script dangerouslySetInnerHTML={{ __html: charts }} />
      </body>
    </html>
  );
}

/**
 * Routes `/` (the page; `/?part=status` its refreshing part), `/status/series`
 * (the chart data, JSON: see `SeriesSnapshot`) and `/status/assets/*` (uPlot).
 */
export function statusRoutes(sources: StatusSources): Hono {
  const app = new Hono();
  // The HTTP threads' records are counted first, as `/metrics` counts them: the page shows every answer given.
  app.get("/", async (c) => {
    await sources.metrics.flush();
    return c.req.query("part") === "status"
      ? c.html(<StatusPart sources={sources} />)
      : c.html("<!doctype html>" + <StatusPage sources={sources} />);
  });
  app.get("/status/series", async (c) => {
    await sources.metrics.flush();
    return c.json(sources.metrics.series());
  });
  app.get("/status/assets/:file", async (c) => {
    const file = c.req.param("file");
    const type = uplotAssets[file];
    if (!type) return c.notFound();
    return c.body(await Deno.readFile(join(uplotDir, file)), 200, {
      "content-type": type,
      "cache-control": "public, max-age=86400",
    });
  });
  return app;
}
