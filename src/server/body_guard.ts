/**
 * What every invocation route checks before reading a body: JSON content,
 * and the function's own size limit.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { gunzip, inflate } from "node:zlib";
import { IsolaneError } from "../errors.ts";

const jsonType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Whether a content type is JSON (`application/json`, `application/*+json`). */
export function isJson(contentType: string): boolean {
  return jsonType.test(contentType);
}

/**
 * Connection errors met while reading a request body: the client closed its
 * side or the connection before sending all it announced (`content-length`,
 * or a chunked body without its last chunk).
 */
const connectionErrors = [
  Deno.errors.BadResource,
  Deno.errors.Interrupted,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.UnexpectedEof,
  Deno.errors.Http,
];

/** Options of {@link guardBodyRead}. */
export interface BodyReadOptions {
  /** What sets `withinMs`, as the 408's message names it; default "the function's timeoutMs". */
  deadlineName?: string;
}

/**
 * Runs what reads the request body (a read, or a middleware that reads it
 * itself, such as Hono's body limit on a chunked body); a connection error
 * while reading it is the client's fault and becomes 400 `invalid_input`
 * (not 500). With `withinMs`, a body that has not arrived by then is answered
 * 408 `request_timeout` (a client that stops sending must not hold a request
 * open past the route's own limit: the function's `timeoutMs`, or for the
 * admin API `ISOLANE_UPLOAD_TIMEOUT_MS`, named by `deadlineName`). Every other
 * error passes through unchanged.
 */
export async function guardBodyRead<T>(
  read: () => Promise<T>,
  withinMs?: number,
  options: BodyReadOptions = {},
): Promise<T> {
  try {
    const reading = read();
    if (withinMs === undefined) return await reading;
    // The read may still fail after the deadline answered: nobody waits for it then.
    reading.catch(() => {});
    return await withinDeadline(reading, withinMs, options.deadlineName ?? "the function's timeoutMs");
  } catch (error) {
    if (connectionErrors.some((type) => error instanceof type)) {
      throw new IsolaneError(
        "invalid_input",
        "Request body ended before it was complete: the client closed the connection or sent fewer bytes than its content-length",
      );
    }
    throw error;
  }
}

/**
 * A body read that a deadline waits on. `reject` is dropped once the read settles: V8's young generation collector
 * keeps what the old tables of {@link watched} point to until the next full collection, and the request's whole
 * handler waits on that promise (docs/cpu-mlp.md, "The main thread's garbage").
 */
interface Watched {
  deadlineAt: number;
  withinMs: number;
  deadlineName: string;
  reject: ((error: IsolaneError) => void) | undefined;
}

/**
 * Body reads in progress with a deadline. One timer, for the earliest deadline, serves them all: a timer per
 * request (set and cleared) cost the main thread about 10 µs a request. Unref'd, so it never keeps a process alive.
 */
const watched = new Set<Watched>();
let watchTimer: ReturnType<typeof setTimeout> | undefined;
let watchAt = Infinity;

function armWatch(at: number): void {
  clearTimeout(watchTimer);
  watchAt = at;
  watchTimer = setTimeout(expireReads, Math.max(0, at - performance.now()));
  Deno.unrefTimer(watchTimer as unknown as number);
}

function expireReads(): void {
  watchTimer = undefined;
  watchAt = Infinity;
  const now = performance.now();
  let next = Infinity;
  for (const read of watched) {
    if (read.deadlineAt > now) {
      next = Math.min(next, read.deadlineAt);
      continue;
    }
    watched.delete(read);
    const reject = read.reject!;
    read.reject = undefined;
    reject(
      new IsolaneError(
        "request_timeout",
        `The request body did not arrive within ${read.withinMs} ms (${read.deadlineName}); send it whole`,
      ),
    );
  }
  if (next < Infinity) armWatch(next);
}

function withinDeadline<T>(reading: Promise<T>, withinMs: number, deadlineName: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const read: Watched = { deadlineAt: performance.now() + withinMs, withinMs, deadlineName, reject };
    watched.add(read);
    // A timer already armed for an earlier deadline fires first and re-arms for this one.
    if (read.deadlineAt < watchAt) armWatch(read.deadlineAt);
    reading.then(
      (value) => {
        watched.delete(read);
        read.reject = undefined;
        resolve(value);
      },
      (error) => {
        watched.delete(read);
        read.reject = undefined;
        reject(error);
      },
    );
  });
}

