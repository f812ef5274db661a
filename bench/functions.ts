/**
 * The functions the suite serves through isolane, written into a temporary functions folder so that each run
 * chooses their options (isolates, dynamic batching) without touching `functions/`.
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const mlpModel = fileURLToPath(new URL("../functions/mlp/mlp.onnx", import.meta.url));

/** Triton-style dynamic batching options, as isolane's `dynamicBatching` takes them. */
export interface DynamicBatching {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  preferredBatchSizes?: number[];
}

/** What the bench folder holds. */
export interface BenchFunctionsOptions {
  /** Isolates per function (`instances`). */
  instances: number;
  /** The echo function of scenario A. */
  echo?: boolean;
  /** The small `mlp` (4→16→3), as `mlp` (batching off) and `mlp_batched` (on). */
  mlp?: boolean;
  /** The 8×1024 MLP from this file, as `mlp8x1024` (batching off) and `mlp8x1024_batched` (on). */
  wideMlp?: string;
  /** The respawn probe of scenario D: `hang` ({"hang": true} runs past its `timeoutMs`). */
  hang?: { timeoutMs: number };
  /** The batching options of the `_batched` variants. */
  batching: DynamicBatching;
}

function mlpSource(
  { description, width, outWidth, instances, batching, maxRows }: {
    description: string;
    width: number;
    outWidth: number;
    instances: number;
    batching?: DynamicBatching;
    maxRows: number;
  },
): string {
  // runModel: the model on its inputs as they come, so dynamic batching needs no change (and CUDA lanes stage in place).
  return `import { defineFunction, runModel } from "isolane";

export default defineFunction({
  description: ${JSON.stringify(description)},
  models: { mlp: "model.onnx" },
  signature: {
    inputs: [{ name: "x", datatype: "FP32", shape: [-1, ${width}] }],
    outputs: [{ name: "y", datatype: "FP32", shape: [-1, ${outWidth}] }],
  },
  instances: ${instances},
  maxBodyBytes: ${Math.max(1, maxRows) * width * 24},
  queueDepth: 4096,
${
    // CUDA lanes replay the batched model as CUDA graphs, one per padded batch size (ignored on CPU lanes).
    batching ? `  dynamicBatching: ${JSON.stringify(batching)},\n  cudaGraph: true,\n` : ""}  handler: runModel("mlp"),
});
`;
}

const echoSource = (instances: number) =>
  `import { defineFunction, z } from "isolane";

export default defineFunction({
  description: "Echoes a message",
  input: z.object({ message: z.string().max(1000) }),
  output: z.object({ message: z.string() }),
  instances: ${instances},
  handler({ message }) {
    return { message };
  },
});
`;

const hangSource = (timeoutMs: number) =>
  `import { defineFunction, z } from "isolane";

export default defineFunction({
  description: "Answers at once, or never when asked to hang (to time out and be respawned)",
  input: z.object({ hang: z.boolean() }),
  output: z.object({ ok: z.boolean() }),
  timeoutMs: ${timeoutMs},
  // Ignores its signal: ended at the deadline, so the measurement is the respawn alone.
  abortGraceMs: 0,
  handler({ hang }) {
    if (hang) return new Promise<{ ok: boolean }>(() => {});
    return { ok: true };
  },
});
`;

async function writeFunction(root: string, name: string, source: string, model?: string): Promise<void> {
  const dir = join(root, name);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "mod.ts"), source);
  if (model) await Deno.copyFile(model, join(dir, "model.onnx"));
}

/**
 * Writes one function folder per entry into `root` (created if missing).
 * @example
 * ```ts
 * await writeBenchFunctions(dir, { instances: 2, echo: true, batching: { maxBatchSize: 64, maxQueueDelayMs: 2 } });
 * ```
 */
export async function writeBenchFunctions(root: string, options: BenchFunctionsOptions): Promise<void> {
  const { instances, batching } = options;
  if (options.echo) await writeFunction(root, "echo", echoSource(instances));
  if (options.mlp) {
    for (const [name, on] of [["mlp", false], ["mlp_batched", true]] as const) {
      const source = mlpSource({
        description: "Two-layer perceptron, 4 inputs to 3 outputs",
        width: 4,
        outWidth: 3,
        instances,
        batching: on ? batching : undefined,
        maxRows: 4096,
      });
      await writeFunction(root, name, source, mlpModel);
    }
  }
  if (options.wideMlp) {
    for (const [name, on] of [["mlp8x1024", false], ["mlp8x1024_batched", true]] as const) {
      const source = mlpSource({
        description: "8×1024 fp32 ReLU MLP",
        width: 1024,
        outWidth: 1024,
        instances,
        batching: on ? batching : undefined,
        maxRows: 1024,
      });
      await writeFunction(root, name, source, options.wideMlp);
    }
  }
  if (options.hang) await writeFunction(root, "hang", hangSource(options.hang.timeoutMs));
}

/** The small mlp's folder as `functions/` ships it, for the deploy (cold start) measurement. */
export const mlpFolder: string = fileURLToPath(new URL("../functions/mlp", import.meta.url));

/**
 * A KServe v2 infer request for one FP32 row of input `x` in the binary tensor data extension: the JSON header
 * (`binary_data_size`, and output `y` asked back binary), then the row's little-endian bytes. Its header's length goes
 * in `Inference-Header-Content-Length`.
 */
export function v2BinaryBody(row: readonly number[]): { body: Uint8Array; headerLength: number } {
  const header = new TextEncoder().encode(JSON.stringify({
    inputs: [{ name: "x", shape: [1, row.length], datatype: "FP32", parameters: { binary_data_size: row.length * 4 } }],
    outputs: [{ name: "y", parameters: { binary_data: true } }],
  }));
  const body = new Uint8Array(header.byteLength + row.length * 4);
  body.set(header, 0);
  body.set(new Uint8Array(Float32Array.from(row).buffer), header.byteLength);
  return { body, headerLength: header.byteLength };
}

/** One row of 1,024 deterministic inputs of the 8×1024 MLP. */
export function wideRow(): number[] {
  return Array.from({ length: 1024 }, (_, i) => Math.round(Math.sin(i * 0.37) * 5000) / 10_000);
}

/** A batch-1 request to the batched 8×1024 MLP, ready for `wrk`. */
export interface WideRequest {
  /** `v2_binary` or `v1_json` (also a file name). */
  key: string;
  path: string;
  body: Uint8Array;
  contentType: string;
  headers: Record<string, string>;
}

/**
 * The same row of {@link wideRow} to `mlp8x1024_batched` as a KServe v2 binary request and as a `/v1` JSON request, as
 * the main-thread and per-thread CPU benches post them.
 */
export function wideRequests(): WideRequest[] {
  const row = wideRow();
  const { body: binary, headerLength } = v2BinaryBody(row);
  return [
    {
      key: "v2_binary",
      path: "/v2/models/mlp8x1024_batched/infer",
      body: binary,
      contentType: "application/octet-stream",
      headers: { "Inference-Header-Content-Length": String(headerLength) },
    },
    {
      key: "v1_json",
      path: "/v1/functions/mlp8x1024_batched",
      body: new TextEncoder().encode(JSON.stringify({ x: [row] })),
      contentType: "application/json",
      headers: {},
    },
  ];
}
