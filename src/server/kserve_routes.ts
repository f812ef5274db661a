/**
 * KServe v2 / Open Inference Protocol over HTTP, for functions that declare a
 * tensor signature, so that Triton and KServe clients can call isolane.
 * Errors take the protocol's shape, `{"error": "<message>"}`.
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { IsolaneError } from "../errors.ts";
import type { FunctionVersion } from "../registry/load_function.ts";
import type { Registry } from "../registry/registry.ts";
import type { TensorSignature } from "../sdk.ts";
import type { BodyLimits } from "./body_guard.ts";
import { requireJson } from "./body_guard.ts";
import { v2ErrorResponse } from "./error_response.ts";
import { inferRequestSchema, outputToTensors, tensorsToInput } from "./kserve.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

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

/** Routes under `/v2`. */
export function kserveRoutes(registry: Registry, { limits, version }: { limits: BodyLimits; version: string }): Hono {
  const app = new Hono();
  app.onError(v2ErrorResponse);
  app.notFound((c) => c.json({ error: `No route ${c.req.method} ${c.req.path}` }, 404));

  app.get("/v2", (c) => c.json({ name: "isolane", version, extensions: [] }));
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

  const infer = async (c: Context) => {
    const { fn, signature } = model(registry, c);
    requireJson(c);
    let response: Response | undefined;
    await limits.for(fn.manifest.options.maxBodyBytes)(c, async () => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        throw new IsolaneError("invalid_json", "Request body is not valid JSON");
      }
      const parsed = inferRequestSchema.safeParse(body);
      if (!parsed.success) {
        throw new IsolaneError(
          "invalid_input",
          `Not a v2 inference request: ${
            parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
          }`,
        );
      }
      const request = parsed.data;
      const input = tensorsToInput(signature, request);
      const out = await fn.pool.invoke(encoder.encode(JSON.stringify(input)).buffer as ArrayBuffer, {
        signal: c.req.raw.signal,
        requestId: c.get("requestId"),
      });
      const outputs = outputToTensors(
        signature,
        JSON.parse(decoder.decode(out)),
        request.outputs?.map((o) => o.name),
      );
      response = c.json({
        model_name: fn.name,
        model_version: String(fn.version),
        ...(request.id !== undefined ? { id: request.id } : {}),
        outputs,
      });
    });
    return response!;
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);
  return app;
}
