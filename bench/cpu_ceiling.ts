/**
 * The CPU ceiling of the 8×1024 MLP through the path CPU isolates use (`NativeSession`, `nonblocking`, a signal per
 * run, as a request's run has), several session settings side by side, interleaved round after round so that a
 * machine shared with others slows each alike: for each setting and batch size it runs the model back to back for
 * `--ms` and records rows/s and the median run; the medians of the rounds are printed, with the load average.
 *
 *   deno run -A bench/cpu_ceiling.ts [--rounds 5] [--ms 500] [--batches 1,32,64] [--settings t2,t2spin,t1]
 *
 * Settings: `tN` N intra-op threads with spinning off (isolane's CPU default), `tNspin` with spinning on (ORT's
 * default), `tNfss` spinning within a run and stopped at its end (`session.force_spinning_stop`); a suffix `x2` (`t2x2`) loads the model twice and alternates the runs between the two sessions, as two
 * isolates of a function served round robin do (each with its own copy of the weights). Needs `bench/.models/mlp8x1024.onnx` (`deno run -A bench/make_mlp8x1024.ts`).
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Tensor } from "onnxruntime-common";
import { NativeSession, OrtEnv, ortLibraryPath } from "../native/ort/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "5" },
    ms: { type: "string", default: "500" },
    batches: { type: "string", default: "1,32,64" },
    settings: { type: "string", default: "t2,t2spin,t1" },
    model: { type: "string", default: fileURLToPath(new URL("./.models/mlp8x1024.onnx", import.meta.url)) },
  },
});
const env = OrtEnv.open({ libraryPath: ortLibraryPath(fileURLToPath(new URL("../node_modules", import.meta.url))) });
const signal = new AbortController().signal;
const sessions = values.settings.split(",").map((name) => {
  const m = name.match(/^t(\d+)(spin|fss)?(x2)?$/);
  if (!m) throw new Error(`Unknown setting '${name}': tN, tNspin, tNfss, each with x2 or not`);
  const copies = Array.from({ length: m[3] ? 2 : 1 }, () =>
    NativeSession.create(env, values.model, {
      provider: "cpu",
      nonblocking: true,
      graphOptimization: "all",
      intraOpThreads: Number(m[1]),
      interOpThreads: 1,
      config: m[2] === "fss"
        ? { "session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1" }
        : { "session.intra_op.allow_spinning": m[2] ? "1" : "0" },
    }));
  let turn = 0;
  return {
    name,
    run: (feeds: Record<string, Tensor>) => copies[turn++ % copies.length].run(feeds, { signal }),
    release: () => Promise.all(copies.map((c) => c.release())),
  };
});
const width = 1024;
const batches = values.batches.split(",").map(Number);
const feeds = new Map(
  batches.map((b) => [b, { x: new Tensor("float32", Float32Array.from({ length: b * width }, Math.sin), [b, width]) }]),
);
const figures = new Map<string, number[]>();
const add = (key: string, value: number) => figures.set(key, [...figures.get(key) ?? [], value]);
const loadBefore = Deno.loadavg()[0];
for (const { run } of sessions) for (const b of batches) (await run(feeds.get(b)!), await run(feeds.get(b)!));
for (let round = 0; round < Number(values.rounds); round++) {
  for (const b of batches) {
    for (const { name, run } of sessions) {
      const times: number[] = [];
      const start = performance.now();
      while (performance.now() - start < Number(values.ms)) {
        const t0 = performance.now();
        await run(feeds.get(b)!);
        times.push(performance.now() - t0);
      }
      const elapsed = (performance.now() - start) / 1000;
      times.sort((x, y) => x - y);
      add(`${name}\tbatch ${b}\trows/s`, (times.length * b) / elapsed);
      add(`${name}\tbatch ${b}\tp50 µs`, times[Math.floor(times.length / 2)] * 1000);
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log("setting\tbatch\tfigure\tmedian\trounds");
for (const [key, xs] of figures) console.log(`${key}\t${Math.round(median(xs))}\t${xs.map(Math.round).join(" ")}`);
console.log(`load average (1 min): ${loadBefore.toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after`);
for (const { release } of sessions) await release();
