/**
 * A token bucket per function over the lines its code writes with `console` (the "function log" lines), as Supabase
 * and Deno Deploy cap a function's log volume: a function that logs in a tight loop would otherwise fill the runtime's
 * output (and the disk or collector behind it), one line per call. Lines past the limit are dropped and counted; one
 * warning per function ("function log lines dropped", with the count) says so at most once a second, and at once when
 * the function's isolates stop or the runtime does ({@link flushFunctionLogDrops}).
 * @module
 */
import { isLogged, log, type LogLevel } from "../log.ts";

/** The limit of each function's log lines. */
export interface FunctionLogLimit {
  /** Lines per second a function may log, on average (the bucket's refill rate). */
  linesPerSecond: number;
  /** Lines it may log at once, above that rate (the bucket's size). */
  burst: number;
}

/** The defaults (`ISOLANE_LOG_RATE`, `ISOLANE_LOG_BURST`). */
export const defaultFunctionLogLimit: FunctionLogLimit = Object.freeze({ linesPerSecond: 100, burst: 1000 });

/** How long dropped lines are counted before the warning that says how many, in milliseconds. */
const noticeMs = 1000;

interface Bucket {
  tokens: number;
  /** `performance.now()` of the last refill. */
  at: number;
  dropped: number;
  /** The most severe level among the lines dropped since the last notice. */
  droppedLevel: LogLevel;
  notice: ReturnType<typeof setTimeout> | undefined;
}

let limit: FunctionLogLimit = defaultFunctionLogLimit;
const buckets = new Map<string, Bucket>();

/** Sets the limit of every function's log lines (once, at start-up, from the configuration). */
export function setFunctionLogLimit(next: FunctionLogLimit): void {
  limit = { ...next };
  buckets.clear();
}

/**
 * Whether function `name` may log one more line of `level` now; a line refused is counted, and the count logged
 * ("function log lines dropped") within a second, at `warn` or, when a dropped line was more severe or `warn` lines are
 * not written, `error`: a dropped line is never dropped unsaid. Call it only for lines the log level lets through.
 *
 * @example
 * ```ts
 * if (admitFunctionLog("ocr")) log("info", "function log", { function: "ocr", text });
 * ```
 */
export function admitFunctionLog(name: string, level: LogLevel = "info"): boolean {
  const now = performance.now();
  let bucket = buckets.get(name);
  if (!bucket) {
    bucket = { tokens: limit.burst, at: now, dropped: 0, droppedLevel: "info", notice: undefined };
    buckets.set(name, bucket);
  } else {
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.linesPerSecond);
    bucket.at = now;
  }
  if (bucket.tokens >= 1) {
    bucket.tokens--;
    return true;
  }
  bucket.dropped++;
  if (level === "error") bucket.droppedLevel = "error";
  if (bucket.notice === undefined) {
    const dropping = bucket;
    dropping.notice = setTimeout(function noticeDropped() {
      dropping.notice = undefined;
      sayDropped(name, dropping);
    }, noticeMs);
    Deno.unrefTimer(dropping.notice);
  }
  return false;
}

/**
 * Logs now the count of function `name`'s lines dropped and not yet said (every function's without a name), rather
 * than at the end of its second: called once a function's isolates have stopped (it is removed or replaced) and as the
 * runtime stops, when the notice's timer would fire too late or never (it is unref'd: it keeps no process alive).
 */
export function flushFunctionLogDrops(name?: string): void {
  for (const [key, bucket] of name === undefined ? buckets : [[name, buckets.get(name)] as const]) {
    if (bucket?.notice === undefined) continue;
    clearTimeout(bucket.notice);
    bucket.notice = undefined;
    sayDropped(key, bucket);
  }
}

function sayDropped(name: string, bucket: Bucket): void {
  const severe = bucket.droppedLevel === "error" || !isLogged("warn");
  log(severe ? "error" : "warn", "function log lines dropped", {
    function: name,
    dropped: bucket.dropped,
    reason: `More than ${limit.linesPerSecond} lines a second (bursts of ${limit.burst}); ` +
      "set ISOLANE_LOG_RATE and ISOLANE_LOG_BURST to change the limit",
  });
  bucket.dropped = 0;
  bucket.droppedLevel = "info";
}
