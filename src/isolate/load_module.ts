/**
 * Imports a function module and checks its default export.
 * @module
 */
import { type AnyFunctionDefinition, definitionProblems, type FunctionOptions, functionOptionsSchema } from "../sdk.ts";
import { IsolaneError } from "../errors.ts";
import { explainDenied, withoutColours } from "./permission_message.ts";

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
  // A module may export a plain object instead of calling defineFunction: check it the same way.
  const problems = definitionProblems(definition);
  if (problems) throw new IsolaneError("function_unavailable", `Cannot load function '${name}': ${problems}`);
  return { definition, options: functionOptionsSchema.parse(definition) };
}

/** The message of anything thrown; a denied permission names the function's `permissions` option. */
export function messageOf(error: unknown): string {
  return explainDenied(error) ?? withoutColours(error instanceof Error ? error.message : String(error));
}
