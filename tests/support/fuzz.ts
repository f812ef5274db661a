/**
 * fast-check arbitraries of hostile and malformed requests to `/v1` and
 * `/v2`: bodies (random bytes, invalid UTF-8, deep nesting, huge numbers,
 * giant strings, mutated v2 requests, binary frames with lying sizes) and
 * headers (content types, `Inference-Header-Content-Length`,
 * `Content-Encoding`). Shared by the fuzz tests and the fault soak.
 *
 * @example
 * ```ts
 * await fc.assert(fc.asyncProperty(v2Request(["mlp"]), async (r) => {
 *   const response = await send(url, r);
 *   return documentedStatuses.has(response.status);
 * }), { numRuns: 200 });
 * ```
 * @module
 */
import fc from "fast-check";
import { tensorDatatypes } from "../../src/sdk.ts";

/** One HTTP request to send. */
export interface FuzzRequest {
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Statuses a request may get for bad input (and 200 for input that happens to be good). */
export const documentedStatuses: ReadonlySet<number> = new Set([200, 400, 404, 413, 415]);

const encoder = new TextEncoder();
// Every v2 datatype, and names that are none (bfloat16, lower case, empty).
const datatypes = [...tensorDatatypes, "BF16", "fp32", ""];

/** Header values that fetch can send (printable ASCII). */
const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });

/** Content types: none, the accepted ones with odd parameters, and anything else. */
export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    "application/json",
    "application/json; charset=utf-8",
    "application/octet-stream",
    "application/vnd.api+json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
  ),
  headerText,
);

/** Other headers a client may send, with any printable value. */
export const extraHeaders: fc.Arbitrary<Record<string, string>> = fc.dictionary(
  fc.constantFrom("x-request-id", "accept", "accept-encoding", "authorization", "origin", "x-forwarded-for"),
  headerText,
  { maxKeys: 3 },
);

/** Numbers, and text that JSON and integer parsers choke on. */
const hostileNumberText = fc.oneof(
  fc.constantFrom(
    "1e999999",
    "-1e999999",
    "1e-999999",
    "9".repeat(400),
    "-" + "9".repeat(25),
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775808",
    "0.1e1",
    "-0",
    "1E2",
    "NaN",
    "Infinity",
  ),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
);

/** Raw JSON-ish texts that overflow parsers and validators. */
export const hostileJsonText: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 1, max: 200_000 }).map((n) => "[".repeat(n) + "]".repeat(n)),
  fc.integer({ min: 1, max: 100_000 }).map((n) => '{"a":'.repeat(n) + "1" + "}".repeat(n)),
  fc.integer({ min: 1, max: 50_000 }).map((n) => `{"x":${"[".repeat(n)}1${"]".repeat(n)}}`),
  fc.integer({ min: 1, max: 400_000 }).map((n) => `{"message":"${"x".repeat(n)}"}`),
  hostileNumberText.map((t) => `{"x":[[${t},1,2,3]],"message":${t}}`),
  fc.json({ depthSize: "large" }),
  fc.string({ unit: "binary" }),
);

/** A tensor of the protocol's JSON form, well-formed or not. */
function tensorArb(names: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      name: fc.oneof(fc.constantFrom(...names, "x", "text", "bytes", "int64"), fc.string()),
      datatype: fc.oneof(fc.constantFrom(...datatypes), fc.anything()),
      shape: fc.oneof(
        fc.array(fc.integer({ min: -2, max: 6 }), { maxLength: 4 }),
        fc.array(fc.integer({ min: 0, max: 2 ** 31 }), { maxLength: 3 }),
        fc.anything(),
      ),
      data: fc.oneof(
        fc.array(fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.string(), fc.constant(null)), { maxLength: 24 }),
        fc.array(fc.array(fc.float(), { maxLength: 4 }), { maxLength: 6 }),
        fc.anything(),
      ),
      parameters: fc.oneof(
        fc.record({ binary_data_size: fc.oneof(fc.integer({ min: -4, max: 64 }), fc.anything()) }),
        fc.dictionary(fc.string(), fc.jsonValue()),
      ),
    },
    { requiredKeys: ["name"] },
  );
}

