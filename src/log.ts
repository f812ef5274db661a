/**
 * Structured logs: one JSON object a line on stdout (errors on stderr).
 * A serving process buffers them ({@link bufferLogs}): the lines of one turn
 * of the event loop are written together on the next, so that no request
 * waits for its own log line to be written.
 * @module
 */

/** Log levels in increasing severity. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold = rank.info;
const encoder = new TextEncoder();
let buffering = false;
let out = "";
let err = "";
let flushTimer: ReturnType<typeof setTimeout> | undefined;

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  threshold = rank[level];
}

/**
 * From now on, lines are written once per turn of the event loop (a timer of 0 ms), not as they are logged. Call
 * {@link flushLogs} before the process or thread ends; a process killed outright loses at most that turn's lines.
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
  const [o, e] = [out, err];
  out = err = "";
  if (o) writeAll(Deno.stdout, o);
  if (e) writeAll(Deno.stderr, e);
}

/** Writes one log line with a message and fields. */
export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (rank[level] < threshold) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  if (!buffering) {
    if (rank[level] >= rank.warn) console.error(line);
    else console.log(line);
    return;
  }
  if (rank[level] >= rank.warn) err += line + "\n";
  else out += line + "\n";
  flushTimer ??= setTimeout(flushLogs, 0);
}
