/**
 * Structured logs: one JSON object a line on stdout (errors on stderr).
 * A serving process defers request logs ({@link bufferLogs},
 * {@link logDeferred}): they are kept as entries (level, message, fields,
 * time) and turned into lines and written together at most
 * {@link flushIntervalMs} later (or sooner, once 512 are waiting), so that no
 * request waits for its own log line, not even for building it, and a burst
 * of requests costs one write; every other line is written at once, after the
 * deferred ones.
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold = rank.info;
const encoder = new TextEncoder();
let buffering = false;
/** Deferred entries, oldest first; their fields are the caller's objects, which it no longer changes. */
let pending: { level: LogLevel; msg: string; fields: Record<string, unknown>; at: number }[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;
/** The ISO time of the last line, and the millisecond it is for (one `toISOString` a millisecond, not a line). */
let lastMs = NaN;
let lastIso = "";

/**
 * How long a deferred line may wait before it is written, in milliseconds. One timer a turn of the event loop cost a
 * request at c=1 about 7 µs of the main thread; one every 10 ms costs nothing measurable. Building the line (6–9 µs)
 * moved here too: at c=1 the main thread does it while it would wait for an isolate anyway.
 */
export const flushIntervalMs = 10;
const flushEntries = 512;

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  threshold = rank[level];
}

/** Whether a line of `level` is written now (at or above the level set with {@link setLogLevel}). */
export function isLogged(level: LogLevel): boolean {
  return rank[level] >= threshold;
}

/**
 * From now on, {@link logDeferred} lines are written together at most {@link flushIntervalMs} after the first of
 * them. Call {@link flushLogs} before the process or thread ends; a process killed outright loses at most those
 * lines.
 */
export function bufferLogs(): void {
  buffering = true;
}

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

/** Writes the buffered lines now. */
export function flushLogs(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  const entries = pending;
  pending = [];
  let o = "";
  let e = "";
  for (const { level, msg, fields, at } of entries) {
    const { line, toErr } = lineOf(level, msg, fields, at);
    if (toErr) e += line + "\n";
    else o += line + "\n";
  }
  if (o) writeAll(Deno.stdout, o);
  if (e) writeAll(Deno.stderr, e);
}

/** The rest of a line after its first keys, from the fields' own JSON (`{}` or `{"a":1,...}`). */
function tail(json: string): string {
  return json.length === 2 ? "}" : `,${json.slice(1)}`;
}

/** The line of one entry logged at `now` (ms since the epoch), and whether it goes to stderr (warn and error) or stdout. */
export function lineOf(
  level: LogLevel,
  msg: string,
  fields: Record<string, unknown>,
  now: number = Date.now(),
): { line: string; toErr: boolean } {
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  // The fields' JSON after the three first keys, without a spread copy of them (a request line's largest cost); a
  // field named like one of those keys replaces it in place, as the spread did.
  const line = "time" in fields || "level" in fields || "msg" in fields
    ? JSON.stringify({ time: lastIso, level, msg, ...fields })
    : `{"time":"${lastIso}","level":"${level}","msg":${JSON.stringify(msg)}${tail(JSON.stringify(fields))}`;
  return { line, toErr: rank[level] >= rank.warn };
}

/** Writes one log line with a message and fields, after any deferred lines (so the log keeps their order). */
export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (rank[level] < threshold) return;
  if (pending.length > 0) flushLogs();
  const { line, toErr } = lineOf(level, msg, fields);
  if (toErr) console.error(line);
  else console.log(line);
}

/**
 * Writes a log line that may wait: with {@link bufferLogs}, it is written at most {@link flushIntervalMs} later,
 * with the other lines deferred meanwhile, so that a request does not wait for its own log line. Request logs use
 * it; every other line is written at once by {@link log}, after these.
 */
export function logDeferred(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (!buffering) return log(level, msg, fields);
  if (rank[level] < threshold) return;
  pending.push({ level, msg, fields, at: Date.now() });
  if (pending.length >= flushEntries) flushLogs();
  else flushTimer ??= setTimeout(flushLogs, flushIntervalMs);
}
