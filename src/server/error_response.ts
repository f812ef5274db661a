/**
 * Maps every error to the one JSON error shape, in one place.
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { IsolaneError, statusOf } from "../errors.ts";
import { log } from "../log.ts";

/** Turns a thrown error into `{"error": {"code", "message", "details"?}}` with its status. */
export function errorResponse(error: unknown, c: Context): Response {
  let e: IsolaneError;
  if (error instanceof IsolaneError) {
    e = error;
  } else if (error instanceof HTTPException && error.status === 413) {
    e = new IsolaneError("body_too_large", "Request body is too large");
  } else {
    log("error", "unexpected error", {
      path: c.req.path,
      reason: error instanceof Error ? error.stack : String(error),
    });
    e = new IsolaneError("internal", "Internal error; the runtime's log has the details");
  }
  return c.json({ error: e.toBody() }, statusOf(e.code) as 500, e.headers);
}
