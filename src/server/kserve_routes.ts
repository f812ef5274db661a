/**
 * KServe v2 / Open Inference Protocol over HTTP, for functions that declare a
 * tensor signature, so that Triton and KServe clients can call isolane.
 * Errors take the protocol's shape, `{"error": "<message>"}`.
 * @module
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { IsolaneError } from "../errors.ts";
import type { FunctionVersion } from "../registry/load_function.ts";
import type { FunctionPool } from "../pool/function_pool.ts";
import type { Registry } from "../registry/registry.ts";
import type { DynamicBatching, FunctionOptions, TensorSignature, TensorSpec } from "../sdk.ts";
import { type BodyLimits, decodeContentEncoding, guardBodyRead } from "./body_guard.ts";
import { v2ErrorResponse } from "./error_response.ts";
import type { Admission } from "./invoke_route.ts";
import { answerInferRequest, inferenceHeaderLength } from "./kserve.ts";
import { datatypes } from "../tensors.ts";
import { takesInferType } from "./hot_route.ts";
import { authSwapped } from "./invocation_auth.ts";

/** Extensions of the protocol that `/v2` implements, by Triton's names. */
export const v2Extensions = ["binary_tensor_data", "model_configuration"] as const;

function requireInferType(c: Context): void {
  const type = c.req.header("content-type");
  if (!takesInferType(type)) {
    throw new IsolaneError(
      "unsupported_media_type",
      `Send the request as 'application/json', as 'application/octet-stream' with ${inferenceHeaderLength}, or with no content type; got '${type}'`,
    );
  }
}

/** The body, decompressed per `Content-Encoding` (gzip, deflate: Triton's client compresses that way), at most `maxBytes`. */
async function readBody(c: Context, maxBytes: number): Promise<Uint8Array> {
  return await decodeContentEncoding(
    new Uint8Array(await c.req.arrayBuffer()),
    c.req.header("content-encoding"),
    maxBytes,
  );
}

/** The serving version of a model with a signature (matching `version` if one is given), and that signature. */
function model(registry: Registry, c: Context): { fn: FunctionVersion; signature: TensorSignature } {
  const name = c.req.param("name")!;
  const fn = registry.serving(name);
  const signature = fn.manifest.options.signature;
  if (!signature) {
    throw new IsolaneError("not_found", `Function '${name}' declares no tensor signature, so it is not a v2 model`);
  }
  const version = c.req.param("version");
  if (version !== undefined && version !== String(fn.version)) {
    throw new IsolaneError("not_found", `Model '${name}' serves version ${fn.version}, not ${version}`);
  }
  return { fn, signature };
}

async function pass(_c: Context, next: () => Promise<void>): Promise<void> {
  await next();
}

/**
 * What an infer request needs of a model: its name, serving version and
 * signature, its body limit, and its pool (the function's own, or, on an HTTP
 * thread, a bridge to it).
 */
export interface InferTarget {
  name: string;
  version: number;
  signature: TensorSignature;
  maxBodyBytes: number;
  /** The function's `timeoutMs`: the body must arrive within it (else 408). */
  timeoutMs: number;
  /** `refusal` may answer later (see `Admission` in invoke_route.ts). */
  pool: Pick<FunctionPool, "infer"> & { refusal(): Admission };
  /** The function's invocation `auth` (absent: `"none"`); a {@link current} with another is refused (503). */
  auth?: FunctionOptions["auth"];
  /**
   * The target that serves once the body is whole, when it may differ from this one (a new version that swapped in
   * while the body arrived: this one's pool then drains and refuses new work with 503).
   */
  current?: () => InferTarget;
}

/**
 * Serves one v2 `infer` request (JSON, or binary tensor data) for `target`.
 * Load is shed before the body is read.
 * @throws {IsolaneError} as the protocol's routes map them: 415, 413, 400 for the body; 429, 503, 504 from the pool.
 */
export async function serveInfer(c: Context, target: InferTarget, limits: BodyLimits): Promise<Response> {
  requireInferType(c);
  // Shed load before reading the body: a refusal costs almost nothing.
  let refused = target.pool.refusal();
  if (refused instanceof Promise) refused = await refused;
  if (refused) throw refused;
  const maxBytes = target.maxBodyBytes;
  let body: Uint8Array | undefined;
  // The guard holds the body limit too: a chunked body is read whole by the limit itself, and a cut or a stall there
  // answered 500 or never.
  await guardBodyRead(
    () =>
      limits.for(maxBytes)(c, async () => {
        body = await readBody(c, maxBytes);
      }),
    target.timeoutMs,
  );
  const served = target.current?.() ?? target;
  const swapped = authSwapped(served.name, target.auth, served.auth);
  if (swapped) throw swapped;
  if (body!.byteLength > served.maxBodyBytes) {
    throw new IsolaneError(
      "body_too_large",
      `Request body is larger than this function's limit of ${served.maxBodyBytes} bytes`,
    );
  }
  return await answerInferRequest(
    served.signature,
    body!,
    c.req.header(inferenceHeaderLength),
    served,
    (inputs) => served.pool.infer(inputs, { signal: c.req.raw.signal, requestId: c.get("requestId") }),
    (encoded) =>
      c.body(encoded.body as Uint8Array<ArrayBuffer>, 200, {
        "content-type": encoded.contentType,
        ...(encoded.headerLength !== undefined ? { [inferenceHeaderLength]: String(encoded.headerLength) } : {}),
      }),
  );
}

