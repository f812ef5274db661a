import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseNcu } from "./gpu_perf_probe.ts";

Deno.test("parseNcu adds up each kernel's gpu__time_duration.sum over ncu's report, in µs", () => {
  const report = [
    "==PROF== Connected to process 4242 (/usr/bin/deno)",
    '==PROF== Profiling "Kernel2" - 0: 0%....50%....100% - 1 pass',
    "[4242] deno@127.0.0.1",
    "  void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_64x64_32x6_nn_align4>(T1::Params) (16, 1, 1)x(128, 1, 1), Context 1, Stream 13, Device 0, CC 9.0",
    "    Section: Command line profiler metrics",
    "    ----------------------- ----------- ------------",
    "    Metric Name             Metric Unit Metric Value",
    "    gpu__time_duration.sum      usecond         8.50",
    "  void onnxruntime::cuda::_UnaryElementWise<float, float, OP_Relu<float>, 256, 4>(const T1 *, T2 *, T3, int) (64, 1, 1)x(256, 1, 1), Context 1, Stream 13, Device 0, CC 9.0",
    "    gpu__time_duration.sum      nsecond         1,536",
    "  void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_64x64_32x6_nn_align4>(T1::Params) (16, 1, 1)x(128, 1, 1), Context 1, Stream 14, Device 0, CC 9.0",
    "    gpu__time_duration.sum      usecond         9.50",
  ].join("\n");
  const rows = parseNcu(report);
  assert.equal(rows.length, 2);
  assert.match(rows[0].kernel, /tensorop_s1688gemm/);
  assert.deepEqual([rows[0].count, rows[0].meanUs, rows[0].totalUs, rows[0].streams], [2, 9, 18, [13, 14]]);
  assert.deepEqual([rows[1].count, rows[1].meanUs], [1, 1.54]);
});

Deno.test("the probe runs its CPU fallback end to end and writes one JSON file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-probe-test-" });
  try {
    const json = `${dir}/probe.json`;
    const { code, stdout } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fileURLToPath(new URL("./gpu_perf_probe.ts", import.meta.url)),
        "--dry-run",
        "--json",
        json,
        "--seconds",
        "0.02",
        "--sections",
        "breakdown,floor,gated",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stdout));
    const out = JSON.parse(await Deno.readTextFile(json));
    assert.deepEqual(out.sections.map((s: { section: string }) => s.section), ["breakdown", "gated", "floor"]);
    assert.deepEqual(out.summary.errors, []);
    assert.deepEqual(out.summary.failedSections, []);
    const cases = new Set(out.sections.flatMap((s: { results: { case: string }[] }) => s.results.map((r) => r.case)));
    for (const c of ["legacy", "fast", "session", "ffi", "copies", "identity.session", "identity.raw", "gated"]) {
      assert.ok(cases.has(c), `no '${c}' result`);
    }
    // Every end-to-end case computes the CPU reference's answer.
    for (const r of out.sections[0].results.filter((r: { case: string }) => r.case === "session")) {
      assert.equal(r.maxRelDiff, 0, JSON.stringify(r));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
