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
