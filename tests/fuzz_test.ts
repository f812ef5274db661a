/**
 * Hostile and malformed input against a real runtime: fast-check generates
 * bodies and headers for `/v1` and `/v2` (tests/support/fuzz.ts). Every
 * answer must be a documented status (never a 500 caused by the input), and
 * the server must stay up and keep serving.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { startServer, type TestServer } from "./support/server.ts";
import { v2FunctionsDir } from "./support/tiny_models.ts";
import { documentedStatuses, type FuzzRequest, send, v1Request, v2Request } from "./support/fuzz.ts";

const encoder = new TextEncoder();
const v2Models = ["mlp", "strings", "dtypes", "fp16", "detector"];

async function stillServing(server: TestServer): Promise<void> {
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  const ok = await send(server.url, {
    path: "/v2/models/mlp/infer",
    headers: {},
    body: encoder.encode('{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'),
  });
  assert.equal(ok.status, 200, ok.text);
}

const seen = { v1: new Map<number, number>(), v2: new Map<number, number>() };

function checkAnswer(request: FuzzRequest, answer: { status: number; text: string }): void {
  const counts = request.path.startsWith("/v2") ? seen.v2 : seen.v1;
  counts.set(answer.status, (counts.get(answer.status) ?? 0) + 1);
  const what = `${request.path} ${JSON.stringify(request.headers)} -> ${answer.status} ${answer.text.slice(0, 300)}`;
  assert.ok(documentedStatuses.has(answer.status), what);
  const body = JSON.parse(answer.text);
  if (answer.status !== 200) {
    // Each API keeps its own error shape: {"error": string} under /v2, {"error": {code, message}} under /v1.
    if (request.path.startsWith("/v2")) assert.equal(typeof body.error, "string", what);
    else assert.equal(typeof body.error.code, "string", what);
  }
}

Deno.test("fuzz: hostile bodies and headers get documented statuses and the server stays up", async (t) => {
  const functionsDir = await v2FunctionsDir();
  await Deno.mkdir(`${functionsDir}/echo`);
  await Deno.copyFile(new URL("./fixtures/functions/echo/mod.ts", import.meta.url), `${functionsDir}/echo/mod.ts`);
  // A recursive Zod schema: validating deep nesting overflows Zod's stack, which must be a 400, not a 500.
  await Deno.mkdir(`${functionsDir}/tree`);
  await Deno.writeTextFile(
    `${functionsDir}/tree/mod.ts`,
    `import { defineFunction, z } from "isolane";
type Tree = Tree[];
const tree: z.ZodType<Tree> = z.lazy(() => z.array(tree));
export default defineFunction({
  description: "Counts the children of a tree of arrays",
  input: z.object({ tree }),
  output: z.object({ children: z.number() }),
  handler: ({ tree }) => ({ children: tree.length }),
});
`,
  );
  await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });

  await t.step("the known overflows: deep nesting, huge numbers, giant strings, invalid UTF-8", async () => {
    const cases: [string, string | Uint8Array][] = [
      ["/v1/functions/echo", "[".repeat(500_000) + "]".repeat(500_000)],
      ["/v1/functions/tree", `{"tree":${"[".repeat(200_000)}${"]".repeat(200_000)}}`],
      ["/v1/functions/dtypes", `{"int64":${"[".repeat(100_000)}1${"]".repeat(100_000)}}`],
      ["/v1/functions/mlp", `{"x":[[${"9".repeat(200_000)},1,2,3]]}`],
      ["/v1/functions/echo", `{"message":${"9".repeat(200_000)}}`],
      ["/v1/functions/echo", `{"message":"${"x".repeat(4_000_000)}"}`],
      [
        "/v2/models/mlp/infer",
        `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":${"[".repeat(300_000)}]}]}`,
      ],
      [
        "/v2/models/dtypes/infer",
        `{"inputs":[{"name":"int64","datatype":"INT64","shape":[1,1],"data":[1${"0".repeat(5000)}]}]}`,
      ],
      ["/v2/models/mlp/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[4294967296,4294967296],"data":[]}]}`],
      [
        "/v2/models/strings/infer",
        `{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["${"é".repeat(5_000_000)}"]}]}`,
      ],
      ["/v2/models/mlp/infer", new Uint8Array([...encoder.encode('{"s":["caf'), 0xe9, ...encoder.encode('"]}')])],
      ["/v1/functions/echo", new Uint8Array([...encoder.encode('{"message":"caf'), 0xe9, ...encoder.encode('"}')])],
    ];
    for (const [path, body] of cases) {
      const request = {
        path,
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? encoder.encode(body) : body,
      };
      const answer = await send(server.url, request);
      checkAnswer(request, answer);
      assert.ok(
        answer.status === 400 || answer.status === 413,
        `${path}: ${answer.status} ${answer.text.slice(0, 200)}`,
      );
    }
    const shallow = await send(server.url, {
      path: "/v1/functions/tree",
      headers: { "content-type": "application/json" },
      body: encoder.encode('{"tree":[[],[[]]]}'),
    });
    assert.deepEqual([shallow.status, JSON.parse(shallow.text)], [200, { children: 2 }]);
    await stillServing(server);
  });

  await t.step("fast-check: /v2 infer bodies and headers", async () => {
    await fc.assert(
      fc.asyncProperty(v2Request(v2Models), async (request) => checkAnswer(request, await send(server.url, request))),
      { numRuns: 600 },
    );
    await stillServing(server);
    // The generators reach the decoders, not only the route and content-type checks.
    for (const status of [200, 400, 404, 415]) assert.ok(seen.v2.get(status)! > 0, `v2 ${status}: ${[...seen.v2]}`);
  });

  await t.step("fast-check: /v1 bodies and headers", async () => {
    await fc.assert(
      fc.asyncProperty(
        v1Request(["echo", "tree", ...v2Models]),
        async (request) => checkAnswer(request, await send(server.url, request)),
      ),
      { numRuns: 600 },
    );
    await stillServing(server);
    for (const status of [200, 400, 415]) assert.ok(seen.v1.get(status)! > 0, `v1 ${status}: ${[...seen.v1]}`);
  });

  assert.equal(server.logs.filter((l) => l.msg === "unexpected error").length, 0, "no unexpected errors logged");
  await Deno.remove(functionsDir, { recursive: true });
});
