/**
 * ONNX Runtime 1.29's Linux library carries Microsoft's 1DS telemetry (events for
 * `https://mobile.events.data.microsoft.com/OneCollector/1.0`), on unless
 * `ORT_DISABLE_TELEMETRY` is set: every process that loads it, the runtime and
 * each process host's child, left a `mat-debug-<pid>.log` and a `.ses` file in
 * the temporary folder (17,096 of them in this machine's /tmp). The runtime
 * turns it off for itself and its children, unless the operator set the
 * variable. Real runtime, real children, real model runs.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startServer } from "./support/server.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));

Deno.test("ORT telemetry: off in the runtime and its process hosts; no mat-debug files in TMPDIR", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "isolane-telemetry-" });
  try {
    {
      // The test task turns telemetry off for the tests' own ORT; the runtime must not inherit that.
      await using server = await startServer({
        functionsDir,
        env: { TMPDIR: tmp, ISOLANE_ISOLATION: "process" },
        unsetEnv: ["ORT_DISABLE_TELEMETRY"],
      });
      const info = await (await fetch(`${server.url}/v1/functions/mlp`)).json();
      assert.equal(info.isolates[0].isolation, "process");
      const response = await server.invoke("mlp", { x: [[1, 2, 3, 4]] });
      assert.equal(response.status, 200, await response.text());
      assert.equal((await server.stop()).code, 0);
    }
    const left = [...Deno.readDirSync(tmp)].map((e) => e.name).filter((n) =>
      n.startsWith("mat-debug-") || n === ".ses"
    );
    assert.deepEqual(left, []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
