/**
 * Imports a function module and checks its default export.
 * @module
 */
import { type AnyFunctionDefinition, checkDefinition, type FunctionOptions, functionOptionsSchema, z } from "../sdk.ts";
import { IsolaneError } from "../errors.ts";

/** A module's definition with its validated options. */
export interface LoadedFunction {
  definition: AnyFunctionDefinition;
  options: FunctionOptions;
}

/** Imports `moduleUrl` and validates its default export; throws `IsolaneError` with the reason. */
export async function loadFunctionModule(name: string, moduleUrl: string): Promise<LoadedFunction> {
  let mod: { default?: unknown };
  try {
    mod = await import(moduleUrl);
  } catch (error) {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${name}': importing ${moduleUrl} failed: ${messageOf(error)}`,
    );
  }
  const definition = mod.default as AnyFunctionDefinition | undefined;
  if (typeof definition !== "object" || definition === null) {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${name}': the module has no default export; export default defineFunction({...})`,
    );
  }
  const parsed = functionOptionsSchema.safeParse(definition);
  if (!parsed.success) {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${name}': invalid options: ${z.prettifyError(parsed.error)}`,
    );
  }
  try {
    checkDefinition(definition);
  } catch (error) {
    throw new IsolaneError("function_unavailable", `Cannot load function '${name}': ${messageOf(error)}`);
  }
  return { definition, options: parsed.data };
}

/** The message of anything thrown. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
