/**
 * Prometheus metrics (prom-client): requests by function and status, latency,
 * queue depth, batch sizes, isolates and their restarts, GPU memory and lanes.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import client from "prom-client";
import type { PoolObserver } from "../pool/observer.ts";
import type { Registry } from "../registry/registry.ts";
import type { DeviceSources } from "./devices_report.ts";
import { bucketMs, type GpuSample, LastMinute, RecentSeries, type SeriesSnapshot } from "./series.ts";

/** The metrics of one runtime. */
export interface Metrics {
  /** Counts and times function invocations. */
  middleware: MiddlewareHandler;
  /** Counts and times one invocation answered elsewhere (an HTTP thread): `ms` from request to response. */
  record(fn: string, status: number, ms: number): void;
  /**
   * Adds a source of records made elsewhere (the HTTP threads keep theirs for a moment): `flush` has it send them,
   * and {@link render} awaits every source first, so that a scrape counts every request answered before it.
   */
  addSource(flush: () => Promise<void>): void;
  /** Hands pools' events to the metrics. */
  observer: PoolObserver;
  /** The text exposition for `GET /metrics`. */
  render(): Promise<{ contentType: string; body: string }>;
  /** Recent invocations per function: count, and latency percentiles over the last minute (status page). */
  recent(): Record<string, { requests: number; perSecond: number; p50Ms: number; p99Ms: number }>;
  /** The last 15 minutes per function and per GPU, in 10-second buckets (status page charts). */
  series(): SeriesSnapshot;
}

/** Creates the metrics; `registry` and `devices` are read when metrics are scraped. */
export function createMetrics(
  options: { devices: DeviceSources; functionOf: (c: Context) => string | null },
): Metrics & {
  bind(registry: Registry): void;
} {
  const register = new client.Registry();
  client.collectDefaultMetrics({ register, prefix: "isolane_" });
  let registry: Registry | undefined;
  const requests = new client.Counter({
    name: "isolane_requests_total",
    help: "Function invocations by function and HTTP status",
    labelNames: ["function", "status"] as const,
    registers: [register],
  });
  const duration = new client.Histogram({
    name: "isolane_request_duration_seconds",
    help: "Invocation latency from request to response, by function",
    labelNames: ["function"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [register],
  });
  const batch = new client.Histogram({
    name: "isolane_batch_size",
    help: "Rows per dispatch to an isolate (one request is one row unless its route knows more)",
    labelNames: ["function"] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [register],
  });
  const restarts = new client.Counter({
    name: "isolane_isolate_restarts_total",
    help: "Isolates stopped unplanned and respawned, by reason",
    labelNames: ["function", "reason"] as const,
    registers: [register],
  });
  new client.Gauge({
    name: "isolane_queue_depth",
    help: "Requests waiting for a free isolate",
    labelNames: ["function"] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const e of registry?.list() ?? []) if (e.current) this.set({ function: e.name }, e.current.pool.queued);
    },
  });
  new client.Gauge({
    name: "isolane_isolates",
    help: "Isolates by function, device and state",
    labelNames: ["function", "device", "state"] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const e of registry?.list() ?? []) {
        for (const i of e.current?.pool.isolates() ?? []) {
          this.inc({ function: e.name, device: i.device, state: i.status });
        }
      }
    },
  });
  new client.Gauge({
    name: "isolane_function_up",
    help: "1 when a function serves, 0 when it failed or is unhealthy",
    labelNames: ["function"] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const e of registry?.list() ?? []) this.set({ function: e.name }, registry!.status(e) === "ready" ? 1 : 0);
    },
  });
  new client.Gauge({
    name: "isolane_gpu_memory_used_bytes",
    help: "Used memory of each GPU (NVML)",
    labelNames: ["device", "name"] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const d of options.devices.devices) {
        const memory = options.devices.memory(d.pciBusId);
        if (memory) this.set({ device: String(d.index), name: d.name }, memory.usedBytes);
      }
    },
  });
  new client.Gauge({
    name: "isolane_gpu_memory_total_bytes",
    help: "Total memory of each GPU",
    labelNames: ["device", "name"] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const d of options.devices.devices) this.set({ device: String(d.index), name: d.name }, d.totalBytes);
    },
  });
  new client.Gauge({
    name: "isolane_gpu_lanes",
    help: "GPU lanes (isolates bound to a device) per device",
    labelNames: ["device"] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const d of options.devices.devices) this.set({ device: String(d.index) }, 0);
      for (const e of registry?.list() ?? []) {
        for (const i of e.current?.pool.isolates() ?? []) if (i.gpu) this.inc({ device: String(i.gpu.device) });
      }
    },
  });

  const recentSeries = new RecentSeries();
  const gpuSamples = (): GpuSample[] =>
    options.devices.devices.map((d) => ({
      index: d.index,
      name: d.name,
      totalBytes: d.totalBytes,
      usedBytes: options.devices.memory(d.pciBusId)?.usedBytes ?? null,
      lanes: (registry?.list() ?? []).reduce(
        (n, e) => n + (e.current?.pool.isolates() ?? []).filter((i) => i.gpu?.device === d.index).length,
        0,
      ),
    }));
  if (options.devices.devices.length > 0) {
    // GPU memory moves without requests: sample it once a bucket. Unref'd, so it never keeps the process alive.
    Deno.unrefTimer(setInterval(() => recentSeries.sampleGpus(gpuSamples()), bucketMs));
  }

  const lastMinute = new LastMinute();
  const sources: (() => Promise<void>)[] = [];
  // prom-client hashes a label set on every call; its children, kept per label set, do not. By function, then status:
  // no key string built per request.
  const children = new Map<
    string,
    { timer: client.Histogram.Internal<"function">; counters: Map<number, client.Counter.Internal> }
  >();
  const batchSizes = new Map<string, client.Histogram.Internal<"function">>();
  const record = (fn: string, status: number, ms: number) => {
    let of = children.get(fn);
    if (!of) children.set(fn, of = { timer: duration.labels({ function: fn }), counters: new Map() });
    let counter = of.counters.get(status);
    if (!counter) of.counters.set(status, counter = requests.labels({ function: fn, status: String(status) }));
    counter.inc();
    of.timer.observe(ms / 1000);
    recentSeries.request(fn, ms, status);
    lastMinute.request(fn, ms);
  };
  return {
    bind(r) {
      registry = r;
    },
    middleware: async function invocationMetrics(c, next) {
      const started = performance.now();
      await next();
      const fn = options.functionOf(c);
      if (fn !== null) record(fn, c.res.status, performance.now() - started);
    },
    record,
    addSource(flush) {
      sources.push(flush);
    },
    observer: {
      dispatched: (fn, size) => {
        let sizes = batchSizes.get(fn);
        if (!sizes) batchSizes.set(fn, sizes = batch.labels({ function: fn }));
        sizes.observe(size);
        recentSeries.dispatch(fn, size);
      },
      isolateStopped: (fn, code) => restarts.inc({ function: fn, reason: code }),
    },
    async render() {
      await Promise.all(sources.map((flush) => flush()));
      return { contentType: register.contentType, body: await register.metrics() };
    },
    series() {
      return recentSeries.snapshot(gpuSamples(), registry?.list().map((e) => e.name) ?? []);
    },
    recent() {
      return lastMinute.summary();
    },
  };
}
