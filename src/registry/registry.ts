/**
 * The registry: which functions exist, which version of each serves, and
 * why one that does not serve failed. Versions swap atomically: a new version
 * serves only once all its isolates are ready, and the old one drains.
 * @module
 */
import { join, resolve } from "node:path";
import { IsolaneError } from "../errors.ts";
import { log } from "../log.ts";
import { type FunctionVersion, type LoadContext, loadFunction } from "./load_function.ts";
import { removeFolder } from "./ready_spare.ts";
import { exists } from "../_exists.ts";

/** A function's state as the API shows it. */
export type FunctionStatus = "loading" | "ready" | "failed" | "unhealthy";

/** A function name: a folder name of letters, digits, `-` and `_`. */
export const functionNamePattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * Logs (warn, "function folder skipped") that a folder of the functions folder holds a `mod.ts` but its name is no
 * function name ("my.fn", "My Fn"), so it serves nothing: otherwise that would go unexplained.
 */
export function logSkippedFolder(functionsDir: string, name: string): void {
  log("warn", "function folder skipped", {
    folder: join(functionsDir, name),
    reason: `'${name}' is not a function name: use letters, digits, '-' and '_' (at most 64); rename the folder`,
  });
}

/** Where a function comes from: the functions folder, or a deployment over HTTP. */
export type FunctionSource = "folder" | "deployed";

/** What the registry knows of one function. */
export interface FunctionEntry {
  readonly name: string;
  readonly source: FunctionSource;
  /** The folder of the version that serves or was last tried. */
  dir: string;
  /** The version that serves, if any. */
  current: FunctionVersion | undefined;
  /** Why the last load failed (the current version, if any, still serves). */
  error: string | undefined;
  loading: boolean;
  /** Load attempts so far (a folder function's version number). */
  attempts: number;
  /** Serialises loads of one function. */
  chain: Promise<void>;
}

/** Options of the {@link Registry}. */
export interface RegistryOptions extends LoadContext {
  functionsDir: string;
}

/** Finds, loads, reloads and unloads functions. */
export class Registry {
  #entries = new Map<string, FunctionEntry>();
  #onServe: (() => Promise<void>)[] = [];
  readonly functionsDir: string;

  /** Creates an empty registry over a functions folder. */
  constructor(readonly options: RegistryOptions) {
    this.functionsDir = resolve(options.functionsDir);
  }

  /**
   * Calls `listener` each time a version starts serving, and each time a function is removed; the load (a deploy's
   * answer, a reload) or the removal (a delete's answer) waits until what it returns settles. For copies of the
   * functions kept elsewhere (the HTTP threads' signatures), so that what a deploy or delete acknowledged is what
   * every request meets after it.
   */
  onServe(listener: () => Promise<void>): void {
    this.#onServe.push(listener);
  }

  /** The function named `name`, if known. */
  get(name: string): FunctionEntry | undefined {
    return this.#entries.get(name);
  }

