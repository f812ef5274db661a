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
  /**
   * Counts and times one invocation (answered by the main thread's direct path, or by an HTTP thread): `ms` from
   * request to response. Counted within 10 ms, off the request's path; every reader of the metrics counts it first.
   */
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
  /**
   * Counts every record made before the call, those the sources keep ({@link addSource}) too: await it before
   * {@link recent} or {@link series} where records come from HTTP threads, which keep theirs up to 25 ms.
   */
  flush(): Promise<void>;
  /** Recent invocations per function: count, and latency percentiles over the last minute (status page). */
  recent(): Record<string, { requests: number; perSecond: number; p50Ms: number; p99Ms: number }>;
  /** The last 15 minutes per function and per GPU, in 10-second buckets (status page charts). */
  series(): SeriesSnapshot;
}

/**
 * How long an invocation's record may wait before it is counted, in milliseconds: counting it (a histogram, the
 * status page's series and last minute) cost a lone request 6–9 µs on its path (docs/hop.md).
 */
const recordMs = 10;

/** Creates the metrics; `registry` and `devices` are read when metrics are scraped. */
export function createMetrics(
  options: { devices: DeviceSources; functionOf: (c: Context) => string | null },
): Metrics & {
  bind(registry: Registry): void;
} {
  const register = new client.Registry();
  client.collectDefaultMetrics({ register, prefix: "isolane_" });
  let registry: Registry | undefined;
  const requests = new FunctionCounter(
    "isolane_requests_total",
    "Function invocations by function and HTTP status",
  );
  register.registerMetric(requests as unknown as client.Metric);
  const duration = new FunctionHistogram(
    "isolane_request_duration_seconds",
    "Invocation latency from request to response, by function",
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  register.registerMetric(duration as unknown as client.Metric);
  const batch = new FunctionHistogram(
    "isolane_batch_size",
    "Rows per dispatch to an isolate (one request is one row unless its route knows more)",
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  );
  register.registerMetric(batch as unknown as client.Metric);
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
  // By function, then status: no key string built and no label set hashed per answer.
  const children = new Map<string, { timer: HistogramCell; counters: Map<number, CounterCell> }>();
  const batchSizes = new Map<string, HistogramCell>();
  const count = (fn: string, status: number, ms: number) => {
    let of = children.get(fn);
    if (!of) children.set(fn, of = { timer: duration.cell(fn), counters: new Map() });
    let counter = of.counters.get(status);
    if (!counter) of.counters.set(status, counter = requests.cell(fn, status));
    counter.value++;
    duration.observe(of.timer, ms / 1000);
    recentSeries.request(fn, ms, status);
    lastMinute.request(fn, ms);
  };
  // Records wait (at most recordMs) and are counted together, off the request's path, as request log lines are;
  // every reader (render, recent, series) counts them first.
  let waiting: { fn: string[]; status: number[]; ms: number[] } = { fn: [], status: [], ms: [] };
  let countTimer: ReturnType<typeof setTimeout> | undefined;
  const countWaiting = () => {
    clearTimeout(countTimer);
    countTimer = undefined;
    const { fn, status, ms } = waiting;
    waiting = { fn: [], status: [], ms: [] };
    for (let i = 0; i < fn.length; i++) count(fn[i], status[i], ms[i]);
  };
  const record = (fn: string, status: number, ms: number) => {
    waiting.fn.push(fn);
    waiting.status.push(status);
    waiting.ms.push(ms);
    if (waiting.fn.length >= 512) countWaiting();
    else if (countTimer === undefined) {
      countTimer = setTimeout(countWaiting, recordMs);
      Deno.unrefTimer(countTimer as unknown as number);
    }
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
        if (!sizes) batchSizes.set(fn, sizes = batch.cell(fn));
        batch.observe(sizes, size);
        recentSeries.dispatch(fn, size);
      },
      isolateStopped: (fn, code) => restarts.inc({ function: fn, reason: code }),
    },
    async flush() {
      await Promise.all(sources.map((flush) => flush()));
      countWaiting();
    },
    async render() {
      await Promise.all(sources.map((flush) => flush()));
      countWaiting();
      return { contentType: register.contentType, body: await register.metrics() };
    },
    series() {
      countWaiting();
      return recentSeries.snapshot(gpuSamples(), registry?.list().map((e) => e.name) ?? []);
    },
    recent() {
      countWaiting();
      return lastMinute.summary();
    },
  };
}

