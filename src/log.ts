/**
 * Structured logs: one JSON object a line on stdout (warnings and errors on
 * stderr). Lines for stdout are buffered and written together every few
 * milliseconds, so a busy server makes one write per batch of requests
 * instead of one per request; warnings and errors are written at once, and
 * everything buffered is written before the process exits.
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold = rank.info;
const encoder = new TextEncoder();
/** How long a line may wait in the buffer, in milliseconds. */
const flushAfterMs = 5;
let pending: string[] = [];
let timer: ReturnType<typeof setTimeout> | undefined;

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  threshold = rank[level];
}

function writeAll(stream: typeof Deno.stdout, text: string): void {
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.length;) at += stream.writeSync(bytes.subarray(at));
}

/** Writes every buffered line now. */
export function flushLogs(): void {
  clearTimeout(timer);
  timer = undefined;
  if (pending.length === 0) return;
  const lines = pending;
  pending = [];
  writeAll(Deno.stdout, lines.join("\n") + "\n");
}

globalThis.addEventListener("unload", flushLogs);

/** Writes one log line with a message and fields. */
export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (rank[level] < threshold) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  if (rank[level] >= rank.warn) {
    // Keep the order of stdout and stderr lines as they happened.
    flushLogs();
    writeAll(Deno.stderr, line + "\n");
    return;
  }
  pending.push(line);
  timer ??= setTimeout(flushLogs, flushAfterMs);
}
