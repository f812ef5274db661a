/**
 * Edits of a declared model that the runtime makes when it loads a function
 * ({@link ModelDeclaration}'s `outputs`): reductions over one axis of the
 * model's outputs, appended as ONNX nodes, which replace its outputs. For a
 * model from an npm package, whose file the function cannot change: PP-OCR's
 * recogniser gives 6,625 probabilities a step, and only the best class and
 * its probability are read (H200: its run from 3.91 to 2.07 ms for two
 * 640-px lines, the copy back of the whole output saved).
 *
 * The host edits the model once per load, before any isolate starts, and
 * writes it to a folder of its own (0700, removed when the runtime exits;
 * `isolane-models-<pid>-<start time>-…` in the temporary folder, so that a
 * runtime that starts removes the folders of runtimes killed with SIGKILL:
 * {@link removeStaleEditedModels}), under a name made from the hash of the
 * source's bytes and the edit: every session of the
 * function opens that file by path, as it would the declared one, so the
 * model list, the placement probe, sessions per shape and shared weights
 * work on it unchanged.
 *
 * @example
 * ```ts
 * const paths = await editModels("ocr", options.models, await resolveFilePaths("ocr", modelFiles(options.models), where));
 * // paths.rec: "/tmp/isolane-models-4242-1893705-x1y2/3fa9….onnx", whose outputs are `classes` and `probs`
 * ```
 * @module
 */
import { join } from "node:path";
import type onnxProto from "onnx-proto";
import type { ModelDeclaration, OutputReduction } from "../sdk.ts";
import { IsolaneError } from "../errors.ts";
import { loadOnnxProto } from "./_onnx_proto.ts";
import { externalDataRefs } from "./external_data.ts";
import { ownedPrefix, removeStaleFolders } from "../owned_folders.ts";

type ValueInfo = onnxProto.onnx.IValueInfoProto;

/** `TensorProto.DataType.INT64`: what ArgMax and ArgMin give. */
const int64 = 7;

/**
 * `TensorProto.DataType`s that ArgMax, ArgMin, ReduceMax and ReduceMin reduce (ONNX's numeric types); others by name,
 * for the message that refuses them.
 */
const reducible = new Set([1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 16]);
const typeNames: Record<number, string> = { 8: "string", 9: "bool", 14: "complex64", 15: "complex128" };

/** The file of each declared model (`models` as written in a definition). */
export function modelFiles(models: Record<string, string | ModelDeclaration>): Record<string, string> {
  return Object.fromEntries(Object.entries(models).map(([name, m]) => [name, typeof m === "string" ? m : m.file]));
}

/** Names of the function and the model, for messages. */
export interface EditNames {
  fn: string;
  model: string;
}

/**
 * The model `bytes` with `outputs` appended and made its only outputs.
 * @throws {IsolaneError} `function_unavailable` naming the model and what is wrong: an output that reduces no output
 * of the model, a name already taken by a value of the model, an output that is not numeric or is a scalar, an axis
 * out of the output's rank, a model that keeps
 * tensors in external data files, or bytes that are not an ONNX model.
 */
