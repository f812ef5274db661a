/**
 * A request still running when the shutdown's grace period ends is answered 503 with a message that says the
 * runtime is shutting down (it said "The function was unloaded", which reads like a redeploy). Real runtime, real
 * HTTP, a real SIGTERM.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { errorOf, startServer, until } from "./support/server.ts";

const sdk = fileURLToPath(new URL("../src/sdk.ts", import.meta.url));

const source = `import { defineFunction, z } from "${sdk}";
export default defineFunction({
  description: "Takes 20 s",
  input: z.object({}),
  output: z.object({}),
  instances: 1,
  timeoutMs: 60_000,
  handler: () => new Promise((resolve) => setTimeout(() => resolve({}), 20_000)),
});
`;

Deno.test("a request running past the shutdown's grace period gets 503 saying the runtime is shutting down", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-shutdown-" });
  try {
    await Deno.mkdir(join(dir, "slow"));
    await Deno.writeTextFile(join(dir, "slow", "mod.ts"), source);
    // HTTP on the main thread, and on HTTP threads (which must answer before they end).
    for (const httpThreads of ["0", "2"]) {
      const server = await startServer({
        functionsDir: dir,
        env: { ISOLANE_SHUTDOWN_GRACE_MS: "300", ISOLANE_HTTP_THREADS: httpThreads },
      });
      const running = server.invoke("slow", {});
      await until(server, "slow", (info) => info.isolates[0].status === "busy");
      server.kill("SIGTERM");
      const e = await errorOf(await running);
      assert.equal(e.status, 503, `${httpThreads} threads`);
      assert.equal(e.code, "function_unavailable");
      assert.match(e.message, /The runtime is shutting down \(300 ms grace period over\); retry the request/);
      assert.equal((await server.stop()).code, 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
