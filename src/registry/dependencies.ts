/**
 * A function's own npm dependencies. A function folder (or deployed bundle)
 * may carry a `deno.json` whose `imports` map bare names to `npm:` specifiers.
 * They are resolved once, when the function loads or deploys, and bundled
 * with the function's code into one module, `mod.bundle.js`, beside `mod.ts`
 * in the function's folder, with `deno.lock` recording each package's
 * integrity. Isolates import that bundle, so they never resolve packages
 * themselves (Workers share the runtime's import map, and instances in a
 * cluster need no registry at run time).
 *
 * The bundler is Deno's own `deno bundle` (esbuild with Deno's resolver:
 * `npm:` specifiers, import maps and lockfiles as `deno run` reads them), run
 * as a child of the runtime's own Deno binary. `"isolane"` stays external: the
 * bundle imports the runtime's SDK, so the runtime's `instanceof` checks (Zod
 * schemas, `InputError`, `Tensor`) see the same classes the function uses.
 * Packages with native addons are refused, since isolates load no `.node`
 * files.
 * @module
 */
import { join } from "node:path";
import { parse as parseJsonc, type ParseError, printParseErrorCode } from "jsonc-parser";
import { IsolaneError } from "../errors.ts";
import { exists } from "../_exists.ts";

/** The bundle a function with dependencies is served from, in its folder. */
export const bundleFileName = "mod.bundle.js";

/** The lockfile written (or checked, if the function ships one) beside the bundle. */
export const lockFileName = "deno.lock";

/** The SDK's specifier: never bundled, always the runtime's own module. */
const sdkSpecifier = "isolane";

/** How long resolving and bundling may take (a slow registry must not hang a deploy). */
const buildTimeoutMs = 120_000;

/**
 * The validated `imports` of `<dir>/deno.json` (JSON with comments, as Deno
 * reads it), or `null` when the function has no `deno.json` or it declares no
 * imports. Throws `invalid_bundle` when the file does not parse, maps
 * `"isolane"`, or maps a name to anything but an `npm:` specifier.
 */
export async function readImports(name: string, dir: string): Promise<Record<string, string> | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, "deno.json"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const errors: ParseError[] = [];
  const config: unknown = parseJsonc(text, errors, { allowTrailingComma: true });
  if (errors.length > 0) {
    const { error, offset } = errors[0];
    throw new IsolaneError(
      "invalid_bundle",
      `Cannot load function '${name}': its deno.json is not JSON: ${printParseErrorCode(error)} at offset ${offset}`,
    );
  }
  const imports = (config as { imports?: unknown } | null)?.imports;
  if (imports === undefined) return null;
  if (typeof imports !== "object" || imports === null || Array.isArray(imports)) {
    throw new IsolaneError(
      "invalid_bundle",
      `Cannot load function '${name}': 'imports' in its deno.json is not an object`,
    );
  }
  const problems: string[] = [];
  for (const [key, value] of Object.entries(imports)) {
    if (key === sdkSpecifier || key.startsWith(`${sdkSpecifier}/`)) {
      problems.push(`'${key}': "isolane" is the runtime's SDK and cannot be mapped`);
    } else if (typeof value !== "string" || !value.startsWith("npm:")) {
      problems.push(`'${key}': only npm: specifiers are supported, got ${JSON.stringify(value)}`);
    }
  }
  if (problems.length > 0) {
    throw new IsolaneError(
      "invalid_bundle",
      `Cannot load function '${name}': its deno.json imports ${problems.join("; ")}`,
      problems,
    );
  }
  return Object.keys(imports).length > 0 ? imports as Record<string, string> : null;
}

