/**
 * Deployed function versions on disk, so they survive a restart:
 * `<data>/functions/<name>/<version>/` holds each unpacked bundle and
 * `<data>/functions/<name>/meta.json` the versions and which one serves.
 * @module
 */
import { join } from "node:path";
import { type BundleLimits, unpackBundle } from "./bundle.ts";

/** One stored version. */
export interface StoredVersion {
  version: number;
  createdAt: string;
  bytes: number;
  sha256: string;
}

interface Meta {
  current: number | null;
  versions: StoredVersion[];
}

/** The store of deployed versions. */
export class Deployments {
  readonly root: string;

  /** Creates a store under `<dataDir>/functions`. */
  constructor(dataDir: string, readonly limits: BundleLimits) {
    this.root = join(dataDir, "functions");
  }

  /** Folder of one version. */
  dir(name: string, version: number): string {
    return join(this.root, name, String(version));
  }

  async #meta(name: string): Promise<Meta> {
    try {
      return JSON.parse(await Deno.readTextFile(join(this.root, name, "meta.json")));
    } catch {
      return { current: null, versions: [] };
    }
  }

  async #write(name: string, meta: Meta): Promise<void> {
    const path = join(this.root, name, "meta.json");
    // Write-then-rename so that a crash never leaves half a meta file.
    await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(meta, null, 2));
    await Deno.rename(`${path}.tmp`, path);
  }

  /** Names with a serving version. */
  async names(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const item of Deno.readDir(this.root)) {
        if (item.isDirectory && (await this.#meta(item.name)).current !== null) names.push(item.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return names.sort();
  }

  /** Versions of a function and the one that serves. */
  async versions(name: string): Promise<{ current: number | null; versions: StoredVersion[] }> {
    return await this.#meta(name);
  }

  /** Unpacks a bundle as the next version (not yet serving). */
  async add(name: string, bundle: Uint8Array<ArrayBuffer>): Promise<{ version: number; dir: string }> {
    const meta = await this.#meta(name);
    const version = Math.max(0, ...meta.versions.map((v) => v.version)) + 1;
    const dir = this.dir(name, version);
    await Deno.mkdir(dir, { recursive: true });
    try {
      await unpackBundle(bundle, dir, this.limits);
    } catch (error) {
      await Deno.remove(dir, { recursive: true });
      throw error;
    }
    const digest = await crypto.subtle.digest("SHA-256", bundle);
    const sha256 = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    meta.versions.push({ version, createdAt: new Date().toISOString(), bytes: bundle.byteLength, sha256 });
    await this.#write(name, meta);
    return { version, dir };
  }

  /** Drops a version that failed to load. */
  async discard(name: string, version: number): Promise<void> {
    const meta = await this.#meta(name);
    meta.versions = meta.versions.filter((v) => v.version !== version);
    await Deno.remove(this.dir(name, version), { recursive: true }).catch(() => {});
    if (meta.versions.length === 0 && meta.current === null) {
      await Deno.remove(join(this.root, name), { recursive: true }).catch(() => {});
    } else {
      await this.#write(name, meta);
    }
  }

  /** Marks a version as the one that serves. */
  async setCurrent(name: string, version: number): Promise<void> {
    const meta = await this.#meta(name);
    meta.current = version;
    await this.#write(name, meta);
  }

  /** Removes a function and every version of it. */
  async remove(name: string): Promise<void> {
    await Deno.remove(join(this.root, name), { recursive: true }).catch(() => {});
  }
}
