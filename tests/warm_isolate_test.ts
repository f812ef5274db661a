/**
 * Which isolate a request goes to: the warmest idle one (the one that finished last), so that requests one at a time
 * keep one isolate's model and threads warm instead of going round robin; a request that arrives while that isolate
 * is busy goes to another.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startServer, until } from "./support/server.ts";

const echo = fileURLToPath(new URL("./fixtures/functions/echo", import.meta.url));

Deno.test("dispatch: requests one at a time stay on one isolate; one that arrives while it is busy goes to the other", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-warm-" });
  await Deno.mkdir(join(dir, "echo"));
  await Deno.copyFile(join(echo, "mod.ts"), join(dir, "echo", "mod.ts"));
  try {
    await using server = await startServer({ functionsDir: dir });
    for (let i = 0; i < 12; i++) {
      const response = await server.invoke("echo", { message: `m${i}` });
      assert.deepEqual(await response.json(), { message: `m${i}` });
    }
    const info = await (await fetch(`${server.url}/v1/functions/echo`)).json();
    const served = info.isolates.map((i: { served: number }) => i.served).sort((a: number, b: number) => a - b);
    assert.deepEqual(served, [0, 12], `served per isolate: ${served}`);

    const slow = server.invoke("echo", { message: "slow", delayMs: 5_000 });
    await until(server, "echo", (info) => info.isolates.some((i: { status: string }) => i.status === "busy"));
    const fast = await server.invoke("echo", { message: "fast" });
    assert.deepEqual(await fast.json(), { message: "fast" });
    const during = await (await fetch(`${server.url}/v1/functions/echo`)).json();
    assert.deepEqual(
      during.isolates.map((i: { served: number }) => i.served).sort((a: number, b: number) => a - b),
      [1, 12],
      "the busy isolate's request is still running, the other answered",
    );
    assert.deepEqual(await (await slow).json(), { message: "slow" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
