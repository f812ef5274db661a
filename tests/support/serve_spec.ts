/**
 * The spec of one isolate serving a module at `${dir}/mod.ts` on a CPU lane, as the supervisor would make it: for
 * tests and benchmarks that drive an isolate host directly, without a runtime.
 * @module
 */
import type { HostSpec } from "../../src/pool/host.ts";
import { limitsFor } from "../../src/pool/limits.ts";
import { functionOptionsSchema } from "../../src/sdk.ts";

/** A `serve` spec for the function named `name` in `dir` (one ORT thread, a 60 s boot limit). */
export function cpuServeSpec(dir: string, name: string, description: string): HostSpec {
  const options = functionOptionsSchema.parse({ description });
  const lane = { kind: "cpu" } as const;
  return {
    init: {
      mode: "serve",
      name,
      moduleUrl: new URL(`file://${dir}/mod.ts`).href,
      modelPaths: {},
      assetPaths: {},
      kernelsPtxPath: null,
      lane,
      ortThreads: 1,
    },
    limits: limitsFor(options, { dir, files: [], lane }),
    bootTimeoutMs: 60_000,
  };
}
