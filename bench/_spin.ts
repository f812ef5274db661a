import { NativeSession, OrtEnv, ortLibraryPath } from "../native/ort/mod.ts";
import { Tensor } from "onnxruntime-common";
const env = OrtEnv.open({ libraryPath: ortLibraryPath(new URL("../node_modules", import.meta.url).pathname) });
const path = Deno.env.get("M") ?? new URL("./.models/mlp8x1024.onnx", import.meta.url).pathname;
const mk = (spin: string, nonblocking: boolean) => NativeSession.create(env, path, { provider: "cpu", nonblocking, graphOptimization: "all", intraOpThreads: 2, interOpThreads: 1, config: spin === "fss" ? { "session.force_spinning_stop": "1" } : { "session.intra_op.allow_spinning": spin } });
const variants = { "spin nb": mk("1", true), "nospin nb": mk("0", true), "fss nb": mk("fss", true) };
const W = Number(Deno.env.get("W") ?? 1024);
const batch = Number(Deno.args[0] ?? 1);
const feeds = { x: new Tensor("float32", new Float32Array(batch * W).fill(0.1), [batch, W]) };
const res: Record<string, number[]> = {};
for (let r = 0; r < 5; r++) for (const [k, s] of Object.entries(variants)) {
  for (let i = 0; i < 5; i++) await s.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < 150; i++) { const t = performance.now(); await s.run(feeds); times.push(performance.now() - t); }
  times.sort((a, b) => a - b);
  (res[k] ??= []).push(times[75] * 1000);
}
for (const [k, v] of Object.entries(res)) console.log(`${k.padEnd(14)} p50 µs per round: ${v.map((x) => x.toFixed(0)).join(" ")}; median ${[...v].sort((a, b) => a - b)[2].toFixed(0)}`);
console.log(Deno.loadavg());
