/**
 * Structured logs: one JSON object a line on stdout (errors on stderr).
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold = rank.info;

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  threshold = rank[level];
}

/** Writes one log line with a message and fields. */
export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (rank[level] < threshold) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  if (rank[level] >= rank.warn) console.error(line);
  else console.log(line);
}