/** An inference request's JSON, from plausible to broken. */
export function inferJson(models: readonly string[]): fc.Arbitrary<string> {
  const request = fc.record(
    {
      id: fc.oneof(fc.string(), fc.anything()),
      inputs: fc.oneof(fc.array(tensorArb(models), { maxLength: 4 }), fc.anything()),
      outputs: fc.oneof(
        fc.array(
          fc.record({
            name: fc.oneof(fc.constantFrom("y", "upper", "length", "boxes"), fc.string()),
            parameters: fc.record({ binary_data: fc.oneof(fc.boolean(), fc.anything()) }),
          }),
          { maxLength: 3 },
        ),
        fc.anything(),
      ),
      parameters: fc.oneof(
        fc.record({ binary_data_output: fc.oneof(fc.boolean(), fc.anything()) }),
        fc.dictionary(fc.string(), fc.jsonValue()),
      ),
    },
    { requiredKeys: [] },
  );
  return fc.oneof(
    { weight: 4, arbitrary: request.map((r) => JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? String(v) : v))) },
    { weight: 1, arbitrary: hostileJsonText },
  );
}

function bytesOf(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Bytes that are not valid UTF-8 spliced into text. */
const invalidUtf8 = fc.constantFrom(
  Uint8Array.of(0xe9),
  Uint8Array.of(0xc3),
  Uint8Array.of(0xff, 0xfe),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
);

/** A body: JSON text, with invalid UTF-8 spliced in, or random bytes. */
function bodyFrom(json: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 5, arbitrary: json.map(bytesOf) },
    {
      weight: 1,
      arbitrary: fc.tuple(json, invalidUtf8, fc.nat()).map(([text, bad, at]) => {
        const bytes = bytesOf(text);
        const cut = bytes.length === 0 ? 0 : at % bytes.length;
        return new Uint8Array([...bytes.subarray(0, cut), ...bad, ...bytes.subarray(cut)]);
      }),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }) },
  );
}

/**
 * Requests that are well-formed for the `mlp` model (FP32 `x` [n, 4]) or the
 * `strings` model (BYTES `text` [n]), JSON or binary, with fuzzed values
 * (floats out of FP32 range, any strings) and output choices.
 */
export const nearlyValidV2Request: fc.Arbitrary<FuzzRequest> = fc.oneof(
  fc.record({
    rows: fc.array(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 4, maxLength: 4 }), {
      maxLength: 6,
    }),
    binary: fc.boolean(),
    binaryOut: fc.option(fc.boolean(), { nil: undefined }),
  }).map(({ rows, binary, binaryOut }): FuzzRequest => {
    const x = { name: "x", datatype: "FP32", shape: [rows.length, 4] };
    const parameters = binaryOut === undefined ? {} : { parameters: { binary_data_output: binaryOut } };
    if (!binary) {
      return {
        path: "/v2/models/mlp/infer",
        headers: {},
        body: bytesOf(JSON.stringify({ inputs: [{ ...x, data: rows.flat() }], ...parameters })),
      };
    }
    const data = new Uint8Array(Float32Array.from(rows.flat()).buffer);
    const header = bytesOf(
      JSON.stringify({ inputs: [{ ...x, parameters: { binary_data_size: data.length } }], ...parameters }),
    );
    return {
      path: "/v2/models/mlp/infer",
      headers: { "Inference-Header-Content-Length": String(header.length) },
      body: new Uint8Array([...header, ...data]),
    };
  }),
  fc.record({ text: fc.array(fc.string({ unit: "grapheme" }), { maxLength: 5 }), binaryOut: fc.boolean() }).map((
    { text, binaryOut },
  ): FuzzRequest => ({
    path: "/v2/models/strings/infer",
    headers: { "content-type": "application/json" },
    body: bytesOf(
      JSON.stringify({
        inputs: [{ name: "text", datatype: "BYTES", shape: [text.length], data: text }],
        outputs: [{ name: "upper", parameters: { binary_data: binaryOut } }],
      }),
    ),
  })),
);

