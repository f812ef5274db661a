/**
 * The HTTP API. Routes talk to the registry and pools only; they never touch
 * ONNX Runtime or native code.
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { requestId } from "hono/request-id";
import { IsolaneError } from "../errors.ts";
import { logDeferred } from "../log.ts";
import type { Registry } from "../registry/registry.ts";
import type { FunctionVersion } from "../registry/load_function.ts";
import { errorResponse, errorResponseOf } from "./error_response.ts";
import { functionInfo } from "./function_info.ts";
import { BodyLimits, guardBodyRead } from "./body_guard.ts";
import { answerInvocation, type Invocable, invokeFunction, rawBodyType } from "./invoke_route.ts";
import { givenRequestId, hotPath, plainBodyWithin, takesInferType } from "./hot_route.ts";
import { answerInferRequest, inferenceHeaderLength, inferResponseHeaders } from "./kserve.ts";
import { kserveRoutes } from "./kserve_routes.ts";
import { type DeviceSources, devicesReport } from "./devices_report.ts";
import type { StoreSync } from "../store/sync.ts";
import type { AdminMode } from "./admin_auth.ts";
import { adminRoutes } from "./admin_routes.ts";
import type { Metrics } from "./metrics.ts";
import { openApiDocument } from "./openapi.ts";
import { docsRoutes } from "./docs_page.ts";
import { statusRoutes } from "./status_page.tsx";
import type { InvocationKeys } from "../registry/invocation_keys.ts";
import { authSwapped, functionCors, type InvocationAuth } from "./invocation_auth.ts";
import { keyRoutes } from "./key_routes.ts";

/** What the app serves besides the registry. */
export interface AppOptions {
  metrics: Metrics;
  devices: DeviceSources;
  /** The function store as this instance follows it (deploys, readiness). */
  sync: StoreSync;
  admin: AdminMode;
  maxBundleBytes: number;
  /** How long an admin request's body may take to arrive (`ISOLANE_UPLOAD_TIMEOUT_MS`). */
  uploadTimeoutMs: number;
  /** Invocation keys and the check of functions' `auth`. */
  keys: InvocationKeys;
  invocationAuth: InvocationAuth;
}

/** The runtime's version, as the API and OpenAPI document report it. */
export const runtimeVersion = "0.1.0";

/**
 * Request ids for requests that bring none: UUID-shaped (version 4), a random prefix drawn once per process and a
 * counter in the last group, unique within the process and, by the prefix, across processes. A `crypto.randomUUID()`
 * a request cost the main thread a call into the runtime's random source each time.
 */
const requestIdPrefix = crypto.randomUUID().slice(0, 24);
let requestCounter = 0;

function nextRequestId(): string {
  requestCounter = (requestCounter + 1) % 2 ** 48;
  return requestIdPrefix + requestCounter.toString(16).padStart(12, "0");
}

