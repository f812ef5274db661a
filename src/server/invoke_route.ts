/**
 * `POST /v1/functions/:name`: JSON, or a raw body of a media type the
 * function accepts, in; JSON out, or a stream of JSON items when the handler
 * streams (Server-Sent Events when the client accepts `text/event-stream`,
 * else NDJSON). Load is shed before the body is read.
 * @module
 */
import type { Context } from "hono";
import { IsolaneError } from "../errors.ts";
import type { FunctionPool } from "../pool/function_pool.ts";
import type { FunctionOptions } from "../sdk.ts";
import { type BodyLimits, decodeContentEncoding, guardBodyRead, isJson } from "./body_guard.ts";

const encoder = new TextEncoder();
const newline = encoder.encode("\n");

/**
 * What an invocation needs of a function: its body limit, the raw media types
 * it takes, and its pool (the function's own, or, on an HTTP thread, a bridge
 * to it).
 */
export interface Invocable {
  options: Pick<FunctionOptions, "maxBodyBytes" | "raw" | "timeoutMs">;
  /** `refusal` may answer later (an HTTP thread asks the main thread when its admission board refuses). */
  pool: Pick<FunctionPool, "invoke"> & { refusal(): Admission };
}

/** Why a request would be refused now (`undefined`: admitted), known at once or once the queue's owner says. */
export type Admission = IsolaneError | undefined | Promise<IsolaneError | undefined>;

/**
 * The raw content type to pass on, `undefined` for JSON, `null` for a type the function does not take (which
 * {@link invokeFunction} answers 415).
 */
export function rawBodyType(contentType: string, fn: Invocable): string | undefined | null {
  if (isJson(contentType)) return undefined;
  const media = contentType.split(";")[0].trim().toLowerCase();
  const accepts = fn.options.raw?.accepts ?? [];
  return media && accepts.includes(media) ? contentType : null;
}

/** The raw content type to pass on, `undefined` for JSON; throws 415 for a type the function does not take. */
function bodyType(c: Context, fn: Invocable): string | undefined {
  const type = rawBodyType(c.req.header("content-type") ?? "", fn);
  if (type !== null) return type;
  const accepts = fn.options.raw?.accepts ?? [];
  throw new IsolaneError(
    "unsupported_media_type",
    accepts.length > 0
      ? `Send the body as JSON ('content-type: application/json') or as one of ${accepts.join(", ")}`
      : "Send the request body as JSON with 'content-type: application/json'",
  );
}

function frame(sse: boolean, item: Uint8Array, event?: string): Uint8Array {
  if (!sse) {
    const out = new Uint8Array(item.byteLength + 1);
    out.set(item);
    out.set(newline, item.byteLength);
    return out;
  }
  const head = encoder.encode(`${event ? `event: ${event}\n` : ""}data: `);
  const out = new Uint8Array(head.byteLength + item.byteLength + 2);
  out.set(head);
  out.set(item, head.byteLength);
  out.set(encoder.encode("\n\n"), head.byteLength + item.byteLength);
  return out;
}

/** Serves one invocation; `limits` enforces the function's body limit while the body is read. */
export async function invokeFunction(c: Context, fn: Invocable, limits: BodyLimits): Promise<Response> {
  const contentType = bodyType(c, fn);
  // Shed load before reading the body: a refusal costs almost nothing.
  let refused = fn.pool.refusal();
  if (refused instanceof Promise) refused = await refused;
  if (refused) throw refused;
  let body: ArrayBuffer | undefined;
  await guardBodyRead(
    () =>
      limits.for(fn.options.maxBodyBytes)(c, async () => {
        body = await c.req.arrayBuffer();
      }),
    fn.options.timeoutMs,
  );
  // A compressed body (Content-Encoding gzip or deflate) is inflated here, within the same limit.
  if (c.req.header("content-encoding") !== undefined) {
    const raw = new Uint8Array(body!);
    const decoded = await decodeContentEncoding(raw, c.req.header("content-encoding"), fn.options.maxBodyBytes);
    if (decoded !== raw) body = decoded.buffer as ArrayBuffer;
  }
  return await answerInvocation(fn, body!, {
    requestId: c.get("requestId"),
    signal: c.req.raw.signal,
    contentType,
    sse: (c.req.header("accept") ?? "").includes("text/event-stream"),
    respond: (output) => c.body(output, 200, { "content-type": "application/json" }),
  });
}

/** What {@link answerInvocation} needs of the request, its body read already. */
export interface InvocationRequest {
  requestId: string;
  /** The client's signal: the request's job stops when it aborts. */
  signal: AbortSignal;
  /** The raw body's content type; `undefined` for JSON. */
  contentType: string | undefined;
  /** Whether a streamed answer goes as Server-Sent Events (the client accepts `text/event-stream`), else NDJSON. */
  sse: boolean;
  /** The response of a whole JSON answer (Hono's `c.body`, or one built by hand with the same headers). */
  respond(output: ArrayBuffer): Response;
}

/**
 * Invokes `fn` on a body already read and answers: the whole output through `respond`, or a stream of JSON items
 * (status 200, `x-request-id`) from the first item a streaming handler yields; an error after that is the stream's
 * last item. Shared by the Hono route and the main thread's direct path (`app.tsx`).
 * @throws {IsolaneError} what the pool answers before any item (429, 503, 504, the function's own 4xx and 5xx).
 */
export function answerInvocation(fn: Invocable, body: ArrayBuffer, request: InvocationRequest): Promise<Response> {
  const { sse, requestId, contentType } = request;
  // One promise for the answer, settled by the result or by the first streamed item, whichever comes first.
  return new Promise<Response>((resolve, reject) => {
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    // The client went away mid-stream: what comes after (items, the end, an error) has nowhere to go.
    let cancelled = false;
    const openStream = () => {
      const stream = new ReadableStream<Uint8Array>({
        start: (ctrl) => void (controller = ctrl),
        cancel: () => void (cancelled = true),
      });
      resolve(
        new Response(stream, {
          status: 200,
          headers: {
            "content-type": sse ? "text/event-stream" : "application/x-ndjson",
            "cache-control": "no-cache",
            "x-request-id": requestId,
          },
        }),
      );
    };
    fn.pool.invoke(body, {
      signal: request.signal,
      requestId,
      ...(contentType ? { contentType } : {}),
      onItem(item) {
        if (!controller) openStream();
        if (!cancelled) controller!.enqueue(frame(sse, new Uint8Array(item)));
      },
    }).then(
      (output) => {
        if (controller) return cancelled ? undefined : controller.close();
        if (output === undefined) return reject(new IsolaneError("internal", "The stream ended without a result"));
        resolve(request.respond(output));
      },
      (error: unknown) => {
        if (!controller) return reject(error);
        if (cancelled) return;
        // Headers are gone: the error becomes the stream's last item.
        const e = error instanceof IsolaneError ? error : new IsolaneError("internal", String(error));
        controller.enqueue(frame(sse, encoder.encode(JSON.stringify({ error: e.toBody() })), "error"));
        controller.close();
      },
    );
  });
}
