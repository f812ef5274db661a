/**
 * The OpenAPI 3.1 description of a running isolane: the fixed routes, and
 * one `POST /v1/functions/<name>` per loaded function with its input and
 * output JSON Schema (from its Zod schemas).
 * @module
 */
import type { Registry } from "../registry/registry.ts";
import { errorStatus } from "../errors.ts";
import { v2Paths, v2Schemas } from "./openapi_v2.ts";

type Schema = Record<string, unknown>;

const errorRef = { $ref: "#/components/schemas/Error" };
const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: errorRef } } });
const json = (schema: Schema, description = "OK") => ({ description, content: { "application/json": { schema } } });

/** A JSON Schema from Zod without its `$schema` key (OpenAPI 3.1 sets the dialect once). */
function embed(schema: unknown): Schema {
  const { $schema: _, ...rest } = (schema ?? {}) as Schema;
  return rest;
}

const invocationErrors = {
  "400": errorResponse("Invalid JSON, or input that fails the schema (`details` holds the issues)"),
  "404": errorResponse("No such function"),
  "408": errorResponse("The body did not arrive within timeoutMs"),
  "413": errorResponse("Body over the function's maxBodyBytes"),
  "415": errorResponse("Body is not JSON, nor a media type the function takes"),
  "429": errorResponse("Queue full; see Retry-After"),
  "500": errorResponse("The handler threw, returned invalid output, or its isolate died"),
  "503": errorResponse("The function is not loaded or unhealthy"),
  "504": errorResponse("The call ran past timeoutMs"),
};

/**
 * The raw bodies a function takes besides JSON (its `raw.accepts`): bytes of each media type, or a form whose fields
 * and files the handler reads.
 */
function rawContent(accepts: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(accepts.map((media) => [
    media,
    media === "multipart/form-data"
      ? { schema: { type: "object", description: "Form fields and files, as the function reads them" } }
      : { schema: { type: "string", contentMediaType: media } },
  ]));
}

/**
 * A function's answer: its output as JSON, or, when the handler streams (any handler may), each output as one line of
 * NDJSON, or as one Server-Sent Event when the request accepts `text/event-stream` (src/server/invoke_route.ts).
 */
function outputContent(schema: Schema) {
  return {
    description: "The function's output; a streaming handler's outputs one per NDJSON line or SSE event",
    content: {
      "application/json": { schema },
      "application/x-ndjson": { schema: { ...schema, description: "One output per line (a streaming handler)" } },
      "text/event-stream": {
        schema: {
          type: "string",
          description: "A streaming handler's outputs, one `data:` event each (JSON of the output schema), when the " +
            "request's Accept names text/event-stream",
        },
      },
    },
  };
}