  /** Every known function, by name. */
  list(): FunctionEntry[] {
    return [...this.#entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A function's status. */
  status(entry: FunctionEntry): FunctionStatus {
    if (entry.current) return entry.current.pool.unhealthy ? "unhealthy" : "ready";
    return entry.loading ? "loading" : "failed";
  }

  /** Whether every function serves. */
  allReady(): boolean {
    return this.list().every((e) => this.status(e) === "ready");
  }

  /** Folder names under the functions folder that hold a `mod.ts`. */
  async discover(): Promise<string[]> {
    const names: string[] = [];
    for await (const item of Deno.readDir(this.functionsDir)) {
      if (!item.isDirectory || !(await exists(join(this.functionsDir, item.name, "mod.ts")))) continue;
      if (functionNamePattern.test(item.name)) names.push(item.name);
      else {
        logSkippedFolder(this.functionsDir, item.name);
      }
    }
    return names.sort();
  }

  /** Loads every function found; failures are recorded and logged, never thrown. */
  async loadAll(): Promise<void> {
    const names = await this.discover();
    await Promise.all(names.map((name) => this.reload(name)));
  }

  #entry(name: string, source: FunctionSource, dir: string): FunctionEntry {
    let entry = this.#entries.get(name);
    if (!entry) {
      entry = {
        name,
        source,
        dir,
        current: undefined,
        error: undefined,
        loading: false,
        attempts: 0,
        chain: Promise.resolve(),
      };
      this.#entries.set(name, entry);
    }
    return entry;
  }

  /**
   * Loads (or reloads) a function from its folder. On success the new version
   * serves at once and the old one drains; on failure the old one keeps serving.
   */
  reload(name: string): Promise<void> {
    if (this.#entries.get(name)?.source === "deployed") {
      log("warn", "folder ignored: a deployed function has its name", {
        function: name,
        folder: join(this.functionsDir, name),
      });
      return Promise.resolve();
    }
    const entry = this.#entry(name, "folder", join(this.functionsDir, name));
    const run = entry.chain.then(() => this.#load(entry, entry.dir, entry.attempts + 1, true));
    entry.chain = run.then(() => {});
    return entry.chain;
  }

  /**
   * Serves a deployed version from `dir`. Resolves once it serves (the old
   * version drains); rejects with the reason if it cannot load, and then the
   * old version, if any, keeps serving. A name that comes from the functions
   * folder cannot be deployed over. With `fresh` (a new deploy) a function with
   * dependencies of its own is bundled anew; without, its stored bundle serves.
   */
  activate(
    name: string,
    dir: string,
    version: number,
    { keepOnFailure = false, fresh = false } = {},
  ): Promise<FunctionVersion> {
    const existing = this.#entries.get(name);
    if (existing && existing.source === "folder") {
      return Promise.reject(
        new IsolaneError(
          "conflict",
          `Function '${name}' comes from ${existing.dir}; remove that folder or deploy under another name`,
        ),
      );
    }
    const entry = this.#entry(name, "deployed", dir);
    const run = entry.chain.then(async () => {
      const result = await this.#load(entry, dir, version, fresh);
      if (result.ok) return result.loaded;
      // A first deploy that fails leaves no trace behind; a stored version that fails at start-up shows as failed.
      if (!keepOnFailure && !entry.current && this.#entries.get(name) === entry) this.#entries.delete(name);
      throw new IsolaneError("invalid_bundle", result.error);
    });
    entry.chain = run.then(() => {}, () => {});
    return run;
  }

  async #load(
    entry: FunctionEntry,
    dir: string,
    version: number,
    fresh: boolean,
  ): Promise<{ ok: true; loaded: FunctionVersion } | { ok: false; error: string }> {
    entry.loading = true;
    entry.attempts++;
    entry.dir = dir;
    const started = performance.now();
    try {
      const deployed = entry.source === "deployed";
      const loaded = await loadFunction({ name: entry.name, dir, version, fresh, deployed }, this.options);
      const old = entry.current;
      entry.current = loaded;
      entry.error = undefined;
      log("info", "function loaded", {
        function: entry.name,
        source: entry.source,
        version,
        lanes: loaded.pool.isolates().map((i) => i.device),
        ms: Math.round(performance.now() - started),
      });
      if (old) void retire(old);
      await Promise.all(this.#onServe.map((listener) => listener().catch(() => {})));
      return { ok: true, loaded };
    } catch (error) {
      entry.error = error instanceof Error ? error.message : String(error);
      log("error", "function failed to load", {
        function: entry.name,
        source: entry.source,
        file: join(dir, "mod.ts"),
        reason: entry.error,
        serving: entry.current ? `version ${entry.current.version}` : "nothing",
      });
      return { ok: false, error: entry.error };
    } finally {
      entry.loading = false;
    }
  }

  /** Unloads a function (folder gone, or deleted); its in-flight requests finish first. */
  remove(name: string): Promise<void> {
    const entry = this.#entries.get(name);
    if (!entry) return Promise.resolve();
    this.#entries.delete(name);
    // At once, not after the drain: a thread that still held the signature judged new requests by it (400 by a
    // deleted version's datatypes after the delete answered, where the main thread answers 404).
    const unserved = Promise.all(this.#onServe.map((listener) => listener().catch(() => {})));
    entry.chain = entry.chain.then(async () => {
      if (entry.current) await retire(entry.current);
      log("info", "function removed", { function: name });
    });
    return Promise.all([entry.chain, unserved]).then(() => {});
  }

  /** The serving version of `name`, or the error a caller should get. */
  /** The function named `name`, or a `not_found` error a caller can act on. */
  require(name: string): FunctionEntry {
    const entry = this.#entries.get(name);
    if (!entry) throw new IsolaneError("not_found", `No function named '${name}'; GET /v1/functions lists them`);
    return entry;
  }

  serving(name: string): FunctionVersion {
    const entry = this.require(name);
    if (entry.current) return entry.current;
    if (entry.loading) {
      throw new IsolaneError("function_unavailable", `Function '${name}' is still loading; retry shortly`, undefined, {
        "retry-after": "1",
      });
    }
    throw new IsolaneError("function_unavailable", `Function '${name}' is not loaded: ${entry.error}`);
  }

  /**
   * Ends every isolate now (each releases its sessions); resolves once all have ended. Requests still queued or
   * running get 503 with `reason` (the runtime's shutdown), or one saying their function was unloaded.
   */
  async close(reason?: string): Promise<void> {
    await Promise.all([...this.#entries.values()].map(async ({ current }) => {
      await current?.pool.close(reason);
      if (current?.folder) await removeFolder(current.folder);
    }));
  }
}

/** Drains a version that no longer serves, then removes the folder it served from if that was its own. */
async function retire(version: FunctionVersion): Promise<void> {
  await version.pool.drain();
  if (version.folder) await removeFolder(version.folder);
}
