/**
 * The last 15 minutes of each function and GPU, for the status page's charts:
 * a ring of 10-second buckets per function (requests, 4xx and 5xx answers, a
 * log-scale latency histogram for p50/p99, dispatches and their batch sizes)
 * and per GPU (memory used, lanes). Memory is fixed per function whatever the
 * request rate: 90 buckets of 120 counters.
 * @module
 */

/** Width of one bucket. */
export const bucketMs = 10_000;
/** How far back the series go. */
export const windowMs = 15 * 60_000;
const buckets = windowMs / bucketMs;

// Latency bins grow by 10% from 0.05 ms: p50/p99 are exact to within 5%, up to about 24 minutes.
const binBase = 0.05;
const binGrowth = 1.1;
const bins = 120;
const binOf = (ms: number) =>
  Math.min(bins - 1, Math.max(0, Math.ceil(Math.log(Math.max(ms, binBase) / binBase) / Math.log(binGrowth))));
const binUpperMs = (bin: number) => binBase * binGrowth ** bin;

interface FunctionBucket {
  start: number;
  requests: number;
  clientErrors: number;
  serverErrors: number;
  latency: Uint32Array;
  dispatches: number;
  jobs: number;
}

interface GpuBucket {
  start: number;
  usedBytes: number | null;
  lanes: number;
}

/** One function's series, oldest bucket first; `null` where a bucket had nothing to measure. */
export interface FunctionSeries {
  /** Requests a second. */
  rate: number[];
  /** Latency percentiles in milliseconds, from request to response. */
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
  /** Mean jobs per dispatch to an isolate (`isolane_batch_size`). */
  batchSize: (number | null)[];
  /** Answers with a 4xx and a 5xx status. */
  errors4xx: number[];
  errors5xx: number[];
}

/** One GPU's series. */
export interface GpuSeries {
  index: number;
  name: string;
  totalMiB: number;
  /** Memory used (NVML), sampled once a bucket. */
  usedMiB: (number | null)[];
  /** Isolates bound to the device. */
  lanes: (number | null)[];
}

/** What `GET /status/series` answers. */
export interface SeriesSnapshot {
  bucketSeconds: number;
  /** Start of each bucket, Unix seconds, oldest first. */
  time: number[];
  functions: Record<string, FunctionSeries>;
  gpus: GpuSeries[];
}

/** A GPU as the sampler sees it now. */
export interface GpuSample {
  index: number;
  name: string;
  totalBytes: number;
  usedBytes: number | null;
  lanes: number;
}

const MiB = 1024 * 1024;

/**
 * Rings of recent measurements. `now` is injectable for tests.
 *
 * @example
 * ```ts
 * const series = new RecentSeries();
 * series.request("ocr", 42, 200);
 * series.dispatch("ocr", 4);
 * series.snapshot([]).functions.ocr.p50Ms.at(-1); // about 42
 * ```
 */
export class RecentSeries {
  #functions = new Map<string, FunctionBucket[]>();
  #gpus = new Map<number, { name: string; totalBytes: number; ring: GpuBucket[] }>();
  #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #start(at: number): number {
    return at - (at % bucketMs);
  }

  #slot<T extends { start: number }>(ring: T[], make: (start: number) => T): T {
    const start = this.#start(this.#now());
    const index = (start / bucketMs) % buckets;
    if (ring[index]?.start !== start) ring[index] = make(start);
    return ring[index];
  }

  #functionBucket(fn: string): FunctionBucket {
    let ring = this.#functions.get(fn);
    if (!ring) this.#functions.set(fn, ring = []);
    return this.#slot(ring, (start) => ({
      start,
      requests: 0,
      clientErrors: 0,
      serverErrors: 0,
      latency: new Uint32Array(bins),
      dispatches: 0,
      jobs: 0,
    }));
  }

  /** Records one answered invocation: its latency in milliseconds and HTTP status. */
  request(fn: string, ms: number, status: number): void {
    const bucket = this.#functionBucket(fn);
    bucket.requests++;
    if (status >= 500) bucket.serverErrors++;
    else if (status >= 400) bucket.clientErrors++;
    bucket.latency[binOf(ms)]++;
  }

  /** Records one dispatch of `size` jobs to an isolate. */
  dispatch(fn: string, size: number): void {
    const bucket = this.#functionBucket(fn);
    bucket.dispatches++;
    bucket.jobs += size;
  }

  /** Records the GPUs as they are now (the bucket keeps the latest sample). */
  sampleGpus(samples: GpuSample[]): void {
    for (const s of samples) {
      let gpu = this.#gpus.get(s.index);
      if (!gpu) this.#gpus.set(s.index, gpu = { name: s.name, totalBytes: s.totalBytes, ring: [] });
      const bucket = this.#slot(gpu.ring, (start) => ({ start, usedBytes: null, lanes: 0 }));
      bucket.usedBytes = s.usedBytes;
      bucket.lanes = s.lanes;
    }
  }

  /** The last 15 minutes, after sampling the GPUs once more; `names` are listed even before their first request. */
  snapshot(gpus: GpuSample[], names: readonly string[] = []): SeriesSnapshot {
    this.sampleGpus(gpus);
    const now = this.#now();
    const current = this.#start(now);
    const time = Array.from({ length: buckets }, (_, i) => current - (buckets - 1 - i) * bucketMs);
    const at = <T extends { start: number }>(ring: T[], start: number): T | undefined => {
      const b = ring[(start / bucketMs) % buckets];
      return b?.start === start ? b : undefined;
    };
    const functions: Record<string, FunctionSeries> = {};
    for (const fn of new Set([...names, ...this.#functions.keys()])) {
      const ring = this.#functions.get(fn) ?? [];
      const rows = time.map((start) => at(ring, start));
      functions[fn] = {
        rate: rows.map((b, i) => {
          // The current bucket has run for part of its width only.
          const seconds = i === buckets - 1 ? Math.max(1, (now - current) / 1000) : bucketMs / 1000;
          return b ? Math.round((b.requests / seconds) * 100) / 100 : 0;
        }),
        p50Ms: rows.map((b) => (b && b.requests ? percentile(b.latency, b.requests, 0.5) : null)),
        p99Ms: rows.map((b) => (b && b.requests ? percentile(b.latency, b.requests, 0.99) : null)),
        batchSize: rows.map((b) => (b && b.dispatches ? Math.round((b.jobs / b.dispatches) * 100) / 100 : null)),
        errors4xx: rows.map((b) => b?.clientErrors ?? 0),
        errors5xx: rows.map((b) => b?.serverErrors ?? 0),
      };
    }
    const gpuSeries = [...this.#gpus].map(([index, gpu]) => {
      const rows = time.map((start) => at(gpu.ring, start));
      return {
        index,
        name: gpu.name,
        totalMiB: Math.round(gpu.totalBytes / MiB),
        usedMiB: rows.map((b) => (b && b.usedBytes !== null ? Math.round(b.usedBytes / MiB) : null)),
        lanes: rows.map((b) => b?.lanes ?? null),
      };
    });
    return { bucketSeconds: bucketMs / 1000, time: time.map((t) => t / 1000), functions, gpus: gpuSeries };
  }
}