/** The OpenAPI document for the functions the registry serves now. */
export function openApiDocument(registry: Registry, { version }: { version: string }): Schema {
  const functionPaths: Record<string, unknown> = {};
  for (const entry of registry.list()) {
    const current = entry.current;
    if (!current) continue;
    const { options, inputSchema, outputSchema } = current.manifest;
    functionPaths[`/v1/functions/${entry.name}`] = {
      post: {
        operationId: `invoke_${entry.name.replaceAll("-", "_")}`,
        tags: ["functions"],
        summary: options.description,
        description:
          `Runs '${entry.name}' (version ${current.version}). Limits: ${options.maxBodyBytes} bytes, ${options.timeoutMs} ms, ${options.queueDepth} waiting.`,
        requestBody: {
          required: true,
          content: { "application/json": { schema: embed(inputSchema) }, ...rawContent(options.raw?.accepts ?? []) },
        },
        ...(options.auth === "none" ? {} : { security: [{ [options.auth === "key" ? "invocationKey" : "jwt"]: [] }] }),
        responses: {
          "200": outputContent(embed(outputSchema)),
          ...invocationErrors,
          ...(options.auth === "none" ? {} : { "401": errorResponse("Missing or refused key or JWT") }),
        },
      },
    };
  }
  const admin = [{ adminToken: [] }];
  return {
    openapi: "3.1.0",
    info: {
      title: "isolane",
      version,
      description:
        'Edge functions for ML models. Every error has the shape {"error": {"code", "message", "details"?}}.',
    },
    tags: [
      { name: "functions", description: "Invoke the loaded functions" },
      { name: "runtime", description: "Functions, devices, health and metrics" },
      { name: "admin", description: "Deploy, roll back and delete functions (Authorization: Bearer)" },
      {
        name: "kserve-v2",
        description:
          'KServe v2 / Open Inference Protocol for functions with a tensor signature; errors are {"error": string}',
      },
    ],
    paths: {
      ...functionPaths,
      ...v2Paths(
        registry.list().flatMap((e) => (e.current?.manifest.options.signature ? [e.name] : [])),
      ),
      "/v1/functions": {
        get: { operationId: "listFunctions", tags: ["runtime"], responses: { "200": json({ type: "object" }) } },
      },
      "/v1/functions/{name}": {
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        get: {
          operationId: "describeFunction",
          tags: ["runtime"],
          responses: { "200": json({ type: "object" }), "404": errorResponse("No such function") },
        },
        put: {
          operationId: "deployFunction",
          tags: ["admin"],
          security: admin,
          requestBody: {
            required: true,
            content: { "application/gzip": { schema: { type: "string", contentMediaType: "application/gzip" } } },
          },
          responses: {
            "201": json({ type: "object" }, "Deployed and serving"),
            "400": errorResponse("The upload was cut short; nothing deployed"),
            "401": errorResponse("Missing or wrong token"),
            "403": errorResponse("Admin API off"),
            "408": errorResponse("The bundle did not arrive within ISOLANE_UPLOAD_TIMEOUT_MS; nothing deployed"),
            "409": errorResponse("Name taken by a folder function"),
            "413": errorResponse("Bundle too large"),
            "422": errorResponse("Bundle refused or did not load; the old version keeps serving"),
          },
        },
        delete: {
          operationId: "deleteFunction",
          tags: ["admin"],
          security: admin,
          responses: { "200": json({ type: "object" }), "404": errorResponse("No such function") },
        },
      },
      "/v1/functions/{name}/versions": {
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        get: { operationId: "listVersions", tags: ["runtime"], responses: { "200": json({ type: "object" }) } },
      },
      "/v1/functions/{name}/rollback": {
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        post: {
          operationId: "rollbackFunction",
          tags: ["admin"],
          security: admin,
          requestBody: {
            required: false,
            content: {
              "application/json": { schema: { type: "object", properties: { version: { type: "integer" } } } },
            },
          },
          responses: {
            "200": json({ type: "object" }),
            "400": errorResponse('A body other than empty or {"version": n}, or one cut short'),
            "404": errorResponse("No such version"),
            "408": errorResponse("The body did not arrive within ISOLANE_UPLOAD_TIMEOUT_MS"),
            "413": errorResponse("A body over 4 KiB"),
          },
        },
      },
      "/v1/functions/{name}/keys": {
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        post: {
          operationId: "createInvocationKey",
          tags: ["admin"],
          security: admin,
          responses: {
            "201": json({ type: "object" }, "The key ({id, key, createdAt}); it is shown only now"),
            "404": errorResponse("No such function"),
            "409": errorResponse('The serving version takes no key (auth "none" or "jwt"); details: {auth}'),
          },
        },
        get: {
          operationId: "listInvocationKeys",
          tags: ["admin"],
          security: admin,
          responses: { "200": json({ type: "object" }, "Keys by id and creation time") },
        },
      },
      "/v1/functions/{name}/keys/{id}": {
        parameters: [
          { name: "name", in: "path", required: true, schema: { type: "string" } },
          { name: "id", in: "path", required: true, schema: { type: "string" } },
        ],
        delete: {
          operationId: "revokeInvocationKey",
          tags: ["admin"],
          security: admin,
          responses: { "200": json({ type: "object" }), "404": errorResponse("No such key") },
        },
      },
      "/v1/devices": {
        get: { operationId: "listDevices", tags: ["runtime"], responses: { "200": json({ type: "object" }) } },
      },
      "/healthz": { get: { operationId: "health", tags: ["runtime"], responses: { "200": json({ type: "object" }) } } },
      "/readyz": {
        get: {
          operationId: "ready",
          tags: ["runtime"],
          responses: { "200": json({ type: "object" }), "503": json({ type: "object" }, "Some function is not ready") },
        },
      },
      "/metrics": {
        get: {
          operationId: "metrics",
          tags: ["runtime"],
          responses: {
            "200": { description: "Prometheus text format", content: { "text/plain": { schema: { type: "string" } } } },
          },
        },
      },
    },
    components: {
      schemas: {
        ...v2Schemas,
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: {
                code: { type: "string", enum: Object.keys(errorStatus) },
                message: { type: "string" },
                details: {},
              },
            },
          },
        },
      },
      securitySchemes: {
        adminToken: { type: "http", scheme: "bearer" },
        invocationKey: {
          type: "http",
          scheme: "bearer",
          description: "A key made with POST /v1/functions/{name}/keys",
        },
        jwt: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
      },
    },
  };
}
