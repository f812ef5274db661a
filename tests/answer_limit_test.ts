/**
 * An answer larger than the function's `maxAnswerBytes` (default 64 MiB) is refused with 500 `answer_too_large` and a
 * message that says what to change, on Worker and process hosts, JSON and tensor answers alike; before, a handler that
 * returned hundreds of megabytes by mistake had them sent to the client. Real runtime, real HTTP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { errorOf, startServer } from "./support/server.ts";

const MiB = 2 ** 20;

const texts = (isolation: string, limit: string) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Answers a string of n characters",
  isolation: "${isolation}",
  memoryLimitMb: 2048,
  ${limit}
  input: z.object({ n: z.number().int() }),
  output: z.object({ s: z.string() }),
  handler: ({ n }) => ({ s: "x".repeat(n) }),
});
`;

const zeros = (isolation: string) =>
  `import { defineFunction } from "isolane";
export default defineFunction({
  description: "Answers n FP32 zeros",
  isolation: "${isolation}",
  maxAnswerBytes: ${MiB},
  signature: {
    inputs: [{ name: "n", datatype: "INT32", shape: [1] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1] }],
  },
  handler: ({ n }) => ({ y: { data: new Float32Array(n.data[0]), dims: [n.data[0]] } }),
});
`;

const cases = [
  { isolation: "worker", threads: "0" },
  { isolation: "process", threads: "0" },
  // Through HTTP threads a Worker isolate writes its answer straight to the thread (its answer ring, or a message).
  { isolation: "worker", threads: "2" },
];
for (const { isolation, threads } of cases) {
  const named = `${isolation} host${threads === "0" ? "" : `, ${threads} HTTP threads`}`;
  Deno.test(`an answer past maxAnswerBytes is refused with 500 answer_too_large (${named})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-answer-" });
    try {
      const sources = {
        small: texts(isolation, `maxAnswerBytes: ${MiB},`),
        plain: texts(isolation, ""),
        zeros: zeros(isolation),
      };
      for (const [name, source] of Object.entries(sources)) {
        await Deno.mkdir(join(dir, name));
        await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
      }
      await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
      // Within the limit: answered.
      const fits = await server.invoke("small", { n: MiB - 100 });
      assert.equal(fits.status, 200);
      assert.equal((await fits.json()).s.length, MiB - 100);
      // Past it (the JSON body is 8 bytes more than the string).
      const over = await errorOf(await server.invoke("small", { n: MiB }));
      assert.deepEqual([over.status, over.code], [500, "answer_too_large"]);
      assert.equal(
        over.message,
        `Function 'small' answered ${MiB + 8} bytes, more than its maxAnswerBytes of ${MiB}; return less (fewer rows ` +
          "a request, a smaller output) or raise maxAnswerBytes in its definition",
      );
      // The default is 64 MiB.
      const big = await errorOf(await server.invoke("plain", { n: 64 * MiB }));
      assert.deepEqual([big.status, big.code], [500, "answer_too_large"]);
      assert.match(big.message, new RegExp(`more than its maxAnswerBytes of ${64 * MiB};`));
      // Tensor answers count their data: 2^18 FP32 is exactly 1 MiB, one more is past it.
      for (const [n, status] of [[2 ** 18, 200], [2 ** 18 + 1, 500]]) {
        const response = await fetch(`${server.url}/v2/models/zeros/infer`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            inputs: [{ name: "n", shape: [1], datatype: "INT32", data: [n] }],
            outputs: [{ name: "y", parameters: { binary_data: true } }],
          }),
        });
        assert.equal(response.status, status, `${n} zeros`);
        // KServe v2's error shape: the message alone.
        if (status === 500) {
          assert.deepEqual(await response.json(), {
            error: `Function 'zeros' answered ${4 * n} bytes, more than its maxAnswerBytes of ${MiB}; return less ` +
              "(fewer rows a request, a smaller output) or raise maxAnswerBytes in its definition",
          });
        } else await response.body?.cancel();
      }
      // The isolate still serves.
      const after = await server.invoke("small", { n: 10 });
      assert.deepEqual(await after.json(), { s: "x".repeat(10) });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Streams `count` items `{"s":"x…"}` of `k` characters (8 + k bytes each); a negative count streams until aborted. */
const streamer = (isolation: string) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Streams count items of k characters",
  isolation: "${isolation}",
  maxAnswerBytes: 1000,
  timeoutMs: 20000,
  input: z.object({ count: z.number().int(), k: z.number().int() }),
  output: z.object({ s: z.string() }),
  async *handler({ count, k }, { signal }) {
    for (let i = 0; count < 0 ? !signal.aborted : i < count; i++) {
      yield { s: "x".repeat(k) };
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  },
});
`;

for (const isolation of ["worker", "process"]) {
  Deno.test(`a stream past maxAnswerBytes ends with an answer_too_large item (${isolation} host)`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-answer-" });
    try {
      await Deno.mkdir(join(dir, "streamer"));
      await Deno.writeTextFile(join(dir, "streamer", "mod.ts"), streamer(isolation));
      await using server = await startServer({ functionsDir: dir });
      const items = async (count: number, sse: boolean) => {
        const response = await server.invoke("streamer", { count, k: 92 }, {
          headers: { "content-type": "application/json", ...(sse ? { accept: "text/event-stream" } : {}) },
        });
        assert.equal(response.status, 200);
        const text = await response.text();
        return sse
          ? text.split("\n\n").filter((f) => f).map((f) =>
            JSON.parse(f.split("\n").find((l) => l.startsWith("data:"))!.slice(5))
          )
          : text.trimEnd().split("\n").map((l) => JSON.parse(l));
      };
      const item = { s: "x".repeat(92) }; // 100 bytes of JSON
      for (const sse of [false, true]) {
        // Ten items are exactly the 1000 bytes: all sent.
        assert.deepEqual(await items(10, sse), Array(10).fill(item));
        // An eleventh is past it: the ten, then the error.
        for (const count of [11, -1]) {
          const got = await items(count, sse);
          assert.deepEqual(got.slice(0, 10), Array(10).fill(item));
          assert.equal(got.length, 11, `${count} items, sse ${sse}`);
          assert.equal(got[10].error.code, "answer_too_large");
          assert.match(got[10].error.message, /answered 1100 bytes, more than its maxAnswerBytes of 1000/);
        }
      }
      // The isolate still serves.
      assert.deepEqual(await items(1, false), [item]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
