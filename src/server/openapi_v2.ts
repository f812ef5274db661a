/**
 * The OpenAPI description of the KServe v2 routes (`/v2/...`): health,
 * server and model metadata, model configuration, and inference in JSON or
 * with the binary tensor data extension. Errors take the protocol's shape,
 * `{"error": "<message>"}`.
 * @module
 */
import { tensorDatatypes } from "../sdk.ts";

type Schema = Record<string, unknown>;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema, description = "OK") => ({ description, content: { "application/json": { schema } } });
const v2Error = (description: string) => json(ref("V2Error"), description);

const parameters = { type: "object", additionalProperties: true };
const tensorMeta = {
  type: "object",
  required: ["name", "datatype", "shape"],
  properties: {
    name: { type: "string" },
    datatype: { type: "string", enum: [...tensorDatatypes] },
    shape: { type: "array", items: { type: "integer" } },
  },
};

/** Component schemas of the `/v2` routes. */
export const v2Schemas: Record<string, Schema> = {
  V2Error: { type: "object", required: ["error"], properties: { error: { type: "string" } } },
  V2Tensor: {
    type: "object",
    required: ["name", "datatype", "shape"],
    properties: {
      ...tensorMeta.properties,
      parameters: {
        type: "object",
        properties: {
          binary_data_size: { type: "integer", minimum: 0, description: "Bytes of this tensor after the JSON header" },
          binary_data: { type: "boolean", description: "Outputs: return this output binary" },
        },
        additionalProperties: true,
      },
      data: {
        type: "array",
        description: "Row-major elements, flat or nested: numbers, booleans (BOOL) or strings (BYTES). " +
          "64-bit integers are exact when written as plain digits.",
      },
    },
  },
  V2InferRequest: {
    type: "object",
    required: ["inputs"],
    properties: {
      id: { type: "string" },
      parameters: {
        type: "object",
        properties: { binary_data_output: { type: "boolean", description: "Return every output binary" } },
        additionalProperties: true,
      },
      inputs: { type: "array", minItems: 1, items: ref("V2Tensor") },
      outputs: {
        type: "array",
        items: { type: "object", required: ["name"], properties: { name: { type: "string" }, parameters } },
      },
    },
  },
  V2InferResponse: {
    type: "object",
    required: ["model_name", "outputs"],
    properties: {
      model_name: { type: "string" },
      model_version: { type: "string" },
      id: { type: "string" },
      outputs: { type: "array", items: ref("V2Tensor") },
    },
  },
  V2ModelMetadata: {
    type: "object",
    required: ["name", "platform", "inputs", "outputs"],
    properties: {
      name: { type: "string" },
      versions: { type: "array", items: { type: "string" } },
      platform: { type: "string" },
      inputs: { type: "array", items: tensorMeta },
      outputs: { type: "array", items: tensorMeta },
    },
  },
  V2ModelConfig: {
    type: "object",
    description: "Triton's model configuration, in its field names",
    required: ["name", "max_batch_size", "input", "output"],
    properties: {
      name: { type: "string" },
      platform: { type: "string" },
      backend: { type: "string" },
      max_batch_size: { type: "integer" },
      input: { type: "array", items: ref("V2ConfigTensor") },
      output: { type: "array", items: ref("V2ConfigTensor") },
      dynamic_batching: {
        type: "object",
        properties: {
          max_queue_delay_microseconds: { type: "integer" },
          preferred_batch_size: { type: "array", items: { type: "integer" } },
        },
      },
    },
  },
  V2ConfigTensor: {
    type: "object",
    required: ["name", "data_type", "dims"],
    properties: {
      name: { type: "string" },
      data_type: { type: "string", description: "TYPE_BOOL, TYPE_UINT8, ... TYPE_FP32, TYPE_STRING (BYTES)" },
      dims: { type: "array", items: { type: "integer" } },
    },
  },
};

const name = { name: "name", in: "path", required: true, schema: { type: "string" } };
const version = { name: "version", in: "path", required: true, schema: { type: "string" } };
const modelErrors = { "404": v2Error("No such model, version, or the function declares no tensor signature") };

/**
 * The `/v2` paths. `models` names the functions served as v2 models now
 * (those with a tensor signature).
 */
