/**
 * Maps every error to a response, in one place: isolane's JSON error shape,
 * or the KServe v2 protocol's.
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { IsolaneError, statusOf } from "../errors.ts";
import { log } from "../log.ts";

function toIsolaneError(error: unknown, c: Context): IsolaneError {
  if (error instanceof IsolaneError) return error;
  if (error instanceof HTTPException && error.status === 413) {
    return new IsolaneError("body_too_large", "Request body is too large");
  }
  log("error", "unexpected error", { path: c.req.path, reason: error instanceof Error ? error.stack : String(error) });
  return new IsolaneError("internal", "Internal error; the runtime's log has the details");
}

/** Turns a thrown error into `{"error": {"code", "message", "details"?}}` with its status. */
export function errorResponse(error: unknown, c: Context): Response {
  const e = toIsolaneError(error, c);
  return c.json({ error: e.toBody() }, statusOf(e.code) as 500, e.headers);
}

/** The same mapping in the KServe v2 protocol's shape: `{"error": "<message>"}`. */
export function v2ErrorResponse(error: unknown, c: Context): Response {
  const e = toIsolaneError(error, c);
  return c.json({ error: e.message }, statusOf(e.code) as 500, e.headers);
}