export async function appendOutputs(
  bytes: Uint8Array,
  outputs: Readonly<Record<string, OutputReduction>>,
  names: EditNames,
): Promise<Uint8Array> {
  const fail = (reason: string) =>
    new IsolaneError("function_unavailable", `Cannot load function '${names.fn}': model '${names.model}' ${reason}`);
  const { onnx } = await loadOnnxProto();
  let model: onnxProto.onnx.ModelProto;
  let external: number;
  try {
    model = onnx.ModelProto.decode(bytes);
    external = (await externalDataRefs(bytes)).length;
  } catch (error) {
    throw fail(`is not a valid ONNX model: ${(error as Error).message}`);
  }
  // The edited copy lives in another folder, where the external files' relative locations would not resolve.
  if (external > 0) throw fail("keeps tensors in external data files: its outputs cannot be edited at load");
  const graph = model.graph;
  if (!graph) throw fail("is not a valid ONNX model: it has no graph");
  const own = new Map((graph.output ?? []).map((o) => [o.name ?? "", o]));
  const taken = new Set<string>([
    ...(graph.input ?? []).map((v) => v.name ?? ""),
    ...(graph.initializer ?? []).map((t) => t.name ?? ""),
    ...(graph.node ?? []).flatMap((n) => [...(n.output ?? []), n.name ?? ""]),
  ]);
  // ReduceMax/ReduceMin take their axes as an input from opset 18, as an attribute before.
  const opset = Number(model.opsetImport?.find((o) => (o.domain ?? "") === "" || o.domain === "ai.onnx")?.version ?? 0);
  const added: ValueInfo[] = [];
  for (const [name, { op, of, axis = -1 }] of Object.entries(outputs)) {
    const source = own.get(of);
    if (!source) {
      throw fail(
        `has no output '${of}' for output '${name}' (${op}) to reduce; its outputs: ${[...own.keys()].join(", ")}`,
      );
    }
    if (taken.has(name)) throw fail(`already has a value named '${name}': name the ${op} output otherwise`);
    const tensor = source.type?.tensorType;
    const dims = tensor?.shape?.dim;
    if (!tensor || !dims) throw fail(`output '${of}' has no tensor shape to reduce`);
    // 0 (UNDEFINED) is left to ONNX Runtime, which knows the type from the graph.
    if (tensor.elemType && !reducible.has(tensor.elemType)) {
      const type = typeNames[tensor.elemType] ?? `type ${tensor.elemType}`;
      throw fail(`output '${of}' holds ${type} tensors, which ${op} does not reduce: reduce a numeric output`);
    }
    const rank = dims.length;
    if (rank === 0) throw fail(`output '${of}' is a scalar: it has no axis for output '${name}' (${op}) to reduce`);
    if (axis < -rank || axis >= rank) {
      throw fail(
        `output '${name}' reduces axis ${axis} of '${of}', which has ${rank} axes (from ${-rank} to ${rank - 1})`,
      );
    }
    const at = axis < 0 ? rank + axis : axis;
    const node = onnx.NodeProto.create({ name: `isolane_${name}`, opType: op, input: [of], output: [name] });
    const attribute = (a: onnxProto.onnx.IAttributeProto) => node.attribute.push(onnx.AttributeProto.create(a));
    attribute({ name: "keepdims", type: onnx.AttributeProto.AttributeType.INT, i: 0 });
    if (op === "ArgMax" || op === "ArgMin") {
      attribute({ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: at });
    } else if (opset >= 18) {
      const axes = `isolane_${name}_axes`;
      if (taken.has(axes)) throw fail(`already has a value named '${axes}': name the ${op} output otherwise`);
      graph.initializer!.push(onnx.TensorProto.create({ name: axes, dataType: int64, dims: [1], int64Data: [at] }));
      node.input.push(axes);
      taken.add(axes);
    } else {
      attribute({ name: "axes", type: onnx.AttributeProto.AttributeType.INTS, ints: [at] });
    }
    graph.node!.push(node);
    taken.add(name);
    added.push(onnx.ValueInfoProto.create({
      name,
      type: {
        tensorType: {
          elemType: op === "ArgMax" || op === "ArgMin" ? int64 : tensor.elemType,
          shape: { dim: dims.filter((_, i) => i !== at) },
        },
      },
    }));
  }
  graph.output = added;
  return onnx.ModelProto.encode(model).finish();
}

const folderPrefix = "isolane-models-";

/**
 * Removes the folders of edited models, in the temporary folder (`TMPDIR`) and in `/tmp`, of runtimes that no
 * longer run: a folder's name holds the pid and start time of the runtime that made it, and `/proc/<pid>/stat` says
 * whether that process still runs (a pid reused by a later process has another start time). Called once when the
 * runtime starts; returns the paths removed. Does nothing where `/proc` cannot tell (not Linux). Folders of runtimes
 * that still run, folders named before pids were (`isolane-models-` and six characters), and folders this user may not
 * remove are left.
 */
export function removeStaleEditedModels(): string[] {
  return removeStaleFolders(folderPrefix);
}

let folder: Promise<string> | undefined;

/** The runtime's folder of edited models: made once (0700), removed when the process exits. */
function editedFolder(): Promise<string> {
  folder ??= Deno.makeTempDir({ prefix: ownedPrefix(folderPrefix) }).then((dir) => {
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* gone already */ }
    });
    return dir;
  });
  return folder;
}

async function sha256(parts: Uint8Array[]): Promise<string> {
  const hashes = await Promise.all(parts.map((p) => crypto.subtle.digest("SHA-256", p as Uint8Array<ArrayBuffer>)));
  const joined = new Uint8Array(hashes.length * 32);
  hashes.forEach((h, i) => joined.set(new Uint8Array(h), i * 32));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The path each model's sessions open: `paths` (the declared files, resolved), with every model that declares
 * `outputs` replaced by its edited copy ({@link appendOutputs}), written once per source and edit.
 * @throws {IsolaneError} `function_unavailable` as {@link appendOutputs} does.
 */
export async function editModels(
  fn: string,
  models: Record<string, string | ModelDeclaration>,
  paths: Record<string, string>,
): Promise<Record<string, string>> {
  const edited = { ...paths };
  for (const [model, declaration] of Object.entries(models)) {
    if (typeof declaration === "string" || !declaration.outputs) continue;
    const source = await Deno.readFile(paths[model]);
    const edit = new TextEncoder().encode(JSON.stringify(declaration.outputs));
    const target = join(await editedFolder(), `${await sha256([source, edit])}.onnx`);
    try {
      await Deno.stat(target);
    } catch {
      const bytes = await appendOutputs(source, declaration.outputs, { fn, model });
      // Whole or not at all: a concurrent load of the same edit may read it meanwhile.
      const partial = `${target}.${crypto.randomUUID()}`;
      await Deno.writeFile(partial, bytes, { mode: 0o600 });
      await Deno.rename(partial, target);
    }
    edited[model] = target;
  }
  return edited;
}
