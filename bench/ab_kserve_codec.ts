/**
 * The v2 codec of two checkouts side by side, in one process: each `kserve.ts` decodes the suite's batch-1 binary
 * request of the 8×1024 MLP (`wideRequests`) and encodes its answer (1,024 FP32 outputs, binary), as an HTTP thread
 * does per request (`answerInferRequest`'s steps, without the model). The two alternate in blocks of `--block`
 * requests for `--rounds` rounds, and the medians of µs per request are printed (CPU time of this thread, from
 * `/proc/thread-self/schedstat`, so a busy machine's waits do not count). What it measures is the codec alone; the
 * runtime's whole cost per answer is `bench/thread_cpu.ts`'s.
 *
 *   deno run -A bench/ab_kserve_codec.ts <old src/server/kserve.ts> [<new src/server/kserve.ts>] [--rounds 20]
 *     [--block 5000]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import { wideRequests } from "./functions.ts";
import type * as Kserve from "../src/server/kserve.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { rounds: { type: "string", default: "20" }, block: { type: "string", default: "5000" } },
});
if (!positionals[0]) throw new Error("Usage: ab_kserve_codec.ts <old kserve.ts> [<new kserve.ts>]");
const paths = {
  old: positionals[0],
  new: positionals[1] ?? fileURLToPath(new URL("../src/server/kserve.ts", import.meta.url)),
};
const codecs: Record<string, typeof Kserve> = {};
for (const [k, p] of Object.entries(paths)) codecs[k] = await import(pathToFileURL(p).href);

const request = wideRequests().find((r) => r.key === "v2_binary")!;
const headerLength = request.headers["Inference-Header-Content-Length"];
const signature = {
  inputs: [{ name: "x", datatype: "FP32" as const, shape: [-1, 1024] }],
  outputs: [{ name: "y", datatype: "FP32" as const, shape: [-1, 1024] }],
};
const output = new Float32Array(1024).map((_, i) => i / 7);

/** ns of CPU this thread has used. */
function cpuNs(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]);
}

let sink = 0;
function block(codec: typeof Kserve, n: number): number {
  const started = cpuNs();
  for (let i = 0; i < n; i++) {
    // A body per request, as each request's read is.
    const body = request.body.slice();
    const decoded = codec.decodeInferRequest(signature, body, { headerLength });
    const tensors = [{ name: "y", datatype: "FP32", shape: [1, 1024], data: output.slice().buffer }];
    const encoded = codec.encodeInferResponse(
      { name: "mlp8x1024_batched", version: "1", ...(decoded.id !== undefined ? { id: decoded.id } : {}) },
      { tensors, outputs: decoded.outputs },
      { reuse: true },
    );
    sink += encoded.body.length + decoded.inputs[0].data.byteLength;
  }
  return (cpuNs() - started) / 1000 / n;
}

const n = Number(values.block);
for (const c of Object.values(codecs)) block(c, n); // warm-up
const us: Record<string, number[]> = { old: [], new: [] };
for (let r = 0; r < Number(values.rounds); r++) {
  for (const k of r % 2 ? ["new", "old"] : ["old", "new"]) us[k].push(block(codecs[k], n));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
console.log(
  `µs per request (decode + encode), medians of ${values.rounds} rounds of ${n}: old ${
    median(us.old).toFixed(2)
  }, new ${median(us.new).toFixed(2)} (load average ${load}; ${sink > 0 ? "" : "!"})`,
);
