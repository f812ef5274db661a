/**
 * What every invocation route checks before reading a body: JSON content,
 * and the function's own size limit.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
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

/**
 * Runs what reads the request body (a read, or a middleware that reads it
 * itself, such as Hono's body limit on a chunked body); a connection error
 * while reading it is the client's fault and becomes 400 `invalid_input`
 * (not 500). With `withinMs`, a body that has not arrived by then is answered
 * 408 `request_timeout` (a client that stops sending must not hold a request
 * open past the function's own limit). Every other error passes through
 * unchanged.
 */
export async function guardBodyRead<T>(read: () => Promise<T>, withinMs?: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const reading = read();
    if (withinMs === undefined) return await reading;
    // The read may still fail after the deadline answered: nobody waits for it then.
    reading.catch(() => {});
    return await Promise.race([
      reading,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new IsolaneError(
                "request_timeout",
                `The request body did not arrive within ${withinMs} ms (the function's timeoutMs); send it whole`,
              ),
            ),
          withinMs,
        );
      }),
    ]);
  } catch (error) {
    if (connectionErrors.some((type) => error instanceof type)) {
      throw new IsolaneError(
        "invalid_input",
        "Request body ended before it was complete: the client closed the connection or sent fewer bytes than its content-length",
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
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
