/**
 * Keeps a model's files inside its folder. ONNX models may keep tensors in
 * external data files (`onnx.save_model(..., save_as_external_data=True)`),
 * named by a `location` relative to the model. ORT reads those files with
 * native calls that Deno's permissions never see, so every location is
 * checked here, before ORT sees the model: no absolute path, no `..` out of
 * the folder, no symbolic link that resolves outside it.
 *
 * @example
 * ```ts
 * await checkModelFiles("/srv/functions/tts/model.onnx", "/srv/functions/tts");
 * // throws IsolaneError("function_unavailable", "... location '../../deno.json' leaves the function's folder")
 * ```
 * @module
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import type onnxProto from "onnx-proto";
import { IsolaneError } from "../errors.ts";
import { loadOnnxProto } from "./_onnx_proto.ts";

type Tensor = onnxProto.onnx.ITensorProto;
type Graph = onnxProto.onnx.IGraphProto;
type Node = onnxProto.onnx.INodeProto;

/** A tensor whose data lives in another file. */
export interface ExternalDataRef {
  /** The tensor's name. */
  tensor: string;
  /** The `location` entry, as written in the model. */
  location: string;
}

/** `TensorProto.DataLocation.EXTERNAL`. */
const externalLocation = 1;

function externalOf(tensor: Tensor | null | undefined, out: ExternalDataRef[]): void {
  if (!tensor) return;
  const external = tensor.dataLocation === externalLocation ||
    (tensor.externalData?.length ?? 0) > 0;
  if (!external) return;
  const location = tensor.externalData?.find((e) => e.key === "location")?.value ?? "";
  out.push({ tensor: tensor.name ?? "", location });
}

function walkNodes(nodes: Node[] | null | undefined, out: ExternalDataRef[]): void {
  for (const node of nodes ?? []) {
    for (const attribute of node.attribute ?? []) {
      externalOf(attribute.t, out);
      for (const t of attribute.tensors ?? []) externalOf(t, out);
      externalOf(attribute.sparseTensor?.values, out);
      externalOf(attribute.sparseTensor?.indices, out);
      for (const s of attribute.sparseTensors ?? []) {
        externalOf(s.values, out);
        externalOf(s.indices, out);
      }
      walkGraph(attribute.g, out);
      for (const g of attribute.graphs ?? []) walkGraph(g, out);
    }
  }
}

function walkGraph(graph: Graph | null | undefined, out: ExternalDataRef[]): void {
  if (!graph) return;
  for (const t of graph.initializer ?? []) externalOf(t, out);
  for (const s of graph.sparseInitializer ?? []) {
    externalOf(s.values, out);
    externalOf(s.indices, out);
  }
  walkNodes(graph.node, out);
}

const location = new TextEncoder().encode("location");

/**
 * Whether `bytes` holds `needle`. Each candidate is found by `Uint8Array.prototype.indexOf` of its first byte, which V8
 * runs natively: a 32 MB model is scanned in about 14 ms, where `Buffer.prototype.indexOf` (a loop in JS in Deno's
 * Node layer) took about 90 ms, at every isolate start.
 */
function includesBytes(bytes: Uint8Array, needle: Uint8Array): boolean {
  const last = bytes.length - needle.length;
  for (let i = bytes.indexOf(needle[0]); i >= 0 && i <= last; i = bytes.indexOf(needle[0], i + 1)) {
    let k = 1;
    while (k < needle.length && bytes[i + k] === needle[k]) k++;
    if (k === needle.length) return true;
  }
  return false;
}

/**
 * Every tensor of a model (initializers, sparse initializers, constant
 * attributes, subgraphs and model-local functions) that names external data.
 * @throws {Error} when the bytes are not an ONNX model.
 */
export async function externalDataRefs(model: Uint8Array): Promise<ExternalDataRef[]> {
  // Every external tensor names its file under the key "location": without those bytes there is none,
  // and a model with its weights inside need not be decoded at all.
  if (!includesBytes(model, location)) return [];
  const { onnx } = await loadOnnxProto();
  const decoded = onnx.ModelProto.decode(model);
  const out: ExternalDataRef[] = [];
  walkGraph(decoded.graph, out);
  for (const fn of decoded.functions ?? []) walkNodes(fn.node, out);
  return out;
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

async function realPath(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}

/** Options of {@link checkModelFiles}. */
export interface CheckModelOptions {
  /** The function's name, for messages. */
  fn: string;
  /** The model's declared name, for messages. */
  model: string;
}

/**
 * Checks that the model at `modelPath` and every external data file it names
 * stay inside `root` (the function's folder, or an npm model's own folder),
 * with symbolic links resolved.
 * @throws {IsolaneError} `function_unavailable` naming the tensor and location that leave the folder, or the file that is missing.
 */
export async function checkModelFiles(modelPath: string, root: string, options: CheckModelOptions): Promise<void> {
  const prefix = `Cannot load function '${options.fn}': model '${options.model}'`;
  const fail = (reason: string) => new IsolaneError("function_unavailable", `${prefix} ${reason}`);
  const realModel = await realPath(modelPath);
  if (realModel === null) throw fail(`not found at ${modelPath}`);
  // An npm model's folder may be unreadable to the isolate (only the model file is granted): its real
  // folder is then the model's own, which npm's layout links into node_modules.
  const realRoot = (await realPath(root)) ??
    (inside(resolve(root), resolve(modelPath)) ? dirname(realModel) : resolve(root));
  if (!inside(realRoot, realModel)) throw fail(`resolves to ${realModel}, outside the function's folder`);
  let refs: ExternalDataRef[];
  try {
    refs = await externalDataRefs(await Deno.readFile(modelPath));
  } catch (error) {
    throw fail(`is not a valid ONNX model: ${(error as Error).message}`);
  }
  const modelDir = dirname(resolve(modelPath));
  for (const { tensor, location } of refs) {
    const where = `tensor '${tensor}' names external data '${location}'`;
    if (location === "") throw fail(`${where}: the location is empty`);
    if (isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location)) {
      throw fail(`${where}: an absolute path, outside the function's folder`);
    }
    const target = resolve(modelDir, location);
    if (!inside(realRoot, target) && !inside(resolve(root), target)) {
      throw fail(`${where}: it leaves the function's folder`);
    }
    const real = await realPath(target);
    if (real === null) throw fail(`${where}: no such file beside the model`);
    if (!inside(realRoot, real)) throw fail(`${where}: a link that resolves outside the function's folder (${real})`);
  }
}
