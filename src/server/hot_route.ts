/**
 * The checks that let a request of a hot route (`POST /v1/functions/:name`,
 * `POST /v2/models/:name[/versions/:version]/infer`) be served ahead of
 * Hono: shared by the HTTP threads (`http_thread.ts`) and the main thread's
 * direct path (`app.tsx`), so that both take the same requests and leave the
 * same ones (and every answer those checks would give: 413, 415, 429) to
 * Hono's app, which has then read nothing of the body.
 * @module
 */

/** A hot route's path, as Hono would route it. */
export interface HotPath {
  /** The path, without the query. */
  path: string;
  /** The function's (model's) name. */
  name: string;
  /** The version a v2 request names, if any. */
  version?: string;
  /** `POST /v2/models/:name[/versions/:version]/infer`, else `POST /v1/functions/:name`. */
  v2: boolean;
}

/**
 * The hot route a POST to `url` takes; `undefined` for any other path, and for a path with escapes (Hono decodes
 * those, so Hono serves them).
 * @example
 * ```ts
 * hotPath("http://127.0.0.1:8000/v1/functions/echo?x=1"); // { path: "/v1/functions/echo", name: "echo", v2: false }
 * ```
 */
export function hotPath(url: string): HotPath | undefined {
  // As Hono finds the path (`getPath`): after the authority, up to the query.
  const start = url.indexOf("/", url.indexOf(":") + 4);
  if (start < 0) return undefined;
  const query = url.indexOf("?", start);
  const path = query < 0 ? url.slice(start) : url.slice(start, query);
  if (path.includes("%")) return undefined;
  if (path.startsWith("/v1/functions/")) {
    const name = path.slice(14);
    if (!name || name.includes("/")) return undefined;
    return { path, name, v2: false };
  }
  if (path.startsWith("/v2/models/") && path.endsWith("/infer")) {
    const parts = path.slice(11, -6).split("/");
    let version: string | undefined;
    if (parts.length === 3 && parts[1] === "versions") version = parts[2];
    else if (parts.length !== 1) return undefined;
    if (!parts[0] || version === "") return undefined;
    return { path, name: parts[0], ...(version !== undefined ? { version } : {}), v2: true };
  }
  return undefined;
}

/** What Hono's request id middleware refuses in a client's `x-request-id`. */
const requestIdRefused = /[^\w\-=]/;

/**
 * The client's `x-request-id` where Hono's request id middleware would keep it (at most 255 characters of
 * `[A-Za-z0-9_=-]`), else `undefined` (the caller then makes one).
 */
export function givenRequestId(headers: Headers): string | undefined {
  const given = headers.get("x-request-id");
  return given && given.length <= 255 && !requestIdRefused.test(given) ? given : undefined;
}

/**
 * Whether a request's body can be read without Hono's body limit: a `Content-Length` within `maxBodyBytes`, no
 * `Transfer-Encoding`, and no `Content-Encoding` but `identity` (an inflated body has its own limit).
 */
export function plainBodyWithin(headers: Headers, maxBodyBytes: number): boolean {
  const length = headers.get("content-length");
  if (length === null || !/^\d{1,15}$/.test(length) || Number(length) > maxBodyBytes) return false;
  if (headers.has("transfer-encoding")) return false;
  const encoding = headers.get("content-encoding")?.trim().toLowerCase();
  return encoding === undefined || encoding === "" || encoding === "identity";
}

// Triton's client sends infer requests with no content type; the binary extension's bodies are octet streams.
const inferTypes = /^application\/(?:(?:[\w.+-]+\+)?json|octet-stream)\s*(?:;|$)/i;

/** Whether a v2 infer request's `Content-Type` is one the protocol's route takes (none, JSON, or an octet stream). */
export function takesInferType(type: string | null | undefined): boolean {
  return type === null || type === undefined || type === "" || inferTypes.test(type);
}
