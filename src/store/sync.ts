/**
 * Keeps the registry serving what the function store says: deploy, rollback
 * and delete through this instance (under the name's lock, which the store
 * extends across instances), and changes made through other instances,
 * announced by the store and caught up by a periodic reconcile.
 * @module
 */
import { IsolaneError } from "../errors.ts";
import { log } from "../log.ts";
import type { Registry } from "../registry/registry.ts";
import { KeyedLock } from "./_keyed_lock.ts";
import type { FunctionStore, StoredVersion } from "./mod.ts";

/** What `/readyz` reports about the store. */
export interface StoreReadiness {
  /** Whether this instance serves the store's current version of every function (or the store is down and it serves its cache). */
  ready: boolean;
  store: { kind: "local" | "postgres"; reachable: boolean; reason?: string };
  /** Functions whose serving version differs from the store's: `{name: {serving, store}}`. */
  behind: Record<string, { serving: number | null; store: number }>;
}

/** Options of {@link StoreSync}. */
export interface StoreSyncOptions {
  /** Milliseconds between full reconciles (the safety net under notifications). */
  reconcileMs: number;
  /** Serve only these deployed functions (one Knative Service per function); absent: all. */
  only?: readonly string[];
}

/**
 * The one writer of deployed functions into the registry.
 *
 * @example
 * ```ts
 * const sync = new StoreSync(store, registry, { reconcileMs: 10_000 });
 * await sync.start();
 * ```
 */
export class StoreSync {
  readonly #lock = new KeyedLock();
  #wanted = new Map<string, StoredVersion>();
  /** Versions that failed to load here, so that a reconcile does not retry them every round. */
  #failed = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopWatch: (() => void) | undefined;
  #reconciling: Promise<void> | undefined;
  #again = false;
  readonly #only: ReadonlySet<string> | undefined;
  /**
   * A counter of reads of the store, and the last one after which each name
   * was brought up to date: a reconcile whose snapshot is older than a name's
   * last update leaves that name alone (it would serve a stale version).
   */
  #epoch = 0;
  #touched = new Map<string, number>();

  /** Binds a store to a registry; nothing runs before {@link StoreSync.start}. */
  constructor(readonly store: FunctionStore, readonly registry: Registry, readonly options: StoreSyncOptions) {
    this.#only = options.only ? new Set(options.only) : undefined;
  }

