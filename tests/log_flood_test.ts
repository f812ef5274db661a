/**
 * A function that writes one huge line with `console`: the runtime logs its first {@link maxLogText} characters and
 * says how many it left out. Logged whole, a 50 MB line held the runtime's main thread for over a second (every other
 * function's requests with it), and much longer behind a slow reader of the runtime's stdout.
 */
import assert from "node:assert/strict";
import { startServer } from "./support/server.ts";
import { maxLogText } from "../src/protocol.ts";

const shouter = (isolation: string) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Logs a line of n characters",
  isolation: "${isolation}",
  input: z.object({ n: z.number().int() }),
  output: z.object({ logged: z.number() }),
  handler: ({ n }) => {
    console.log("a" + "b".repeat(n - 1));
    return { logged: n };
  },
});
`;

for (const isolation of ["worker", "process"]) {
  Deno.test(`a function's huge console line is logged cut to ${maxLogText} characters (${isolation} host)`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-logs-" });
    try {
      await Deno.mkdir(`${dir}/shout`);
      await Deno.writeTextFile(`${dir}/shout/mod.ts`, shouter(isolation));
      await using server = await startServer({ functionsDir: dir });
      const n = 4 * 1024 * 1024;
      const response = await server.invoke("shout", { n }, {
        headers: { "content-type": "application/json", "x-request-id": "huge-line" },
      });
      assert.deepEqual(await response.json(), { logged: n });
      const line = await server.waitForLog((l) => l.msg === "function log" && l.request === "huge-line");
      const text = line.text as string;
      assert.equal(text.slice(0, maxLogText), "a" + "b".repeat(maxLogText - 1));
      assert.equal(text.slice(maxLogText), `… (${n - maxLogText} more characters left out)`);
      // A short line is logged as it is.
      await (await server.invoke("shout", { n: 10 }, {
        headers: { "content-type": "application/json", "x-request-id": "short-line" },
      })).body?.cancel();
      const short = await server.waitForLog((l) => l.msg === "function log" && l.request === "short-line");
      assert.equal(short.text, "abbbbbbbbb");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
