/**
 * The permissions of an isolate, decided in one place: read its own folder and
 * its model files, load ONNX Runtime's addon (ffi is dropped before user code
 * runs), and nothing else unless the module declares it.
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import type { FunctionPermissions } from "../sdk.ts";

/** Inputs of {@link isolatePermissions}. */
export interface PermissionInputs {
  /** The function's folder (absolute). */
  dir: string;
  /** Absolute model and asset paths. */
  modelPaths: string[];
  /** What the module declares. */
  declared: FunctionPermissions;
  /**
   * Whether the isolate loads native code (ONNX Runtime, the CUDA driver) before
   * it imports the user's module; it drops the ffi permission before that import.
   */
  native: boolean;
}

function paths(dir: string, list: string[] | undefined): string[] | false {
  return list && list.length > 0 ? list.map((p) => (isAbsolute(p) ? p : resolve(dir, p))) : false;
}

/** The `deno.permissions` of a Worker that hosts one function. */
export function isolatePermissions(inputs: PermissionInputs): Deno.PermissionOptionsObject {
  const { dir, modelPaths, declared, native } = inputs;
  return {
    read: [dir, ...modelPaths, ...(paths(dir, declared.read) || [])],
    write: paths(dir, declared.write),
    net: declared.net && declared.net.length > 0 ? declared.net : false,
    env: declared.env && declared.env.length > 0 ? declared.env : false,
    ffi: native,
    run: false,
    sys: false,
    import: false,
  };
}
