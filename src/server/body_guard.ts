/**
 * What every invocation route checks before reading a body: JSON content,
 * and the function's own size limit.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { IsolaneError } from "../errors.ts";

const jsonType = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Throws 415 unless the request says it is JSON. */
export function requireJson(c: Context): void {
  if (!jsonType.test(c.req.header("content-type") ?? "")) {
    throw new IsolaneError(
      "unsupported_media_type",
      "Send the request body as JSON with 'content-type: application/json'",
    );
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