/** Options of {@link kserveRoutes}. */
export interface KserveRoutesOptions {
  limits: BodyLimits;
  version: string;
  /** A function's CORS, on infer routes and their `OPTIONS` preflight. */
  cors?: MiddlewareHandler;
  /** A function's invocation auth, before an infer request's body is read. */
  auth?: MiddlewareHandler;
}

/** Routes under `/v2`. */
export function kserveRoutes(registry: Registry, { limits, version, cors, auth }: KserveRoutesOptions): Hono {
  const app = new Hono();
  app.onError(v2ErrorResponse);
  app.get("/v2", (c) => c.json({ name: "isolane", version, extensions: v2Extensions }));
  app.get("/v2/health/live", (c) => c.json({ live: true }));
  app.get("/v2/health/ready", (c) => c.json({ ready: registry.allReady() }, registry.allReady() ? 200 : 503));

  const metadata = (c: Context) => {
    const { fn, signature } = model(registry, c);
    return c.json({
      name: fn.name,
      versions: [String(fn.version)],
      platform: "isolane_onnxruntime",
      inputs: signature.inputs,
      outputs: signature.outputs,
    });
  };
  app.get("/v2/models/:name", metadata);
  app.get("/v2/models/:name/versions/:version", metadata);

  const ready = (c: Context) => {
    const { fn } = model(registry, c);
    const up = !fn.pool.unhealthy;
    return c.json({ name: fn.name, ready: up }, up ? 200 : 503);
  };
  app.get("/v2/models/:name/ready", ready);
  app.get("/v2/models/:name/versions/:version/ready", ready);

  const config = (c: Context) => {
    const { fn, signature } = model(registry, c);
    return c.json(modelConfig(fn.name, { signature, batching: fn.manifest.options.dynamicBatching }));
  };
  app.get("/v2/models/:name/config", config);
  app.get("/v2/models/:name/versions/:version/config", config);

  const targetOf = (c: Context): InferTarget => {
    const { fn, signature } = model(registry, c);
    return {
      name: fn.name,
      version: fn.version,
      signature,
      maxBodyBytes: fn.manifest.options.maxBodyBytes,
      timeoutMs: fn.manifest.options.timeoutMs,
      pool: fn.pool,
      auth: fn.manifest.options.auth,
    };
  };
  const infer = (c: Context) => {
    // A request that names no version is served by the version that serves once its body is whole.
    const pinned = c.req.param("version") !== undefined;
    return serveInfer(c, { ...targetOf(c), ...(pinned ? {} : { current: () => targetOf(c) }) }, limits);
  };
  const withCors = cors ?? pass;
  const withAuth = auth ?? pass;
  app.post("/v2/models/:name/infer", withCors, withAuth, infer);
  app.post("/v2/models/:name/versions/:version/infer", withCors, withAuth, infer);
  const preflight = (c: Context) => {
    registry.require(c.req.param("name")!);
    return c.body(null, 204, { allow: "POST, OPTIONS" });
  };
  app.options("/v2/models/:name/infer", withCors, preflight);
  app.options("/v2/models/:name/versions/:version/infer", withCors, preflight);
  // Any other method on an infer route: 405 with the methods it takes (RFC 9110, 15.5.6), for a model that exists.
  const wrongMethod = (c: Context) => {
    registry.require(c.req.param("name")!);
    return c.json(
      { error: `${c.req.method} is not allowed on ${c.req.path}: send inference requests as POST` },
      405,
      { allow: "POST, OPTIONS" },
    );
  };
  app.all("/v2/models/:name/infer", withCors, wrongMethod);
  app.all("/v2/models/:name/versions/:version/infer", withCors, wrongMethod);
  // Mounted routes do not get this app's notFound; a catch-all keeps every /v2 answer in the protocol's shape.
  const noRoute = (c: Context) => c.json({ error: `No route ${c.req.method} ${c.req.path}` }, 404);
  app.all("/v2", noRoute);
  app.all("/v2/*", noRoute);
  return app;
}

/**
 * A model's configuration in Triton's field names (the model configuration
 * extension). With dynamic batching, `max_batch_size` is its largest batch
 * and `dims` leave out the batch dimension, as in Triton.
 */
export function modelConfig(
  name: string,
  { signature, batching }: { signature: TensorSignature; batching?: DynamicBatching },
): Record<string, unknown> {
  const batched = batching !== undefined && [...signature.inputs, ...signature.outputs].every((t) => t.shape[0] === -1);
  const tensor = (t: TensorSpec) => ({
    name: t.name,
    data_type: datatypes[t.datatype].triton,
    dims: batched ? t.shape.slice(1) : t.shape,
  });
  return {
    name,
    platform: "isolane_onnxruntime",
    backend: "onnxruntime",
    max_batch_size: batched ? batching.maxBatchSize : 0,
    input: signature.inputs.map(tensor),
    output: signature.outputs.map(tensor),
    ...(batched
      ? {
        dynamic_batching: {
          max_queue_delay_microseconds: Math.round((batching.maxQueueDelayMs ?? 0) * 1000),
          preferred_batch_size: batching.preferredBatchSizes ?? [],
        },
      }
      : {}),
  };
}