/**
 * The path of the module an isolate imports for the function in `dir`:
 * `mod.ts` when it has no dependencies of its own, else its bundle. With
 * `fresh` the bundle is always rebuilt (a folder function, a new deploy);
 * without, an existing bundle is reused (a stored version at start-up or
 * rollback). Throws `invalid_bundle` with the reason when the dependencies
 * cannot be resolved, hold a native addon, or do not bundle.
 *
 * @example
 * ```ts
 * const path = await functionModulePath("tokenize", "/data/functions/tokenize/3", { fresh: true });
 * ```
 */
export async function functionModulePath(name: string, dir: string, { fresh }: { fresh: boolean }): Promise<string> {
  const imports = await readImports(name, dir);
  if (imports === null) return join(dir, "mod.ts");
  const bundle = join(dir, bundleFileName);
  if (!fresh && await exists(bundle)) return bundle;
  await buildBundle(name, dir, imports);
  return bundle;
}

/** Resolves, checks and bundles; writes `mod.bundle.js` and `deno.lock` into `dir`. */
async function buildBundle(name: string, dir: string, imports: Record<string, string>): Promise<void> {
  // Only the imports are taken from the function's deno.json: its other settings (tasks, a node_modules
  // folder, a workspace) are not the runtime's to honour. Packages come from Deno's global cache.
  const scratch = await Deno.makeTempDir({ prefix: "isolane-deps-" });
  try {
    const config = join(scratch, "deno.json");
    await Deno.writeTextFile(config, JSON.stringify({ imports, nodeModulesDir: "none" }));
    const common = [`--config=${config}`, `--lock=${join(dir, lockFileName)}`, "--no-remote"];
    const entry = join(dir, "mod.ts");

    const info = await deno(name, ["info", "--json", ...common, entry]);
    const graph = JSON.parse(info) as ModuleGraph;
    const unresolved = graphErrors(graph);
    if (unresolved.length > 0) {
      throw new IsolaneError(
        "invalid_bundle",
        `Cannot load function '${name}': its dependencies cannot be resolved: ${unresolved.join("; ")}`,
        unresolved,
      );
    }
    const native: string[] = [];
    for (const pkg of Object.values(graph.npmPackages ?? {})) {
      const reason = pkg.localPath ? await nativeAddon(pkg.localPath) : null;
      if (reason) native.push(`${pkg.name}@${pkg.version} ${reason}`);
    }
    if (native.length > 0) {
      throw new IsolaneError(
        "invalid_bundle",
        `Cannot load function '${name}': packages with native addons are not allowed (isolates load no .node files): ${
          native.join("; ")
        }`,
        native,
      );
    }

    const output = join(dir, `${bundleFileName}.tmp`);
    await deno(name, [
      "bundle",
      ...common,
      `--external=${sdkSpecifier}`,
      "--platform=deno",
      "--format=esm",
      `--output=${output}`,
      entry,
    ]);
    await Deno.rename(output, join(dir, bundleFileName));
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** What `deno info --json` says of a module graph (the parts read here). */
interface ModuleGraph {
  modules: {
    specifier: string;
    error?: string;
    dependencies?: { specifier: string; code?: { error?: string }; type?: { error?: string } }[];
  }[];
  npmPackages?: Record<string, { name: string; version: string; localPath?: string }>;
}

/** Every resolution error in a graph but the SDK's (which the runtime resolves). */
function graphErrors(graph: ModuleGraph): string[] {
  const errors: string[] = [];
  for (const module of graph.modules) {
    if (module.error) errors.push(module.error);
    for (const dependency of module.dependencies ?? []) {
      if (dependency.specifier === sdkSpecifier) continue;
      const error = dependency.code?.error;
      if (error) errors.push(error);
    }
  }
  return [...new Set(errors)];
}

const nativeScript = /\b(node-gyp|node-gyp-build|node-pre-gyp|prebuild-install|cmake-js)\b/;

/** Why a package folder holds a native addon, or `null` if it holds none. */
async function nativeAddon(root: string): Promise<string | null> {
  let manifest: {
    gypfile?: unknown;
    binary?: unknown;
    scripts?: Record<string, unknown>;
  } = {};
  try {
    manifest = JSON.parse(await Deno.readTextFile(join(root, "package.json")));
  } catch { /* a package without a readable package.json is judged by its files alone */ }
  if (manifest.gypfile === true) return "declares gypfile: true";
  if (manifest.binary !== undefined && typeof manifest.binary === "object") {
    return "declares a 'binary' (node-pre-gyp) addon";
  }
  for (const script of ["preinstall", "install", "postinstall"]) {
    const command = manifest.scripts?.[script];
    if (typeof command === "string" && nativeScript.test(command)) {
      return `builds an addon in its ${script} script ('${command}')`;
    }
  }
  if (await exists(join(root, "binding.gyp"))) return "has a binding.gyp";
  const addon = await findFile(root, (file) => file.endsWith(".node"));
  return addon ? `ships a native addon (${addon})` : null;
}

/** The first file under `root` (relative path) that matches, walking at most 10,000 entries. */
async function findFile(root: string, match: (file: string) => boolean): Promise<string | null> {
  const queue = [""];
  let seen = 0;
  while (queue.length > 0 && seen < 10_000) {
    const relative = queue.shift()!;
    for await (const item of Deno.readDir(join(root, relative))) {
      seen++;
      const path = relative ? `${relative}/${item.name}` : item.name;
      if (item.isDirectory) queue.push(path);
      else if (item.isFile && match(item.name)) return path;
    }
  }
  return null;
}

/** `deno` processes resolving dependencies now, which {@link stopDependencyBuilds} ends. */
const building = new Set<Promise<Deno.CommandOutput>>();
const stopping = new AbortController();

/**
 * Ends every dependency build in flight and waits for its process to exit; none starts after. The runtime calls it
 * as it shuts down, so that no `deno` it started still writes into a function's folder (its `node_modules`) once the
 * runtime has stopped.
 */
export async function stopDependencyBuilds(): Promise<void> {
  stopping.abort();
  await Promise.allSettled([...building]);
}

/** Runs the runtime's own Deno; resolves with stdout, throws `invalid_bundle` with Deno's own error lines. */
async function deno(name: string, args: string[]): Promise<string> {
  let result: Deno.CommandOutput;
  const running = stopping.signal.aborted
    ? Promise.reject(new Error("the runtime is shutting down"))
    : new Deno.Command(
      Deno.execPath(),
      {
        args,
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.any([AbortSignal.timeout(buildTimeoutMs), stopping.signal]),
      },
    ).output();
  building.add(running);
  try {
    result = await running;
  } catch (error) {
    throw new IsolaneError(
      "invalid_bundle",
      `Cannot load function '${name}': resolving its dependencies failed: ${(error as Error).message}`,
    );
  } finally {
    building.delete(running);
  }
  if (result.success) return new TextDecoder().decode(result.stdout);
  if (result.signal && stopping.signal.aborted) {
    throw new IsolaneError(
      "invalid_bundle",
      `Cannot load function '${name}': resolving its dependencies was stopped: the runtime is shutting down`,
    );
  }
  if (result.signal) {
    throw new IsolaneError(
      "invalid_bundle",
      `Cannot load function '${name}': resolving its dependencies took longer than ${buildTimeoutMs / 1000} s`,
    );
  }
  const stderr = new TextDecoder().decode(result.stderr);
  const lines = stderr.split("\n").map((line) => line.trim()).filter((line) =>
    line !== "" && !/is experimental|^Download |^Bundled |^Warning|^[│╭╰]/.test(line)
  );
  const reason = (lines.find((line) => /^error:/i.test(line)) ?? lines[0] ?? `deno ${args[0]} failed`)
    .replace(/^error:\s*/i, "");
  throw new IsolaneError(
    "invalid_bundle",
    `Cannot load function '${name}': its dependencies do not bundle: ${reason}`,
    lines,
  );
}
