/**
 * A process host's child killed from outside (SIGKILL, as the OOM killer or an operator does) while it serves a
 * request: the request is answered 500 `isolate_crashed` saying so (not a memory limit, though the child printed
 * V8's words for one), a new child serves the next one, and another function never notices. With and without HTTP
 * threads.
 */
import assert from "node:assert/strict";
import { errorOf, startServer, until } from "./support/server.ts";
import { echoModule } from "./support/bundles.ts";

const slow = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Says it started, then waits",
  isolation: "process",
  input: z.object({ ms: z.number() }),
  output: z.object({ ms: z.number() }),
  async handler({ ms }) {
    // Words a library may print; the child's end is not put down to its heap for them.
    Deno.stderr.writeSync(new TextEncoder().encode("warning: JavaScript heap out of memory? not here\\n"));
    console.log("started");
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { ms };
  },
});
`;

for (const threads of ["0", "2"]) {
  Deno.test(`a process host's child killed with SIGKILL mid-request: 500, a new child, others unaffected (HTTP threads: ${threads})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-kill-" });
    try {
      for (const [name, source] of [["slow", slow], ["echo", echoModule]]) {
        await Deno.mkdir(`${dir}/${name}`);
        await Deno.writeTextFile(`${dir}/${name}/mod.ts`, source);
      }
      await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
      const info = await (await fetch(`${server.url}/v1/functions/slow`)).json();
      const pid: number = info.isolates[0].pid;
      const pending = server.invoke("slow", { ms: 60_000 }, {
        headers: { "content-type": "application/json", "x-request-id": "to-be-killed" },
      });
      await server.waitForLog((l) => l.msg === "function log" && l.request === "to-be-killed");
      await server.waitForLog((l) =>
        l.msg === "isolate stderr" && /heap out of memory\? not here/.test(String(l.text))
      );
      Deno.kill(pid, "SIGKILL");
      const e = await errorOf(await pending);
      assert.deepEqual([e.status, e.code], [500, "isolate_crashed"]);
      assert.equal(e.message, "The isolate exited (code 137, SIGKILL)");
      await until(server, "slow", (i) => i.isolates[0].status === "ready" && i.isolates[0].pid !== pid);
      assert.deepEqual(await (await server.invoke("slow", { ms: 1 })).json(), { ms: 1 });
      assert.deepEqual(await (await server.invoke("echo", { message: "still" })).json(), { message: "still" });
      const line = await server.waitForLog((l) => l.msg === "request" && l.id === "to-be-killed");
      assert.equal(line.status, 500);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
