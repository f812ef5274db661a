/**
 * Which model files an isolate's sessions may open. ONNX Runtime reads model
 * files (and their external data) natively, past Deno's permissions, and
 * runtime modules an isolate has loaded stay reachable from user code (the
 * module map hands them out without a permission check). So the runtime
 * lists the function's declared models and seals the list before it imports
 * the user's module; every session the isolate opens afterwards, through
 * onnxruntime-node or the C API, must be for a listed file.
 *
 * The list is a null-prototype object read and written with the language's own
 * property operators, not a `Set`: user code runs in the same realm and could
 * replace `Set.prototype.has` (or `add`) before the runtime asks it.
 * @module
 */

const allowed: Record<string, true> = Object.create(null);
let sealed = false;

/**
 * Lists the models an isolate may open (absolute paths), then seals the list.
 * @throws {Error} when the list is sealed already.
 */
export function allowModelsOnce(paths: readonly string[]): void {
  if (sealed) throw new Deno.errors.NotCapable("The isolate's model list is sealed");
  for (let i = 0; i < paths.length; i++) allowed[paths[i]] = true;
  sealed = true;
}

/**
 * Seals the list, empty, and returns the one function that may fill it, once: for an isolate that imports its
 * module before it is told the models (a spare that inspects the module it will serve, `src/pool/spare.ts`). Until
 * filled, no model may be opened. Keep the function where user code cannot reach it (a local variable).
 * @throws {Deno.errors.NotCapable} when the list is sealed already.
 */
export function reserveModels(): (paths: readonly string[]) => void {
  if (sealed) throw new Deno.errors.NotCapable("The isolate's model list is sealed");
  sealed = true;
  let filled = false;
  return function allowReservedModels(paths: readonly string[]): void {
    if (filled) throw new Deno.errors.NotCapable("The isolate's model list is sealed");
    filled = true;
    for (let i = 0; i < paths.length; i++) allowed[paths[i]] = true;
  };
}

/**
 * Throws `NotCapable` unless `path` is one of the declared models.
 * @throws {Deno.errors.NotCapable} for any other file, or before the list is made.
 */
export function assertModelAllowed(path: string): void {
  if (!sealed || allowed[path] !== true) {
    throw new Deno.errors.NotCapable(
      "A function may not open ONNX Runtime sessions itself; declare its models in the definition's `models`",
    );
  }
}
