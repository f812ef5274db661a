/**
 * Maps every error to a response, in one place: isolane's JSON error shape,
 * or the KServe v2 protocol's.
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { IsolaneError, statusOf } from "../errors.ts";
import { log } from "../log.ts";

function toIsolaneError(error: unknown, path: string): IsolaneError {
  if (error instanceof IsolaneError) return error;
  if (error instanceof HTTPException && error.status === 413) {
    return new IsolaneError("body_too_large", "Request body is too large");
  }
  log("error", "unexpected error", { path, reason: error instanceof Error ? error.stack : String(error) });
  return new IsolaneError("internal", "Internal error; the runtime's log has the details");
}

/** Turns a thrown error into `{"error": {"code", "message", "details"?}}` with its status. */
export function errorResponse(error: unknown, c: Context): Response {
  const e = toIsolaneError(error, c.req.path);
  return c.json({ error: e.toBody() }, statusOf(e.code) as 500, e.headers);
}

/** The same mapping in the KServe v2 protocol's shape: `{"error": "<message>"}`. */
export function v2ErrorResponse(error: unknown, c: Context): Response {
  const e = toIsolaneError(error, c.req.path);
  return c.json({ error: e.message }, statusOf(e.code) as 500, e.headers);
}

/**
 * The same mapping without a Hono context, for the routes an HTTP thread serves ahead of Hono: isolane's shape, or
 * with `v2` the protocol's; the response carries `x-request-id` as the request id middleware sets it.
 * @example
 * ```ts
 * errorResponseOf(new IsolaneError("not_found", "No such function"), { path: "/v1/functions/x", requestId: "r1" });
 * ```
 */
export function errorResponseOf(
  error: unknown,
  { path, requestId, v2 = false }: { path: string; requestId: string; v2?: boolean },
): Response {
  const e = toIsolaneError(error, path);
  const headers = new Headers(e.headers);
  headers.set("x-request-id", requestId);
  headers.set("content-type", "application/json");
  return new Response(JSON.stringify(v2 ? { error: e.message } : { error: e.toBody() }), {
    status: statusOf(e.code),
    headers,
  });
}