export function v2Paths(models: string[]): Record<string, unknown> {
  const modelName = { ...name, schema: { type: "string", ...(models.length > 0 ? { examples: models } : {}) } };
  const get = (operationId: string, summary: string, response: unknown, extra: Schema = {}) => ({
    get: { operationId, tags: ["kserve-v2"], summary, responses: { "200": response, ...extra } },
  });
  const infer = (operationId: string) => ({
    post: {
      operationId,
      tags: ["kserve-v2"],
      summary: "Run inference",
      description: "A JSON request, or the binary tensor data extension: the JSON header's byte length in " +
        "`Inference-Header-Content-Length`, then each input with `parameters.binary_data_size`, little-endian " +
        "(BYTES: a 4-byte little-endian length before each element). No content type is accepted too, as Triton's " +
        "client sends. Outputs come binary when asked (`binary_data` per output, `binary_data_output` per request), " +
        "with the response's `Inference-Header-Content-Length`. `Content-Encoding: gzip|deflate` is accepted.",
      parameters: [{
        name: "Inference-Header-Content-Length",
        in: "header",
        required: false,
        schema: { type: "integer", minimum: 0 },
      }],
      requestBody: {
        required: true,
        content: {
          "application/json": { schema: ref("V2InferRequest") },
          "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } },
        },
      },
      responses: {
        "200": {
          description: "The outputs; binary ones after the JSON header",
          headers: { "Inference-Header-Content-Length": { schema: { type: "integer" } } },
          content: {
            "application/json": { schema: ref("V2InferResponse") },
            "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } },
          },
        },
        "400": v2Error("Not a valid request: JSON, UTF-8, datatypes, ranges, shapes, names, binary sizes"),
        ...modelErrors,
        "413": v2Error("Body over the function's maxBodyBytes"),
        "415": v2Error("Content type other than JSON, octet-stream or none"),
        "429": v2Error("Queue full; see Retry-After"),
        "500": v2Error("The handler threw, returned outputs that do not fit its signature, or its isolate died"),
        "503": v2Error("The model is not loaded or unhealthy"),
        "504": v2Error("The call ran past timeoutMs"),
      },
    },
  });
  const ready = { type: "object", properties: { ready: { type: "boolean" } } };
  return {
    "/v2": get(
      "v2ServerMetadata",
      "Server metadata and supported extensions",
      json({
        type: "object",
        properties: {
          name: { type: "string" },
          version: { type: "string" },
          extensions: { type: "array", items: { type: "string" } },
        },
      }),
    ),
    "/v2/health/live": get("v2Live", "Server liveness", json({ type: "object" })),
    "/v2/health/ready": get("v2Ready", "Server readiness", json(ready), { "503": json(ready, "Not ready") }),
    "/v2/models/{name}": {
      parameters: [modelName],
      ...get("v2ModelMetadata", "Model metadata", json(ref("V2ModelMetadata")), modelErrors),
    },
    "/v2/models/{name}/versions/{version}": {
      parameters: [modelName, version],
      ...get("v2ModelVersionMetadata", "Model metadata", json(ref("V2ModelMetadata")), modelErrors),
    },
    "/v2/models/{name}/ready": {
      parameters: [modelName],
      ...get("v2ModelReady", "Model readiness", json(ready), { ...modelErrors, "503": json(ready, "Not ready") }),
    },
    "/v2/models/{name}/versions/{version}/ready": {
      parameters: [modelName, version],
      ...get("v2ModelVersionReady", "Model readiness", json(ready), {
        ...modelErrors,
        "503": json(ready, "Not ready"),
      }),
    },
    "/v2/models/{name}/config": {
      parameters: [modelName],
      ...get("v2ModelConfig", "Model configuration (Triton's names)", json(ref("V2ModelConfig")), modelErrors),
    },
    "/v2/models/{name}/versions/{version}/config": {
      parameters: [modelName, version],
      ...get("v2ModelVersionConfig", "Model configuration (Triton's names)", json(ref("V2ModelConfig")), modelErrors),
    },
    "/v2/models/{name}/infer": { parameters: [modelName], ...infer("v2Infer") },
    "/v2/models/{name}/versions/{version}/infer": { parameters: [modelName, version], ...infer("v2VersionInfer") },
  };
}