/** Hono body limits by size, made once each (functions declare their own limit). */
export class BodyLimits {
  #bySize = new Map<number, MiddlewareHandler>();

  /** The middleware that refuses bodies over `maxSize` bytes with 413. */
  for(maxSize: number): MiddlewareHandler {
    let limit = this.#bySize.get(maxSize);
    if (!limit) {
      limit = bodyLimit({
        maxSize,
        onError: () => {
          throw new IsolaneError(
            "body_too_large",
            `Request body is larger than this function's limit of ${maxSize} bytes`,
          );
        },
      });
      this.#bySize.set(maxSize, limit);
    }
    return limit;
  }
}

/**
 * A request body decoded per its `Content-Encoding`: as it came for none or `identity`; inflated for `gzip` and
 * `deflate` (Triton's client compresses that way), at most `maxBytes` once inflated. A gzip body of several members
 * (RFC 1952 allows it: `cat a.gz b.gz`, or a client that flushes members) inflates whole; data after the last member
 * that is no member, data after the end of a deflate stream, or a stream cut short, is refused.
 * @throws {IsolaneError} `unsupported_media_type` for another encoding, `body_too_large` past `maxBytes` inflated,
 * `invalid_input` for data that does not inflate whole.
 * @returns The inflated body, alone in its `ArrayBuffer` (`raw` itself when it is not encoded).
 */
export async function decodeContentEncoding(
  raw: Uint8Array,
  contentEncoding: string | undefined | null,
  maxBytes: number,
): Promise<Uint8Array> {
  const encoding = contentEncoding?.trim().toLowerCase();
  if (encoding === undefined || encoding === "" || encoding === "identity") return raw;
  if (encoding !== "gzip" && encoding !== "deflate") {
    throw new IsolaneError(
      "unsupported_media_type",
      // The client's value is echoed at most 64 characters long: a header may be kilobytes.
      `Content-Encoding '${encoding.length > 64 ? `${encoding.slice(0, 64)}…` : encoding}' is not supported; ` +
        "use gzip or deflate",
    );
  }
  // node:zlib, not DecompressionStream: Deno's "gzip" stream failed on a second member ("failed to write whole
  // buffer", answered as invalid data), and its "deflate" stream took a body cut short as it was. `maxOutputLength`
  // stops inflating at the limit: given whole to a stream, a 930 KB gzip bomb was inflated to 900 MB in one call,
  // holding its thread 2.5-6 s, before the limit was checked (here a 200 MiB bomb stops in milliseconds).
  const run = encoding === "gzip" ? gunzip : inflate;
  try {
    // `info` hands back the engine too: its `bytesWritten` is the input it consumed. zlib's inflate stops at the end
    // of its stream and node:zlib drops what follows (a gzip body's next member is inflated, other data refused):
    // bytes after a deflate stream were taken as a valid body.
    const { body, consumed } = await new Promise<{ body: Uint8Array; consumed: number }>((resolve, reject) =>
      run(raw, { maxOutputLength: maxBytes, info: true }, (error, out) => {
        if (error) return reject(error);
        const { buffer, engine } = out as unknown as { buffer: Uint8Array; engine: { bytesWritten: number } };
        resolve({ body: buffer, consumed: engine.bytesWritten });
      })
    );
    if (consumed !== raw.byteLength) throw new Error(`${raw.byteLength - consumed} bytes after the ${encoding} data`);
    // Callers take its `buffer` as the body: a Buffer that is a view of a larger one is copied to one of its own.
    if (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) {
      return new Uint8Array(body.buffer, 0, body.byteLength);
    }
    return new Uint8Array(body);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new IsolaneError(
        "body_too_large",
        `Decompressed request body is larger than this function's limit of ${maxBytes} bytes`,
      );
    }
    throw new IsolaneError("invalid_input", `Request body is not valid ${encoding} data`);
  }
}
