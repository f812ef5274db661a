/**
 * Inspecting a function module: import it and describe it (options, JSON
 * Schemas, the model a `runModel` handler runs). Shared by serving isolates
 * (`main.ts`) and the bare inspecting Worker (`inspect_entry.ts`), which
 * imports only this, the SDK and the module, not ONNX Runtime or the rest of
 * the isolate runtime.
 * @module
 */
import type { InitMessage, Manifest } from "../protocol.ts";
import { type AnyFunctionDefinition, modelRunBy, z } from "../sdk.ts";
import { signatureJsonSchema } from "../tensors.ts";
import { type LoadedFunction, loadFunctionModule } from "./load_module.ts";

/**
 * The model that the runtime runs itself for a `runModel` handler: a tensor
 * function without BYTES tensors (whose rows have no fixed size).
 */
export function modelHandlerOf(definition: AnyFunctionDefinition): string | undefined {
  const { signature } = definition;
  if (!signature || [...signature.inputs, ...signature.outputs].some((t) => t.datatype === "BYTES")) return undefined;
  return modelRunBy(definition.handler);
}

/**
 * Imports the module at `init.moduleUrl` and returns its manifest.
 * @throws {IsolaneError} `function_unavailable` when the module cannot be imported or has no valid definition.
 */
export async function inspectModule(init: Pick<InitMessage, "name" | "moduleUrl">): Promise<Manifest> {
  return manifestOf(await loadFunctionModule(init.name, init.moduleUrl));
}

/** The manifest of an imported module. */
export function manifestOf({ definition, options }: LoadedFunction): Manifest {
  const schema = (s: z.ZodType, io: "input" | "output") => z.toJSONSchema(s, { io, unrepresentable: "any" });
  const modelHandler = modelHandlerOf(definition);
  return definition.signature
    ? {
      options,
      ...(modelHandler ? { modelHandler } : {}),
      inputSchema: signatureJsonSchema(definition.signature.inputs),
      outputSchema: signatureJsonSchema(definition.signature.outputs),
    }
    : { options, inputSchema: schema(definition.input, "input"), outputSchema: schema(definition.output, "output") };
}
