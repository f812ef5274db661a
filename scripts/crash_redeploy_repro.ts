/**
 * Reproduces a SIGSEGV of the whole runtime (exit 139) found by the adversarial pass over the third session's work: a
 * Worker-hosted copy of `mlp` whose handler throws from a timer while its model runs (the isolate crashes mid-run,
 * during a nonblocking ORT C API run) is deployed again after each crash. Before the fix the runtime died in 3 of 3 runs
 * of 80 rounds (rounds 28, 52, 73). The cause: ending the crashed Worker closed ONNX Runtime's library and libffi
 * (`dlclose`) when it held their last handles, while its run went on inside them. The runtime's main thread now holds
 * both for good (`keepOrtLoaded` in `native/ort/ffi.ts`); since then 80 rounds pass (4 of 4 runs), and
 * `native/ort/keep_loaded_test.ts` tests the mechanism. Prints the runtime's last log lines if it dies.
 *
 * `deno run -A scripts/crash_redeploy_repro.ts [--rounds 80] [--delay-ms 60] [--wait-respawn] [--no-redeploy]`
 * @module
 */
import { parseArgs } from "node:util";
import { adminToken, bundleOf, deploy } from "../tests/support/bundles.ts";
import { startServer } from "../tests/support/server.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "80" },
    "no-redeploy": { type: "boolean", default: false },
    "wait-respawn": { type: "boolean", default: false },
    "delay-ms": { type: "string", default: "60" },
  },
});
const functionsDir = await Deno.makeTempDir({ prefix: "isolane-repro-" });
const server = await startServer({
  functionsDir,
  env: {
    ISOLANE_ISOLATION: "worker",
    ISOLANE_HTTP_THREADS: "0",
    ISOLANE_SPARE_ISOLATES: "off",
    ISOLANE_ADMIN_TOKEN: adminToken,
    ISOLANE_LOG_LEVEL: "debug",
  },
});
const model = await Deno.readFile(new URL("../functions/mlp/mlp.onnx", import.meta.url));
const source = await Deno.readTextFile(new URL("../functions/mlp/mod.ts", import.meta.url));
const crashy = source.replace(
  'handler: runModel("mlp"),',
  `async handler(input, ctx) {
    if ((input.x as { data: Float32Array }).data[0] === 66) setTimeout(() => { throw new Error("crash"); }, 0);
    return await runModel("mlp")(input, ctx);
  },`,
);
const bundle = await bundleOf({ "mod.ts": crashy, "mlp.onnx": model });
for (let round = 0; round < Number(args.rounds); round++) {
  if (round === 0 || !args["no-redeploy"]) await (await deploy(server, "m", bundle)).body?.cancel();
  const crash = await fetch(`${server.url}/v1/functions/m`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ x: [[66, 1, 2, 3]] }),
  }).catch(() => undefined);
  await crash?.body?.cancel();
  const after = server.logs.length;
  await server.waitForLog((l) => l.msg === "isolate stopped" && l.function === "m", 5000).catch(() => {});
  if (args["wait-respawn"]) {
    await server.waitForLog(
      (l) => l.msg === "isolate respawned" && l.function === "m" && server.logs.indexOf(l) >= after,
      5000,
    ).catch(() => {});
  }
  await new Promise((resolve) => setTimeout(resolve, Math.random() * Number(args["delay-ms"])));
  const live = await fetch(`${server.url}/v2/health/live`).then((r) => (r.body?.cancel(), r.ok), () => false);
  if (!live) {
    console.log(`the runtime died in round ${round}:`, JSON.stringify(await server.stop()));
    for (const line of server.logs.slice(-20)) if (line.msg !== "raw") console.log(JSON.stringify(line));
    Deno.exit(1);
  }
}
console.log(`the runtime survived ${args.rounds} rounds`);
await server[Symbol.asyncDispose]();
await Deno.remove(functionsDir, { recursive: true });
