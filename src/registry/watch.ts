/**
 * Watches the functions folder and reloads a function when its files change.
 * @module
 */
import { join, relative, sep } from "node:path";
import { log } from "../log.ts";
import { functionNamePattern, logSkippedFolder, type Registry } from "./registry.ts";
import { bundleFileName, lockFileName } from "./dependencies.ts";

/** A running watcher. */
export interface Watcher {
  close(): void;
}

const generated = new Set([bundleFileName, `${bundleFileName}.tmp`, lockFileName]);

/**
 * Reloads a function `debounceMs` after the last change under its folder, and
 * unloads it when its `mod.ts` is gone.
 */
export function watchFunctions(registry: Registry, { debounceMs = 200 } = {}): Watcher {
  const root = registry.functionsDir;
  const watcher = Deno.watchFs(root, { recursive: true });
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Runs `action` for `name` once its folder has had no change for `debounceMs`. */
  const debounced = (name: string, action: () => Promise<void>) => {
    clearTimeout(timers.get(name));
    timers.set(
      name,
      setTimeout(() => {
        timers.delete(name);
        void action();
      }, debounceMs),
    );
  };
  const hasModule = (name: string) => Deno.stat(join(root, name, "mod.ts")).then(() => true, () => false);
  const schedule = (name: string) =>
    debounced(name, async () => {
      const present = await hasModule(name);
      log("info", present ? "function changed, reloading" : "function removed from disk", { function: name });
      if (present) await registry.reload(name);
      else await registry.remove(name);
    });
  // Folders whose name is no function name, told once each when they hold a mod.ts (registry.discover at start).
  const skipped = new Set<string>();
  const skip = (name: string) =>
    debounced(name, async () => {
      if (skipped.has(name) || !(await hasModule(name))) return;
      skipped.add(name);
      logSkippedFolder(root, name);
    });
  (async () => {
    for await (const event of watcher) {
      for (const path of event.paths) {
        const parts = relative(root, path).split(sep);
        // What loading writes (a function's bundle and lockfile) is no change of the function's own.
        if (parts.length === 2 && generated.has(parts[1])) continue;
        const name = parts[0];
        if (name && functionNamePattern.test(name)) schedule(name);
        else if (name && !skipped.has(name)) skip(name);
      }
    }
  })().catch((error) => log("error", "watcher stopped", { reason: String(error) }));
  return {
    close() {
      for (const timer of timers.values()) clearTimeout(timer);
      watcher.close();
    },
  };
}
