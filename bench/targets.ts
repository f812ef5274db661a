/**
 * Where a report stands on the throughput targets of issues 14 and 17. Each target is met (true), not met (false) or not measured in
 * this run (null), with the figures that decide it.
 * @module
 */
import type { Point, Report, Series } from "./suite.ts";

/** One throughput target (issue 14 or 17) and where the run stands. */
export interface Target {
  id: string;
  /** The target, as the issue states it. */
  text: string;
  /** true: met; false: not met; null: not measured in this run (`figures` says why). */
  met: boolean | null;
  /** The figures that decide it, in words. */
  figures: string;
}

function series(report: Report, key: string): Series | undefined {
  for (const s of report.scenarios) {
    const found = s.series.find((x) => x.key === key);
    if (found) return found;
  }
  return undefined;
}

function at(report: Report, key: string, c: number): Point | undefined {
  return series(report, key)?.points.find((p) => p.connections === c);
}

function timingMedian(report: Report, key: string): number | null {
  for (const s of report.scenarios) {
    const t = s.timings.find((x) => x.key === key);
    if (t) return t.medianMs;
  }
  return null;
}

const f0 = (n: number) => n.toFixed(0);
const f2 = (n: number) => n.toFixed(2);
const ms = (us: number) => `${(us / 1000).toFixed(2)} ms`;

/** The best measured variant (batching off or on) at concurrency c, by `score`. */
function best(
  report: Report,
  keys: string[],
  c: number,
  score: (p: Point) => number,
): { key: string; point: Point } | undefined {
  const found = keys.map((key) => ({ key, point: at(report, key, c) })).filter((
    x,
  ): x is { key: string; point: Point } => x.point !== undefined);
  found.sort((a, b) => score(b.point) - score(a.point));
  return found[0];
}

/**
 * "; the floor of the design X×" with X = `ratio` of the floor's point (`bench/baselines/hop_floor.ts`, scenarios A and
 * B on the CPU), or "" when the report has none.
 */
function floorText(point: Point | undefined, ratio: (p: Point) => number): string {
  return point ? `; the floor of the design (hop_floor.ts) ${f2(ratio(point))}×` : "";
}

const notMeasured = (id: string, text: string, why: string): Target => ({ id, text, met: null, figures: why });