/** One label set's count of a {@link FunctionCounter}, as prom-client's registry reads it. */
interface CounterCell {
  labels: { function: string; status: string };
  value: number;
}

/** One function's histogram of a {@link FunctionHistogram}: counts per bucket (not cumulative), sum and count. */
interface HistogramCell {
  function: string;
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * `isolane_requests_total` by function and status: a counter whose increment is one addition on a cell the caller
 * keeps. prom-client's Counter hashes its label set on every `inc`, even through a child from `labels()`. Registered
 * with prom-client's registry, which reads it through `get()` as it reads its own counters (same lines, same order).
 */
class FunctionCounter {
  readonly type = "counter";
  readonly aggregator = "sum";
  readonly #cells: CounterCell[] = [];

  constructor(readonly name: string, readonly help: string) {}

  /** The cell of one function and status, made at 0 (call once per label set and keep it). */
  cell(fn: string, status: number): CounterCell {
    const cell = { labels: { function: fn, status: String(status) }, value: 0 };
    this.#cells.push(cell);
    return cell;
  }

  get(): Promise<{ name: string; help: string; type: string; values: CounterCell[]; aggregator: string }> {
    const values = this.#cells.map(({ labels, value }) => ({ labels: { ...labels }, value }));
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  reset(): void {
    for (const cell of this.#cells) cell.value = 0;
  }
}

/**
 * A histogram by function whose `observe` is a bucket search and three additions on a cell the caller keeps.
 * prom-client's Histogram hashes and validates its label set and looks the bucket up by a string key on every
 * `observe`, even through a child from `labels()`: with the request counter, the largest metrics cost of the main
 * thread per answer. Registered with prom-client's registry, which formats it as its own histograms (`_bucket` lines,
 * cumulative, `le` first, then `+Inf`, `_sum`, `_count`, per function in the order first observed).
 */
class FunctionHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #cells: HistogramCell[] = [];

  /** `buckets`: upper bounds, ascending. */
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {}

  /** The cell of one function, made empty (call once per function and keep it). */
  cell(fn: string): HistogramCell {
    const cell = { function: fn, counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
    this.#cells.push(cell);
    return cell;
  }

  /** Counts `value` in `cell`: in the first bucket whose bound is at least it (past the last: in `+Inf` only). */
  observe(cell: HistogramCell, value: number): void {
    const bounds = this.buckets;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    if (i < bounds.length) cell.counts[i]++;
    cell.sum += value;
    cell.count++;
  }

  getForPromString(): Promise<{ name: string; help: string; type: string; values: object[]; aggregator: string }> {
    const values: object[] = [];
    const bucket = `${this.name}_bucket`;
    for (const cell of this.#cells) {
      const shared = { function: cell.function };
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += cell.counts[i];
        values.push({ labels: { le: this.buckets[i] }, sharedLabels: shared, value: cumulative, metricName: bucket });
      }
      values.push(
        { labels: { le: "+Inf" }, sharedLabels: shared, value: cell.count, metricName: bucket },
        { labels: {}, sharedLabels: shared, value: cell.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: shared, value: cell.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** As {@link getForPromString}, each value's labels whole (prom-client's JSON form). */
  async get(): Promise<{ name: string; help: string; type: string; values: object[]; aggregator: string }> {
    const data = await this.getForPromString();
    data.values = data.values.map((v) => {
      const { labels, sharedLabels, ...rest } = v as { labels: object; sharedLabels: object };
      return { ...rest, labels: { ...labels, ...sharedLabels } };
    });
    return data;
  }

  reset(): void {
    for (const cell of this.#cells) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}
