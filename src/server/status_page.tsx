/**
 * The status page at `/`: functions with status and versions, isolates, GPU
 * devices and their lanes, and the last minute's request rate and latency.
 * Rendered on the server with Hono JSX; a few lines of script fetch the same
 * rendering (`/?part=status`) every second, so there is one way to render.
 * @module
 */
import type { Child } from "hono/jsx";
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

/** The whole page. */
export function StatusPage({ sources }: { sources: StatusSources }): Child {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>isolane status</title>
        <style dangerouslySetInnerHTML={{ __html: style }} />
      </head>
      <body>
        <h1>isolane</h1>
        <p class="muted">
          <a href="/docs">API docs</a> · <a href="/metrics">metrics</a> · <a href="/v1/functions">functions</a> ·{" "}
          <a href="/v1/devices">devices</a>
        </p>
        <StatusPart sources={sources} />
        <script dangerouslySetInnerHTML={{ __html: refresh }} />
      </body>
    </html>
  );
}