/** `/v2/models/<model>/infer` requests: JSON or binary framing, any headers. */
export function v2Request(models: readonly string[]): fc.Arbitrary<FuzzRequest> {
  return fc.oneof({ weight: 4, arbitrary: anyV2Request(models) }, { weight: 1, arbitrary: nearlyValidV2Request });
}

function anyV2Request(models: readonly string[]): fc.Arbitrary<FuzzRequest> {
  const json = inferJson(models);
  const framed = fc.tuple(json, fc.uint8Array({ maxLength: 512 }), fc.integer({ min: -8, max: 8 })).map(
    ([text, binary, skew]) => {
      const header = bytesOf(text);
      return {
        body: new Uint8Array([...header, ...binary]),
        headerLength: String(header.length + skew),
      };
    },
  );
  return fc.record({
    model: fc.oneof(
      fc.constantFrom(...models),
      fc.constantFrom("nope", "ocr", "%2e%2e", "mlp/versions/1", "mlp/versions/x"),
    ),
    body: fc.oneof(
      bodyFrom(json).map((body) => ({ body, headerLength: undefined as string | undefined })),
      framed,
    ),
    headerLength: fc.option(fc.oneof(headerText, fc.integer().map(String)), { nil: undefined }),
    contentType,
    contentEncoding: fc.option(fc.constantFrom("gzip", "deflate", "br", "identity", ""), { nil: undefined }),
    extra: extraHeaders,
  }).map(({ model, body, headerLength, contentType, contentEncoding, extra }) => {
    const headers: Record<string, string> = { ...extra };
    const length = body.headerLength ?? headerLength;
    if (length !== undefined) headers["Inference-Header-Content-Length"] = length;
    if (contentType !== undefined) headers["content-type"] = contentType;
    if (contentEncoding !== undefined) headers["content-encoding"] = contentEncoding;
    return { path: `/v2/models/${model}/infer`, headers, body: body.body };
  });
}

/** `/v1/functions/<name>` requests with JSON-ish bodies and any content type. */
export function v1Request(functions: readonly string[]): fc.Arbitrary<FuzzRequest> {
  const json = fc.oneof(
    hostileJsonText,
    // Well-formed for echo, so that every run reaches handlers too, not only the validators.
    fc.string().map((message) => JSON.stringify({ message })),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.dictionary(fc.constantFrom("x", "text", "message", "candidates", "bytes", "int64", "delayMs"), fc.jsonValue())
      .map((v) => JSON.stringify(v)),
    fc.array(fc.array(hostileNumberText, { maxLength: 4 }), { maxLength: 3 }).map((rows) =>
      `{"x":[${rows.map((r) => `[${r.join(",")}]`).join(",")}]}`
    ),
  );
  return fc.record({
    name: fc.constantFrom(...functions),
    body: bodyFrom(json),
    contentType: fc.oneof(
      { weight: 4, arbitrary: fc.constant("application/json") },
      { weight: 1, arbitrary: contentType },
    ),
    extra: extraHeaders,
  }).map(({ name, body, contentType, extra }) => ({
    path: `/v1/functions/${name}`,
    headers: contentType === undefined ? extra : { ...extra, "content-type": contentType },
    body,
  }));
}

/**
 * Sends a fuzz request; resolves with its status and the body's JSON text
 * (the JSON header only, when binary outputs follow it).
 */
export async function send(url: string, request: FuzzRequest): Promise<{ status: number; text: string }> {
  const response = await fetch(`${url}${request.path}`, {
    method: "POST",
    headers: request.headers,
    body: request.body as Uint8Array<ArrayBuffer>,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const headerLength = response.headers.get("Inference-Header-Content-Length");
  const json = headerLength === null ? bytes : bytes.subarray(0, Number(headerLength));
  return { status: response.status, text: new TextDecoder().decode(json) };
}