/** Evaluates every target that applies to the report's device. */
export function evaluateTargets(report: Report): Target[] {
  const targets: Target[] = [];
  const cuda = report.meta.device === "cuda";
  const wide = ["isolane:mlp8x1024", "isolane:mlp8x1024:batching"];

  if (!cuda) {
    {
      const text = "mlp at c=32 ≥ 0.5× a plain Hono echo's rps";
      const echo = at(report, "hono:echo", 32);
      const mlp = best(report, ["isolane:mlp", "isolane:mlp:batching"], 32, (p) => p.goodput);
      if (!echo || !mlp) targets.push(notMeasured("mlp-vs-echo", text, "needs scenarios A and B with c=32"));
      else {
        const ratio = mlp.point.goodput / echo.rps;
        targets.push({
          id: "mlp-vs-echo",
          text,
          met: ratio >= 0.5,
          figures: `${f2(ratio)}× (${mlp.key} ${f0(mlp.point.goodput)} 2xx/s vs. Hono echo ${f0(echo.rps)} rps)` +
            floorText(at(report, "floor:mlp:batching", 32), (p) => p.goodput / echo.rps),
        });
      }
    }
    {
      const text = "goodput at c=512 ≥ 0.9× that at c=32 (mlp)";
      const pairs = ["overload:mlp", "overload:mlp_batched"].map((key) => ({
        key,
        c32: at(report, key, 32),
        c512: at(report, key, 512),
      })).filter((x) => x.c32 && x.c512 && x.c32.goodput > 0);
      if (pairs.length === 0) targets.push(notMeasured("goodput-512", text, "needs scenario C"));
      else {
        pairs.sort((a, b) => b.c512!.goodput / b.c32!.goodput - a.c512!.goodput / a.c32!.goodput);
        const { key, c32, c512 } = pairs[0];
        const ratio = c512!.goodput / c32!.goodput;
        targets.push({
          id: "goodput-512",
          text,
          met: ratio >= 0.9,
          figures: `${f2(ratio)}× (${key}: ${f0(c512!.goodput)} 2xx/s at c=512 with ${c512!.status429} × 429, ${
            f0(c32!.goodput)
          } 2xx/s at c=32)`,
        });
      }
    }
  }
  {
    const text = "sequential echo ≤ 2.5× plain Hono";
    const hono = at(report, "hono:echo", 1);
    const isolane = at(report, "isolane:echo", 1);
    if (!hono || !isolane) targets.push(notMeasured("sequential-echo", text, "needs scenario A"));
    else {
      const ratio = isolane.p50Us / hono.p50Us;
      targets.push({
        id: "sequential-echo",
        text,
        met: ratio <= 2.5,
        figures: `${f2(ratio)}× (p50 ${f0(isolane.p50Us)} µs vs. ${f0(hono.p50Us)} µs)` +
          floorText(at(report, "floor:echo", 1), (p) => p.p50Us / hono.p50Us),
      });
    }
  }
  {
    const text = `8×1024 MLP on ${cuda ? "CUDA" : "the CPU"}: at c=1, latency ≤ 1.1× the plain Hono + ORT server`;
    const base = at(report, "hono-ort:mlp8x1024", 1);
    const mine = best(report, wide, 1, (p) => -p.p50Us);
    if (!base || !mine) targets.push(notMeasured("wide-c1-latency", text, "needs scenario B with c=1"));
    else {
      const ratio = mine.point.p50Us / base.p50Us;
      targets.push({
        id: "wide-c1-latency",
        text,
        met: ratio <= 1.1,
        figures: `${f2(ratio)}× (${mine.key} p50 ${ms(mine.point.p50Us)} vs. ${ms(base.p50Us)})` +
          floorText(at(report, "floor:mlp8x1024:batching", 1), (p) => p.p50Us / base.p50Us),
      });
    }
  }
  if (!cuda) {
    const text = "8×1024 MLP on the CPU: at c=32 with batching, ≥ 3× the plain Hono + ORT server's rps";
    const base = at(report, "hono-ort:mlp8x1024", 32);
    const batched = series(report, "isolane:mlp8x1024:batching");
    const mine = at(report, "isolane:mlp8x1024:batching", 32);
    if (batched && !batched.available) {
      targets.push(notMeasured("wide-c32-batching", text, batched.note ?? "batching not available"));
    } else if (!base || !mine) targets.push(notMeasured("wide-c32-batching", text, "needs scenario B with c=32"));
    else {
      const ratio = mine.goodput / base.rps;
      targets.push({
        id: "wide-c32-batching",
        text,
        met: ratio >= 3,
        figures: `${f2(ratio)}× (${f0(mine.goodput)} 2xx/s vs. ${f0(base.rps)} rps)` +
          floorText(at(report, "floor:mlp8x1024:batching", 32), (p) => p.goodput / base.rps),
      });
    }
  } else {
    {
      const text = "GPU, 8×1024 MLP: at c=64, ≥ 30,000 rps with p99 ≤ 15 ms";
      const mine = best(report, wide, 64, (p) => p.goodput);
      if (!mine) targets.push(notMeasured("gpu-c64", text, "needs scenario B with c=64"));
      else {
        targets.push({
          id: "gpu-c64",
          text,
          met: mine.point.goodput >= 30_000 && mine.point.p99Us <= 15_000,
          figures: `${mine.key}: ${f0(mine.point.goodput)} 2xx/s, p99 ${ms(mine.point.p99Us)}`,
        });
      }
    }
    {
      const text = "GPU, KServe v2 binary tensors, 8×1024 MLP: at c=64, ≥ 60,000 rps (issue 17)";
      const mine = at(report, "v2:binary", 64);
      if (!mine) targets.push(notMeasured("gpu-v2-binary-c64", text, "needs scenario E with c=64"));
      else {
        targets.push({
          id: "gpu-v2-binary-c64",
          text,
          met: mine.goodput >= 60_000,
          figures: `v2:binary: ${f0(mine.goodput)} 2xx/s, p99 ${ms(mine.p99Us)}`,
        });
      }
    }
    {
      const text = "GPU, 8×1024 MLP: at c=256, no loss of goodput against c=64";
      const pairs = wide.map((key) => ({ key, c64: at(report, key, 64), c256: at(report, key, 256) }))
        .filter((x) => x.c64 && x.c256);
      if (pairs.length === 0) targets.push(notMeasured("gpu-c256", text, "needs scenario B with c=64 and c=256"));
      else {
        pairs.sort((a, b) => b.c256!.goodput - a.c256!.goodput);
        const { key, c64, c256 } = pairs[0];
        targets.push({
          id: "gpu-c256",
          text,
          met: c256!.goodput >= c64!.goodput,
          figures: `${key}: ${f0(c256!.goodput)} 2xx/s at c=256 vs. ${f0(c64!.goodput)} at c=64`,
        });
      }
    }
  }
  {
    const text = "Worker host: cold start from the deploy's upload to the first answer (mlp) ≤ 120 ms";
    const m = timingMedian(report, "cold-start:mlp");
    targets.push(
      m === null
        ? notMeasured("cold-start", text, "needs scenario D")
        : { id: "cold-start", text, met: m <= 120, figures: `median ${m.toFixed(1)} ms` },
    );
  }
  {
    const text = "Worker host: isolate respawn after a timeout ≤ 100 ms";
    const m = timingMedian(report, "respawn");
    targets.push(
      m === null
        ? notMeasured("respawn", text, "needs scenario D")
        : { id: "respawn", text, met: m <= 100, figures: `median ${m.toFixed(1)} ms` },
    );
  }
  return targets;
}
