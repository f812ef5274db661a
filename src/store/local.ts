/**
 * The local folder store, the embedded default: `<data>/functions/<name>/<version>/`
 * holds each unpacked bundle and `<data>/functions/<name>/meta.json` the
 * versions and which one serves (the layout of earlier releases, read as is).
 * One process owns the folder; mutations of one name are serialised by a lock
 * per name, and nothing is written before a bundle passes its checks.
 * @module
 */
import { join } from "node:path";
import { log } from "../log.ts";
import type { BundleLimits } from "../registry/bundle.ts";
import { KeyedLock } from "./_keyed_lock.ts";
import { sha256Hex, unpackInto, writeAtomically } from "./_bundle_io.ts";
import type { FunctionStore, FunctionVersions, StoredVersion, StoreHealth } from "./mod.ts";

interface Meta extends FunctionVersions {
  /** The highest number ever given to a version of this name (absent in older meta files). */
  last?: number;
}

/**
 * Function versions in a local folder.
 *
 * @example
 * ```ts
 * const store = new LocalStore(".isolane", { maxUnpackedBytes: 1 << 30, maxEntries: 10_000 });
 * ```
 */
export class LocalStore implements FunctionStore {
  readonly kind = "local" as const;
  /** `<data>/functions`. */
  readonly root: string;
  readonly #staging: string;
  readonly #lock = new KeyedLock();

  /** Creates a store under `<dataDir>/functions`; nothing is written until the first deploy. */
  constructor(dataDir: string, readonly limits: BundleLimits) {
    this.root = join(dataDir, "functions");
    this.#staging = join(dataDir, "staging");
  }

  /** Folder of one version. */
  dir(name: string, version: number): string {
    return join(this.root, name, String(version));
  }

  exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(name, fn);
  }

  async #meta(name: string): Promise<Meta> {
    let text: string;
    try {
      text = await Deno.readTextFile(join(this.root, name, "meta.json"));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { current: null, versions: [] };
      throw error;
    }
    return JSON.parse(text);
  }

  async #write(name: string, meta: Meta): Promise<void> {
    await writeAtomically(join(this.root, name, "meta.json"), JSON.stringify(meta, null, 2));
  }

  async currents(): Promise<Map<string, StoredVersion>> {
    const found = new Map<string, StoredVersion>();
    try {
      for await (const item of Deno.readDir(this.root)) {
        if (!item.isDirectory) continue;
        let meta: Meta;
        try {
          meta = await this.#meta(item.name);
        } catch (error) {
          // One damaged function must not keep the others from serving.
          log("error", "deployed function skipped: unreadable meta.json", {
            function: item.name,
            reason: (error as Error).message,
          });
          continue;
        }
        const current = meta.versions.find((v) => v.version === meta.current);
        if (current) found.set(item.name, current);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return found;
  }

  async versions(name: string): Promise<FunctionVersions> {
    const { current, versions } = await this.#meta(name);
    return { current, versions };
  }

  async add(name: string, bundle: Uint8Array<ArrayBuffer>): Promise<{ version: number; dir: string }> {
    const meta = await this.#meta(name);
    const version = Math.max(meta.last ?? 0, 0, ...meta.versions.map((v) => v.version)) + 1;
    const dir = this.dir(name, version);
    // A folder left by a crash between unpack and meta write would block the rename: it was never acknowledged.
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await unpackInto(bundle, { stagingRoot: this.#staging, target: dir }, this.limits);
    meta.versions.push({
      version,
      createdAt: new Date().toISOString(),
      bytes: bundle.byteLength,
      sha256: await sha256Hex(bundle),
    });
    meta.last = version;
    await this.#write(name, meta);
    return { version, dir };
  }

  async discard(name: string, version: number): Promise<void> {
    const meta = await this.#meta(name);
    meta.versions = meta.versions.filter((v) => v.version !== version);
    // A number that never served is given again, so that a failed deploy leaves no gap.
    meta.last = Math.max(0, ...meta.versions.map((v) => v.version));
    await Deno.remove(this.dir(name, version), { recursive: true }).catch(() => {});
    if (meta.versions.length === 0 && meta.current === null) {
      await this.remove(name);
    } else {
      await this.#write(name, meta);
    }
  }

  async setCurrent(name: string, version: number): Promise<void> {
    const meta = await this.#meta(name);
    meta.current = version;
    await this.#write(name, meta);
  }

  materialize(name: string, version: StoredVersion): Promise<string> {
    return Promise.resolve(this.dir(name, version.version));
  }

  async remove(name: string): Promise<void> {
    // Renamed away first, so the name disappears at once and a crash leaves no half-deleted function.
    await Deno.mkdir(this.#staging, { recursive: true });
    const trash = join(this.#staging, `removed-${crypto.randomUUID()}`);
    try {
      await Deno.rename(join(this.root, name), trash);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    await Deno.remove(trash, { recursive: true });
  }

  lastKnown(): Promise<Map<string, StoredVersion>> {
    return this.currents();
  }

  served(): Promise<void> {
    return Promise.resolve();
  }

  forget(): Promise<void> {
    return Promise.resolve();
  }

  watch(): () => void {
    return () => {};
  }

  health(): StoreHealth {
    return { ok: true };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