  #serves(name: string): boolean {
    return this.#only?.has(name) ?? true;
  }

  #touch(name: string): void {
    this.#touched.set(name, ++this.#epoch);
  }

  /** Serves every stored function's current version (from the cache if the store is down), then follows changes. */
  async start(): Promise<void> {
    await this.reconcile();
    this.#stopWatch = this.store.watch((name) =>
      void (name === "" ? this.reconcile() : this.#follow(name)).catch(failed)
    );
    if (this.store.kind !== "local") {
      this.#timer = setInterval(() => void this.reconcile().catch(failed), this.options.reconcileMs);
    }
  }

  /** Stops following changes. */
  stop(): void {
    clearInterval(this.#timer);
    this.#stopWatch?.();
  }

  /** Deploys a bundle as a new version and serves it; answers the version. Errors: `invalid_bundle`, `store_unavailable`. */
  deploy(name: string, bundle: Uint8Array<ArrayBuffer>): Promise<number> {
    return this.#lock.run(name, () =>
      this.store.exclusive(name, async () => {
        const { version, dir } = await this.store.add(name, bundle);
        try {
          // A new deploy builds its dependencies afresh; rollbacks and restarts reuse the stored bundle.
          await this.registry.activate(name, dir, version, { fresh: true });
        } catch (error) {
          await this.store.discard(name, version);
          throw error;
        }
        await this.store.setCurrent(name, version);
        // Logged under the lock, so the log's order is the order deploys, rollbacks and deletes took effect.
        log("info", "function deployed", { function: name, version, bytes: bundle.byteLength });
        this.#touch(name);
        this.#failed.delete(name);
        if (!this.#serves(name)) {
          // Loaded only to check that it loads: the instances that serve it follow the store.
          await this.registry.remove(name);
          return version;
        }
        const stored = (await this.store.versions(name)).versions.find((v) => v.version === version);
        if (stored) this.#wanted.set(name, stored);
        await this.store.served(name, stored);
        return version;
      }));
  }

  /**
   * Serves an earlier version: `asked`, or the highest one before the current.
   * Answers the version served and the one before. Errors: `not_found`, `conflict`, `store_unavailable`.
   */
  rollback(name: string, asked: number | undefined): Promise<{ version: number; previous: number | null }> {
    return this.#lock.run(name, () =>
      this.store.exclusive(name, async () => {
        const stored = await this.store.versions(name);
        if (stored.versions.length === 0) throw new IsolaneError("not_found", `No deployed function named '${name}'`);
        const earlier = stored.versions.filter((v) => v.version < (stored.current ?? Infinity));
        const target = asked === undefined ? earlier.at(-1) : stored.versions.find((v) => v.version === asked);
        if (!target) {
          throw asked === undefined
            ? new IsolaneError("conflict", `Function '${name}' has no version before ${stored.current}`)
            : new IsolaneError("not_found", `Function '${name}' has no version ${asked}`);
        }
        if (this.#serves(name)) {
          await this.registry.activate(name, await this.store.materialize(name, target), target.version);
        }
        await this.store.setCurrent(name, target.version);
        log("info", "function rolled back", { function: name, version: target.version, from: stored.current });
        this.#touch(name);
        if (this.#serves(name)) {
          this.#wanted.set(name, target);
          await this.store.served(name, target);
        }
        return { version: target.version, previous: stored.current };
      }));
  }

  /** Deletes a function everywhere; answers whether it existed. Errors: `store_unavailable`. */
  remove(name: string): Promise<boolean> {
    return this.#lock.run(name, () =>
      this.store.exclusive(name, async () => {
        const stored = await this.store.versions(name);
        const known = this.registry.get(name)?.source === "deployed";
        if (!known && stored.versions.length === 0) return false;
        await this.store.remove(name);
        await this.registry.remove(name);
        await this.store.forget(name);
        await this.store.served(name, undefined);
        log("info", "function deleted", { function: name });
        this.#touch(name);
        this.#wanted.delete(name);
        return true;
      }));
  }

  /** Reads every function's current version from the store and serves it; coalesces concurrent calls. */
  reconcile(): Promise<void> {
    if (this.#reconciling) {
      this.#again = true;
      return this.#reconciling;
    }
    this.#reconciling = (async () => {
      do {
        this.#again = false;
        await this.#reconcileOnce();
      } while (this.#again);
    })().finally(() => (this.#reconciling = undefined));
    return this.#reconciling;
  }

  async #reconcileOnce(): Promise<void> {
    const snapshot = ++this.#epoch;
    let wanted: Map<string, StoredVersion>;
    try {
      wanted = await this.store.currents();
    } catch (error) {
      if (!(error instanceof IsolaneError && error.code === "store_unavailable")) throw error;
      // Keep serving what is loaded; at start-up, serve what this instance served last.
      if (this.#wanted.size > 0 || this.registry.list().some((e) => e.source === "deployed")) return;
      wanted = await this.store.lastKnown();
    }
    wanted = new Map([...wanted].filter(([name]) => this.#serves(name)));
    const names = new Set([
      ...wanted.keys(),
      ...this.#wanted.keys(),
      ...this.registry.list().filter((e) => e.source === "deployed").map((e) => e.name),
    ]);
    await Promise.all([...names].map((name) =>
      this.#lock.run(name, async () => {
        if ((this.#touched.get(name) ?? 0) > snapshot) return;
        const want = wanted.get(name);
        if (want) this.#wanted.set(name, want);
        else this.#wanted.delete(name);
        await this.#apply(name, want);
      })
    ));
  }

  async #follow(name: string): Promise<void> {
    await this.#lock.run(name, async () => {
      let want: StoredVersion | undefined;
      try {
        const stored = await this.store.versions(name);
        want = this.#serves(name) ? stored.versions.find((v) => v.version === stored.current) : undefined;
        this.#touch(name);
      } catch (error) {
        log("warn", "could not follow a change of the function store", {
          function: name,
          reason: (error as Error).message,
        });
        return;
      }
      if (want) this.#wanted.set(name, want);
      else this.#wanted.delete(name);
      await this.#apply(name, want);
    });
  }

  /** Makes the registry serve `want` (or nothing); call with the name's lock held. */
  async #apply(name: string, want: StoredVersion | undefined): Promise<void> {
    const entry = this.registry.get(name);
    if (entry?.source === "folder") return;
    if (!want) {
      if (entry) {
        await this.registry.remove(name);
        await this.store.forget(name);
        await this.store.served(name, undefined);
        log("info", "function removed through the store", { function: name });
      }
      return;
    }
    if (entry?.current?.version === want.version) return;
    if (this.#failed.get(name) === want.version) return;
    const started = performance.now();
    try {
      const dir = await this.store.materialize(name, want);
      await this.registry.activate(name, dir, want.version, { keepOnFailure: true });
      await this.store.served(name, want);
      this.#failed.delete(name);
      log("info", "function follows the store", {
        function: name,
        version: want.version,
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      this.#failed.set(name, want.version);
      log("error", "cannot serve the store's version", {
        function: name,
        version: want.version,
        reason: (error as Error).message,
      });
    }
  }

  /** Whether this instance serves the store's current version of every function, and why not. */
  readiness(): StoreReadiness {
    const health = this.store.health();
    const behind: StoreReadiness["behind"] = {};
    for (const [name, want] of this.#wanted) {
      if (this.registry.get(name)?.source === "folder") continue;
      const serving = this.registry.get(name)?.current?.version ?? null;
      if (serving !== want.version) behind[name] = { serving, store: want.version };
    }
    return {
      ready: Object.keys(behind).length === 0,
      store: health.ok
        ? { kind: this.store.kind, reachable: true }
        : { kind: this.store.kind, reachable: false, reason: `${health.reason}; serving from the local cache` },
      behind,
    };
  }
}

/** A reconcile that failed in the background is logged; the next one tries again. */
function failed(error: unknown): void {
  log("error", "reconcile with the function store failed", { reason: (error as Error)?.message ?? String(error) });
}
