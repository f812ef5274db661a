/**
 * What a JSON handler returns or throws, answered the same by both hosts (`ISOLANE_ISOLATION=worker` and `process`):
 * a plain value, a thenable that is no Promise, a value whose `then` is no function, a synchronous throw, a rejected
 * promise, a generator, an async generator, and a value whose `then` getter throws. Before: that last one was 500
 * `internal` ("failed", logged as unexpected) on the run path that answers at once (`callHandlerNow`), where the
 * handler's own throw is 500 `handler_error`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "./support/server.ts";

const source = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Answers by kind",
  input: z.object({ kind: z.string() }),
  output: z.any(),
  handler: (input) => {
    switch (input.kind) {
      case "value": return { ok: 1 };
      case "thenable": return { then(resolve) { resolve({ ok: 2 }); } };
      case "then-not-function": return { then: 3, ok: 3 };
      case "throw": throw new Error("thrown at once");
      case "reject": return Promise.reject(new Error("rejected"));
      case "generator": return (function* () { yield 1; })();
      case "async-generator": return (async function* () { yield { ok: 4 }; })();
      case "then-getter-throws": return { get then() { throw new Error("then getter"); } };
      case "thenable-rejects": return { then(_resolve, reject) { reject(new Error("thenable rejected")); } };
      default: return null;
    }
  },
});
`;

const kinds = [
  "value",
  "thenable",
  "then-not-function",
  "throw",
  "reject",
  "generator",
  "async-generator",
  "then-getter-throws",
  "thenable-rejects",
];

Deno.test("a handler's odd returns and throws: the same answer from both hosts, a handler's throw 500 handler_error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-returns-" });
  try {
    await Deno.mkdir(join(dir, "odd"));
    await Deno.writeTextFile(join(dir, "odd", "mod.ts"), source);
    const answers: Record<string, Record<string, unknown>> = {};
    for (const isolation of ["worker", "process"]) {
      await using server = await startServer({ functionsDir: dir, env: { ISOLANE_ISOLATION: isolation } });
      answers[isolation] = {};
      for (const kind of kinds) {
        const response = await server.invoke("odd", { kind });
        answers[isolation][kind] = { status: response.status, body: await response.text() };
      }
      assert.ok(!server.logs.some((l) => l.msg === "unexpected error"), `${isolation}: no error was unexpected`);
    }
    assert.deepEqual(answers.process, answers.worker);
    const got = answers.process as Record<string, { status: number; body: string }>;
    assert.deepEqual(got.value, { status: 200, body: '{"ok":1}' });
    assert.deepEqual(got.thenable, { status: 200, body: '{"ok":2}' });
    assert.deepEqual(got["then-not-function"], { status: 200, body: '{"then":3,"ok":3}' });
    for (
      const [kind, message] of [
        ["throw", "thrown at once"],
        ["reject", "rejected"],
        ["then-getter-throws", "then getter"],
        ["thenable-rejects", "thenable rejected"],
      ]
    ) {
      assert.equal(got[kind].status, 500, kind);
      const error = JSON.parse(got[kind].body).error;
      assert.equal(error.code, "handler_error", kind);
      assert.match(error.message, new RegExp(`^Function 'odd' threw: .*${message}`), kind);
    }
    assert.equal(got.generator.status, 500);
    assert.equal(JSON.parse(got.generator.body).error.code, "invalid_output");
    assert.equal(got["async-generator"].status, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
