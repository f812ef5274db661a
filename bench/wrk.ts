/**
 * Runs Debian's `wrk` (closed loop, 127.0.0.1 only) with `bench/wrk/report.lua` and reads its JSON summary.
 * `wrk` is taken from PATH, else from `.gpu/wrk/` as `scripts/stage_wrk.sh` unpacks it for a machine without a
 * package registry.
 * @module
 */
import { fileURLToPath } from "node:url";
import { availableParallelism } from "node:os";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const luaScript = fileURLToPath(new URL("./wrk/report.lua", import.meta.url));

/** How to start `wrk`: its path and the environment it needs. */
export interface WrkBinary {
  path: string;
  env: Record<string, string>;
}

async function runs(path: string, env: Record<string, string>): Promise<boolean> {
  try {
    const { stdout, stderr } = await new Deno.Command(path, { args: ["-v"], env, stdout: "piped", stderr: "piped" })
      .output();
    return /^wrk /.test(new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr));
  } catch {
    return false;
  }
}

/** Finds a working `wrk`: on PATH, else the staged copy in `.gpu/wrk/`; null when there is none. */
export async function findWrk(): Promise<WrkBinary | null> {
  if (await runs("wrk", {})) return { path: "wrk", env: {} };
  const staged = `${repoRoot}.gpu/wrk/usr`;
  const env = { LD_LIBRARY_PATH: `${staged}/lib/x86_64-linux-gnu:${Deno.env.get("LD_LIBRARY_PATH") ?? ""}` };
  if (await runs(`${staged}/bin/wrk`, env)) return { path: `${staged}/bin/wrk`, env };
  return null;
}

/** One closed-loop load run. */
export interface LoadOptions {
  url: string;
  /** File whose bytes are POSTed on every request. */
  bodyFile: string;
  contentType?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Open connections, each with one request in flight (the concurrency). */
  connections: number;
  /** Seconds the run lasts at most. */
  durationS: number;
  /** Answers after which the run ends (within wrk's 0.1 s stop interval); 0: bounded by time only. */
  maxRequests?: number;
  /** Seconds after which wrk counts a request as timed out. */
  timeoutS?: number;
  /** wrk threads; default min(connections, cores). */
  threads?: number;
}

/** What a load run measured. Latencies in microseconds, over every answer (any status). */
export interface LoadResult {
  connections: number;
  threads: number;
  seconds: number;
  /** Answers received (any status). */
  requests: number;
  /** Answers per second. */
  rps: number;
  /** 2xx answers per second. */
  goodput: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  meanUs: number;
  maxUs: number;
  /** Non-2xx answers plus socket errors (connect, read, write, timeout). */
  errors: number;
  /** 429 answers (counted among `errors`). */
  status429: number;
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

interface WrkJson {
  durationUs: number;
  requests: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: { min: number; max: number; mean: number; percentiles: Record<string, number> };
  statuses: Record<string, number> | unknown[];
}

/**
 * Runs wrk once and returns its figures.
 * @throws Error when wrk fails or prints no summary.
 */
export async function runLoad(wrk: WrkBinary, options: LoadOptions): Promise<LoadResult> {
  const { connections, durationS, maxRequests = 0, timeoutS = 10 } = options;
  if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(options.url)) {
    throw new Error(`Load runs only against 127.0.0.1, not ${options.url}`);
  }
  const threads = Math.max(1, Math.min(options.threads ?? availableParallelism(), connections));
  const share = maxRequests > 0 ? Math.max(1, Math.ceil(maxRequests / threads)) : 0;
  const headers = Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`);
  const output = await new Deno.Command(wrk.path, {
    args: [
      "-t",
      String(threads),
      "-c",
      String(connections),
      "-d",
      `${Math.max(1, Math.round(durationS))}s`,
      "--timeout",
      `${timeoutS}s`,
      "-s",
      luaScript,
      options.url,
      "--",
      options.bodyFile,
      options.contentType ?? "application/json",
      String(maxRequests),
      ...headers,
    ],
    env: { ...wrk.env, WRK_THREAD_SHARE: String(share) },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const line = text.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!output.success || !line) {
    throw new Error(`wrk failed (exit ${output.code}): ${text}${new TextDecoder().decode(output.stderr)}`);
  }
  const json = JSON.parse(line.slice("WRK_JSON ".length)) as WrkJson;
  // An empty Lua table is written as {} but an untouched one may come back as []: both mean no answers.
  const statuses = Array.isArray(json.statuses) ? {} : json.statuses;
  const seconds = json.durationUs / 1e6;
  const ok = Object.entries(statuses).filter(([code]) => code.startsWith("2")).reduce((n, [, v]) => n + v, 0);
  const non2xx = Object.values(statuses).reduce((n, v) => n + v, 0) - ok;
  const { connect, read, write, timeout } = json.errors;
  const p = json.latencyUs.percentiles;
  return {
    connections,
    threads,
    seconds,
    requests: json.requests,
    rps: json.requests / seconds,
    goodput: ok / seconds,
    p50Us: p["50"],
    p90Us: p["90"],
    p99Us: p["99"],
    meanUs: json.latencyUs.mean,
    maxUs: json.latencyUs.max,
    errors: non2xx + connect + read + write + timeout,
    status429: statuses["429"] ?? 0,
    statuses,
    socketErrors: { connect, read, write, timeout },
  };
}
