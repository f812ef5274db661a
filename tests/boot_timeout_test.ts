/**
 * A start that runs out of time (`ISOLANE_BOOT_TIMEOUT_MS`) fails with the step it was in: a `setup` whose promise
 * never settles is named as such, instead of a bare "did not start"; the runtime serves its other functions. Real
 * runtime, real HTTP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer } from "./support/server.ts";

const sdk = fileURLToPath(new URL("../src/sdk.ts", import.meta.url));

const sources: Record<string, string> = {
  stuck: `import { defineFunction, z } from "${sdk}";
export default defineFunction({
  description: "A setup that never settles",
  input: z.object({}),
  output: z.object({}),
  setup: () => new Promise(() => {}),
  handler: () => ({}),
});
`,
  fine: `import { defineFunction, z } from "${sdk}";
export default defineFunction({
  description: "Answers",
  input: z.object({}),
  output: z.object({ ok: z.boolean() }),
  handler: () => ({ ok: true }),
});
`,
};

Deno.test("a start past ISOLANE_BOOT_TIMEOUT_MS names the step it was in; the other functions serve", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-boot-timeout-" });
  try {
    for (const [name, source] of Object.entries(sources)) {
      await Deno.mkdir(join(dir, name));
      await Deno.writeTextFile(join(dir, name, "mod.ts"), source);
    }
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_BOOT_TIMEOUT_MS: "2000" } });
    const { functions } = await (await fetch(`${server.url}/v1/functions`)).json();
    const stuck = functions.find((f: { name: string }) => f.name === "stuck");
    assert.match(
      String(stuck?.error),
      /Cannot load function 'stuck': the isolate did not start within 2000 ms: its setup\(\) had not finished/,
      JSON.stringify(stuck),
    );
    const fine = await server.invoke("fine", {});
    assert.deepEqual([fine.status, await fine.json()], [200, { ok: true }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