/** The `q` quantile of a histogram of `count` samples: the upper edge of the bin that holds it, rounded to 0.1 ms. */
function percentile(histogram: Uint32Array, count: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let bin = 0; bin < histogram.length; bin++) {
    seen += histogram[bin];
    if (seen >= rank) return Math.round(binUpperMs(bin) * 10) / 10;
  }
  return Math.round(binUpperMs(histogram.length - 1) * 10) / 10;
}

/** One function's invocations over the last minute, as the status page's table shows them. */
export interface MinuteSummary {
  requests: number;
  perSecond: number;
  /** Latency percentiles in milliseconds (within 5%); 0 without requests. */
  p50Ms: number;
  p99Ms: number;
}

interface SecondSlot {
  second: number;
  requests: number;
  latency: Uint32Array;
}

/**
 * Invocations of the last 60 seconds per function, in one-second slots with
 * the log-scale latency histogram of {@link RecentSeries}: fixed memory per
 * function, nothing allocated per request. (A list of every sample of the
 * minute kept tens of thousands of objects alive at a few thousand requests a
 * second, which the garbage collector copied and marked over and over, and
 * dropping the oldest moved the whole list on every request.)
 *
 * @example
 * ```ts
 * const minute = new LastMinute();
 * minute.request("echo", 0.4);
 * minute.summary().echo.requests; // 1
 * ```
 */
export class LastMinute {
  #functions = new Map<string, SecondSlot[]>();
  #now: () => number;

  /** `now` gives the time in milliseconds (for tests). */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Records one answered invocation and its latency in milliseconds. */
  request(fn: string, ms: number): void {
    const second = Math.floor(this.#now() / 1000);
    let ring = this.#functions.get(fn);
    if (!ring) this.#functions.set(fn, ring = []);
    const index = second % 60;
    let slot = ring[index];
    if (!slot) slot = ring[index] = { second, requests: 0, latency: new Uint32Array(bins) };
    else if (slot.second !== second) {
      slot.second = second;
      slot.requests = 0;
      slot.latency.fill(0);
    }
    slot.requests++;
    slot.latency[binOf(ms)]++;
  }

  /** Each function with a request in the last 60 seconds: count, rate and latency percentiles. */
  summary(): Record<string, MinuteSummary> {
    const now = Math.floor(this.#now() / 1000);
    const out: Record<string, MinuteSummary> = {};
    for (const [fn, ring] of this.#functions) {
      const latency = new Uint32Array(bins);
      let requests = 0;
      for (const slot of ring) {
        if (!slot || now - slot.second >= 60) continue;
        requests += slot.requests;
        for (let bin = 0; bin < bins; bin++) latency[bin] += slot.latency[bin];
      }
      if (requests === 0) continue;
      out[fn] = {
        requests,
        perSecond: Math.round((requests / 60) * 100) / 100,
        p50Ms: percentile(latency, requests, 0.5),
        p99Ms: percentile(latency, requests, 0.99),
      };
    }
    return out;
  }
}
