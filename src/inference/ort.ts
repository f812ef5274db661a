/**
 * Loads ONNX Runtime's Node binding. Isolates call this before they import user
 * code, while they still hold the ffi permission that the native addon needs.
 *
 * The loaded addon stays reachable from user code (Node's module cache hands
 * it to anyone who imports `onnxruntime-node`), and ONNX Runtime reads model
 * files natively, past Deno's permissions. So the addon's `loadModel` is
 * guarded: it opens only the function's declared models
 * (`model_access.ts`); anything else, and any model from bytes, throws.
 * @module
 */
import { createRequire } from "node:module";
import { assertModelAllowed } from "./model_access.ts";

/** The onnxruntime-node module. */
export type Ort = typeof import("onnxruntime-node");

let loaded: Promise<Ort> | undefined;

type LoadModel = (this: unknown, model: string | ArrayBufferLike, ...rest: unknown[]) => unknown;

function guard(): void {
  const require = createRequire(import.meta.resolve("onnxruntime-node"));
  const { binding } = require("./binding") as {
    binding: { InferenceSession: { prototype: { loadModel: LoadModel } } };
  };
  const proto = binding.InferenceSession.prototype;
  const loadModel = proto.loadModel;
  Object.defineProperty(proto, "loadModel", {
    value: function guardedLoadModel(this: unknown, model: string | ArrayBufferLike, ...rest: unknown[]) {
      // Only declared models, by path: bytes could name external data anywhere.
      assertModelAllowed(typeof model === "string" ? model : "");
      return loadModel.call(this, model, ...rest);
    },
    writable: false,
    configurable: false,
  });
}

/** Loads onnxruntime-node once per isolate, with session creation guarded. */
export function loadOrt(): Promise<Ort> {
  loaded ??= import("onnxruntime-node").then((ort) => {
    guard();
    return ort;
  });
  return loaded;
}