function requestLog(): MiddlewareHandler {
  return async function requestLog(c, next) {
    const started = performance.now();
    await next();
    logDeferred("info", "request", {
      id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  };
}

/**
 * Builds the Hono app over a registry.
 *
 * @example
 * ```ts
 * Deno.serve(createApp(registry, { devices, sync, admin: { kind: "off" }, maxBundleBytes, uploadTimeoutMs }).fetch);
 * ```
 */
export function createApp(registry: Registry, options: AppOptions): Hono {
  const { devices } = options;
  const app = new Hono();
  const limits = new BodyLimits();
  app.use(requestId({ generator: nextRequestId }));
  app.use(requestLog());
  app.use(options.metrics.middleware);
  app.onError(errorResponse);
  app.notFound((c) => errorResponse(new IsolaneError("not_found", `No route ${c.req.method} ${c.req.path}`), c));

  const guard = options.invocationAuth.middleware(registry);
  const corsFor = functionCors(registry);
  app.route("/", kserveRoutes(registry, { limits, version: runtimeVersion, cors: corsFor, auth: guard }));
  app.get("/openapi.json", (c) => c.json(openApiDocument(registry, { version: runtimeVersion })));
  app.route("/", docsRoutes());
  app.get("/metrics", async (c) => {
    const { contentType, body } = await options.metrics.render();
    return c.body(body, 200, { "content-type": contentType });
  });
  const status = {
    registry,
    metrics: options.metrics,
    devices: options.devices,
    version: runtimeVersion,
    startedAt: new Date(),
  };
  app.route("/", statusRoutes(status));
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => {
    const functions = Object.fromEntries(registry.list().map((e) => [e.name, registry.status(e)]));
    const { ready: current, store, behind } = options.sync.readiness();
    const ready = registry.allReady() && current;
    return c.json({ ready, functions, store, ...(current ? {} : { behind }) }, ready ? 200 : 503);
  });

  app.route(
    "/",
    adminRoutes({
      registry,
      sync: options.sync,
      mode: options.admin,
      maxBundleBytes: options.maxBundleBytes,
      uploadTimeoutMs: options.uploadTimeoutMs,
      keys: options.keys,
    }),
  );
  app.route("/", keyRoutes({ registry, keys: options.keys, mode: options.admin }));
  app.get("/v1/devices", (c) => c.json(devicesReport(devices, registry)));
  app.get("/v1/functions", (c) => c.json({ functions: registry.list().map((e) => functionInfo(registry, e)) }));
  app.get("/v1/functions/:name", (c) => c.json(functionInfo(registry, registry.require(c.req.param("name")))));

  // A preflight of a function without `cors` gets no CORS headers, so browsers refuse the cross-origin call.
  app.options("/v1/functions/:name", corsFor, (c) => {
    registry.require(c.req.param("name"));
    return c.body(null, 204, { allow: "GET, POST, PUT, DELETE, OPTIONS" });
  });
  app.post(
    "/v1/functions/:name",
    corsFor,
    guard,
    (c) => {
      const name = c.req.param("name");
      const fn = registry.serving(name);
      let invocable = invocables.get(fn);
      if (!invocable) invocables.set(fn, invocable = invocableOf(name, fn));
      return invokeFunction(c, invocable, limits);
    },
  );

  /** One per version (made on its first request, not on every request): what the route invokes. */
  const invocables = new WeakMap<FunctionVersion, Invocable>();
  function invocableOf(name: string, fn: FunctionVersion): Invocable {
    // A version swapped out while the body arrived drains without taking new work (its pool would answer 503
    // "unloaded"): the body goes to the version that serves once it is whole, as if it had come a moment later.
    const pool: Invocable["pool"] = {
      refusal: () => fn.pool.refusal(),
      invoke: (body, o) => {
        const now = registry.serving(name);
        if (now === fn) return fn.pool.invoke(body, o);
        // Admitted under this version's auth: the new version's own check never ran.
        const swapped = authSwapped(name, fn.manifest.options.auth, now.manifest.options.auth);
        if (swapped) return Promise.reject(swapped);
        if (body.byteLength > now.manifest.options.maxBodyBytes) {
          return Promise.reject(
            new IsolaneError(
              "body_too_large",
              `Request body is larger than this function's limit of ${now.manifest.options.maxBodyBytes} bytes`,
            ),
          );
        }
        return now.pool.invoke(body, o);
      },
    };
    return { options: fn.manifest.options, pool };
  }

  /**
   * The hot routes ahead of Hono: `POST /v1/functions/:name`, and `POST /v2/models/:name[/versions/:version]/infer`
   * of a function with a tensor signature (at its serving version), for a function that serves and takes no auth and
   * no CORS, and a request whose checks before the body all pass (`hot_route.ts`: a path without escapes, a
   * `Content-Length` within the limit, no `Transfer-Encoding` or `Content-Encoding`; a content type the route takes;
   * no refusal). Anything else goes to Hono, whose answers (401, 404, 413, 415, 429, 503, CORS) have then read
   * nothing of the body. It answers as the Hono routes and their middleware do: the same request id, body deadline,
   * answer (whole or streamed), error shape (`/v2`'s own), metrics record and request log line. Hono's middleware,
   * router and context cost a lone request here about as much as a whole plain Hono request (docs/hop.md, "Fifth
   * round").
   */
  function direct(request: Request): Promise<Response> | undefined {
    if (request.method !== "POST") return undefined;
    const hot = hotPath(request.url);
    if (!hot) return undefined;
    const { name, path } = hot;
    const fn = registry.get(name)?.current;
    if (!fn) return undefined;
    const { options: fnOptions } = fn.manifest;
    if (fnOptions.cors || fnOptions.auth !== "none") return undefined;
    const headers = request.headers;
    if (!plainBodyWithin(headers, fnOptions.maxBodyBytes)) return undefined;
    if (hot.v2) {
      if (!fnOptions.signature || !takesInferType(headers.get("content-type"))) return undefined;
      if (hot.version !== undefined && hot.version !== String(fn.version)) return undefined;
      if (fn.pool.refusal() !== undefined) return undefined;
      return serveDirectInfer(request, fn, { name, path, pinned: hot.version !== undefined });
    }
    let invocable = invocables.get(fn);
    if (!invocable) invocables.set(fn, invocable = invocableOf(name, fn));
    const contentType = rawBodyType(headers.get("content-type") ?? "", invocable);
    if (contentType === null) return undefined;
    const refused = invocable.pool.refusal();
    if (refused !== undefined) return undefined;
    return serveDirect(request, invocable, { name, path, contentType });
  }

  /** Counts and logs an answer of the direct path as the app's middleware would. */
  function served(
    { requestId, path, started, status, fn }: {
      requestId: string;
      path: string;
      started: number;
      status: number;
      fn: string;
    },
  ): void {
    const ms = performance.now() - started;
    options.metrics.record(fn, status, ms);
    logDeferred("info", "request", { id: requestId, method: "POST", path, status, ms: Math.round(ms * 10) / 10 });
  }

  /**
   * A v2 infer request, as `serveInfer` (`kserve_routes.ts`) answers it: a request that names no version is served
   * by the version that serves once its body is whole.
   */
  async function serveDirectInfer(
    request: Request,
    fn: FunctionVersion,
    { name, path, pinned }: { name: string; path: string; pinned: boolean },
  ): Promise<Response> {
    const started = performance.now();
    const requestId = givenRequestId(request.headers) ?? nextRequestId();
    let response: Response;
    try {
      const body = new Uint8Array(await guardBodyRead(() => request.arrayBuffer(), fn.manifest.options.timeoutMs));
      const target = pinned ? fn : registry.serving(name);
      if (target !== fn) {
        const swapped = authSwapped(name, fn.manifest.options.auth, target.manifest.options.auth);
        if (swapped) throw swapped;
      }
      const { signature, maxBodyBytes } = target.manifest.options;
      if (!signature) {
        throw new IsolaneError("not_found", `Function '${name}' declares no tensor signature, so it is not a v2 model`);
      }
      if (body.byteLength > maxBodyBytes) {
        throw new IsolaneError(
          "body_too_large",
          `Request body is larger than this function's limit of ${maxBodyBytes} bytes`,
        );
      }
      response = await answerInferRequest(
        signature,
        body,
        request.headers.get(inferenceHeaderLength) ?? undefined,
        target,
        (inputs) => target.pool.infer(inputs, { signal: request.signal, requestId }),
        (encoded) =>
          new Response(encoded.body as Uint8Array<ArrayBuffer>, { headers: inferResponseHeaders(encoded, requestId) }),
        { reuse: true },
      );
    } catch (error) {
      response = errorResponseOf(error, { path, requestId, v2: true });
    }
    served({ requestId, path, started, status: response.status, fn: name });
    return response;
  }

  async function serveDirect(
    request: Request,
    fn: Invocable,
    { name, path, contentType }: { name: string; path: string; contentType: string | undefined },
  ): Promise<Response> {
    const started = performance.now();
    const requestId = givenRequestId(request.headers) ?? nextRequestId();
    let response: Response;
    try {
      const body = await guardBodyRead(() => request.arrayBuffer(), fn.options.timeoutMs);
      response = await answerInvocation(fn, body, {
        requestId,
        signal: request.signal,
        contentType,
        sse: (request.headers.get("accept") ?? "").includes("text/event-stream"),
        respond: (output) => jsonAnswer(output, requestId),
      });
    } catch (error) {
      response = errorResponseOf(error, { path, requestId });
    }
    served({ requestId, path, started, status: response.status, fn: name });
    return response;
  }

  /**
   * A whole JSON answer of the direct path. Its two headers are set on the response's own list: Deno 2.9.6 converts a
   * `ResponseInit`'s headers through WebIDL (a sequence by its iterators, a record by its property descriptors), which
   * took a lone echo 7 µs on the main thread where this takes about 3 (docs/hop.md, "Ninth round").
   */
  function jsonAnswer(output: ArrayBuffer, requestId: string): Response {
    const response = new Response(output);
    const headers = response.headers;
    headers.set("content-type", "application/json");
    headers.set("x-request-id", requestId);
    return response;
  }

  const honoFetch = app.fetch;
  app.fetch = function fetch(request, env, executionCtx) {
    return direct(request) ?? honoFetch(request, env, executionCtx);
  };
  return app;
}
