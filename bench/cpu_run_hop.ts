/**
 * What a nonblocking run costs over a blocking one, for a model whose run is short: the small `mlp` (4→16→3) through
 * the C API (`NativeSession`, 2 intra-op threads that sleep, as CPU lanes have them), nonblocking (Deno's
 * blocking-thread pool, as CPU isolates run) against blocking (on the calling thread), each as `runStaged` (what a
 * `runModel` handler uses), `run`, and `run` with a signal; alternated round after round, medians of µs per run.
 *
 *   deno run -A bench/cpu_run_hop.ts [--rows 20] [--rounds 7] [--runs 1000]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Tensor } from "onnxruntime-common";
import { NativeSession, OrtEnv, ortLibraryPath, type StagedOutput } from "../native/ort/mod.ts";
import { stagedModel } from "../src/isolate/staged_model.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rows: { type: "string", default: "20" },
    rounds: { type: "string", default: "7" },
    runs: { type: "string", default: "1000" },
  },
});
const rows = Number(values.rows);
const runs = Number(values.runs);
const libraryPath = ortLibraryPath(fileURLToPath(new URL("../node_modules", import.meta.url)));
const path = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));
const env = OrtEnv.open({ libraryPath });
const settings = { provider: "cpu", intraOpThreads: 2, interOpThreads: 1 } as const;
const config = { "session.intra_op.allow_spinning": "0" };
const sessions = {
  nonblocking: NativeSession.create(env, path, { ...settings, config, nonblocking: true }),
  blocking: NativeSession.create(env, path, { ...settings, config, nonblocking: false }),
};
const x = new Tensor("float32", new Float32Array(rows * 4).fill(0.5), [rows, 4]);
const request = {
  inputs: [{ name: "x", type: "float32" as const, dims: [rows, 4] }],
  fill(_name: string, into: Uint8Array) {
    new Float32Array(into.buffer, into.byteOffset, rows * 4).fill(0.5);
  },
  consume(outputs: Record<string, StagedOutput>) {
    return Object.values(outputs)[0].bytes.byteLength;
  },
};
const loadBefore = Deno.loadavg()[0];
const times = new Map<string, number[]>();
for (let round = 0; round < Number(values.rounds); round++) {
  for (const [name, session] of Object.entries(sessions)) {
    const model = stagedModel(session);
    const signal = new AbortController().signal;
    const kinds = {
      runStaged: () => model.run(request),
      run: () => session.run({ x }),
      "run with a signal": () => session.run({ x }, { signal }),
    };
    for (const [kind, once] of Object.entries(kinds)) {
      const started = performance.now();
      for (let i = 0; i < runs; i++) await once();
      const key = `${name} ${kind}`;
      times.set(key, [...times.get(key) ?? [], ((performance.now() - started) * 1000) / runs]);
    }
  }
}
console.log(`${rows} rows; µs per run, medians of ${values.rounds} rounds of ${runs} runs`);
for (const [key, list] of times) {
  const sorted = list.toSorted((a, b) => a - b);
  console.log(`  ${key.padEnd(32)} ${sorted[sorted.length >> 1].toFixed(1)}`);
}
console.log(`load average (1 min): ${loadBefore.toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after`);
for (const session of Object.values(sessions)) await session.release();
env.close();
