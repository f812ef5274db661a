/**
 * Where ORT placed each node of a session, read from ORT's own verbose
 * placement log (`VerifyEachNodeIsAssignedToAnEp`, logged while a session
 * initialises):
 *
 * ```
 * Node placements
 *  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 3
 *   MatMul (fc1)
 *  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2
 *   Shape (shape0)
 * ```
 * or, when one provider takes every node, `All nodes placed on [X]. Number of nodes: N`.
 *
 * The log is read from a probe session that is created with the same options,
 * logs through the library's callback on the calling thread, and never runs.
 * @module
 */
import type onnxProto from "onnx-proto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { OrtError } from "./error.ts";
import type { OrtLogLine } from "./ffi.ts";
import type { OrtEnv, Session, SessionOptions } from "./ort.ts";

/** One node as the placement log names it. */
export interface PlacedNode {
  opType: string;
  /** The node's name (may be empty for unnamed nodes). */
  name: string;
}

/** Nodes per execution provider (`CUDAExecutionProvider`, `CPUExecutionProvider`, ...). */
export interface Placement {
  [provider: string]: {
    /** How many nodes the provider runs. */
    count: number;
    /** The nodes, when ORT lists them (it does not when one provider takes all). */
    nodes: PlacedNode[];
  };
}

const header = /(Node\(s\)|All nodes) placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const nodeLine = /^\s+(\S+) \((.*)\)\s*$/;

/** Parses ORT's placement log lines (messages only, without the sink's prefix). */
export function parsePlacement(messages: readonly string[]): Placement {
  const placement: Placement = {};
  let current: string | null = null;
  for (const message of messages) {
    const h = header.exec(message);
    if (h) {
      current = h[2];
      placement[current] = { count: Number(h[3]), nodes: [] };
      continue;
    }
    const n = current ? nodeLine.exec(message) : null;
    if (n && current) {
      placement[current].nodes.push({ opType: n[1], name: n[2] });
    } else if (!message.startsWith(" ")) {
      current = null;
    }
  }
  return placement;
}

/**
 * Operators that do the heavy arithmetic of a model: one of these on the CPU
 * while a GPU provider was asked for is a silent fallback, not a shape op.
 */
export const computeOps: ReadonlySet<string> = new Set([
  "MatMul",
  "Gemm",
  "Conv",
  "ConvTranspose",
  "FusedMatMul",
  "FusedGemm",
  "FusedConv",
  "MatMulNBits",
  "MatMulInteger",
  "MatMulIntegerToFloat",
  "DynamicQuantizeMatMul",
  "QLinearConv",
  "QLinearMatMul",
  "QGemm",
  "ConvInteger",
  "Attention",
  "MultiHeadAttention",
  "GroupQueryAttention",
  "PackedAttention",
  "PackedMultiHeadAttention",
  "DecoderMaskedMultiHeadAttention",
  "SkipLayerNormalization",
  "Einsum",
  "LSTM",
  "GRU",
  "RNN",
]);

/** Compute nodes placed on the CPU provider, as `OpType (name)`. */
export function cpuComputeNodes(placement: Placement): string[] {
  const cpu = placement.CPUExecutionProvider;
  if (!cpu) return [];
  return cpu.nodes.filter((n) => computeOps.has(n.opType)).map((n) => `${n.opType} (${n.name})`);
}

/**
 * Placement as a profile shows it: ORT's Chrome-trace profile
 * ({@link Session.endProfiling}) has one `Node` event per kernel run, whose
 * `args` name the `op_name` and the `provider` that ran it. Unlike the load
 * log, this is what really ran.
 */
export function placementFromProfile(events: unknown): Placement {
  const placement: Placement = {};
  const seen = new Set<string>();
  for (const event of Array.isArray(events) ? events : []) {
    const e = event as { cat?: string; name?: string; args?: { op_name?: string; provider?: string } };
    if (e.cat !== "Node" || !e.args?.provider || !e.args.op_name || !e.name) continue;
    // Events are named `<node>_kernel_time` (also _fence_before/_fence_after); one entry per node.
    const name = e.name.replace(/_(kernel_time|fence_before|fence_after)$/, "");
    const key = `${e.args.provider}/${name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const entry = placement[e.args.provider] ??= { count: 0, nodes: [] };
    entry.count++;
    entry.nodes.push({ opType: e.args.op_name, name });
  }
  return placement;
}

/**
 * Creates a probe session from `path` with options from `makeOptions`
 * (called once; its result gets verbose logging through the callback), reads
 * the placement log and releases the probe.
 * @throws {OrtError} when the probe session cannot be created (the same error the real session would raise).
 */
export function probePlacement(env: OrtEnv, path: string, makeOptions: () => SessionOptions): Placement {
  const lines: string[] = [];
  const library = env.library;
  using options = makeOptions();
  options.logToCallback();
  options.logSeverity("verbose");
  const previous = library.logSink;
  library.logSink = (line: OrtLogLine) => lines.push(line.message);
  let probe: Session | undefined;
  try {
    probe = env.session(path, options);
  } finally {
    library.logSink = previous;
    probe?.close();
  }
  const placement = parsePlacement(lines);
  const providers = Object.keys(placement);
  if (providers.length === 0) {
    throw new OrtError("probePlacement", 1, "ORT logged no node placement for this session");
  }
  // ORT lists no nodes when one provider takes them all: name them from the model's graph.
  if (providers.length === 1 && placement[providers[0]].nodes.length === 0) {
    placement[providers[0]].nodes = graphNodes(path);
  }
  return placement;
}

/** The nodes of a model's main graph, read from its file. */
function graphNodes(path: string): PlacedNode[] {
  // Required here, not imported at the top: protobufjs costs an isolate some 30 ms to load, and this is rare. From
  // the package's own path, which an isolate may read without a grant of its node_modules folder.
  const at = import.meta.resolve("onnx-proto");
  const { onnx } = createRequire(at)(fileURLToPath(at)) as typeof onnxProto;
  const model = onnx.ModelProto.decode(Deno.readFileSync(path));
  return (model.graph?.node ?? []).map((n) => ({ opType: n.opType ?? "", name: n.name ?? "" }));
}
