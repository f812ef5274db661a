/**
 * Invocation keys of functions with `auth: "key"`, kept in the data folder
 * beside the deployments: `<data>/keys/<name>.json` holds each key's id,
 * creation time and SHA-256; the key itself is shown once, when it is made.
 * @module
 */
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { timingSafeEqual } from "node:crypto";

/** A key as stored and listed: never the key itself. */
export interface StoredKey {
  id: string;
  createdAt: string;
  /** Hex SHA-256 of the whole key. */
  sha256: string;
}

/** A key just made: the only time `key` is known. */
export interface CreatedKey {
  id: string;
  createdAt: string;
  key: string;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/**
 * The key store. Keys look like `isk_<id>_<secret>`: a 12-hex-digit id that
 * names the key in the admin API, and 32 random bytes (base64url).
 *
 * @example
 * ```ts
 * const keys = new InvocationKeys(".isolane");
 * const { key } = await keys.create("ocr");
 * await keys.verify("ocr", key); // the key's id
 * ```
 */
export class InvocationKeys {
  readonly root: string;
  #cache = new Map<string, StoredKey[]>();
  #writes = new Map<string, Promise<unknown>>();

  /** A store under `<dataDir>/keys`. */
  constructor(dataDir: string) {
    this.root = join(dataDir, "keys");
  }

  #path(name: string): string {
    return join(this.root, `${name}.json`);
  }

  async #read(name: string): Promise<StoredKey[]> {
    const cached = this.#cache.get(name);
    if (cached) return cached;
    let keys: StoredKey[] = [];
    try {
      keys = JSON.parse(await Deno.readTextFile(this.#path(name))).keys;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#cache.set(name, keys);
    return keys;
  }

  async #write(name: string, keys: StoredKey[]): Promise<void> {
    await Deno.mkdir(this.root, { recursive: true });
    const path = this.#path(name);
    // Write-then-rename so that a crash never leaves half a key file.
    await Deno.writeTextFile(`${path}.tmp`, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
    await Deno.rename(`${path}.tmp`, path);
    this.#cache.set(name, keys);
  }

  /** Runs changes to one function's keys one at a time. */
  #serial<T>(name: string, change: () => Promise<T>): Promise<T> {
    const run = (this.#writes.get(name) ?? Promise.resolve()).then(change, change);
    this.#writes.set(name, run.catch(() => {}));
    return run;
  }

  /** The keys of a function, without their hashes. */
  async list(name: string): Promise<{ id: string; createdAt: string }[]> {
    return (await this.#read(name)).map(({ id, createdAt }) => ({ id, createdAt }));
  }

  /** Makes a key; the returned `key` is not stored and cannot be shown again. */
  create(name: string): Promise<CreatedKey> {
    return this.#serial(name, async () => {
      const id = hex(crypto.getRandomValues(new Uint8Array(6)));
      const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
      const key = `isk_${id}_${secret}`;
      const createdAt = new Date().toISOString();
      await this.#write(name, [...await this.#read(name), { id, createdAt, sha256: hex(await sha256(key)) }]);
      return { id, createdAt, key };
    });
  }

  /** Revokes a key; false if the function has no key with that id. */
  revoke(name: string, id: string): Promise<boolean> {
    return this.#serial(name, async () => {
      const keys = await this.#read(name);
      const kept = keys.filter((k) => k.id !== id);
      if (kept.length === keys.length) return false;
      await this.#write(name, kept);
      return true;
    });
  }

  /** Forgets every key of a function (it was deleted). */
  removeAll(name: string): Promise<void> {
    return this.#serial(name, async () => {
      await Deno.remove(this.#path(name)).catch(() => {});
      this.#cache.delete(name);
    });
  }

  /**
   * The id of the stored key equal to `presented`, or `null`. Hashes are
   * compared in constant time, and against every key, so the answer's timing
   * says nothing about which key came close.
   */
  async verify(name: string, presented: string): Promise<string | null> {
    const keys = await this.#read(name);
    const digest = Buffer.from(await sha256(presented));
    let match: string | null = null;
    for (const key of keys) {
      if (timingSafeEqual(digest, Buffer.from(key.sha256, "hex")) && match === null) match = key.id;
    }
    return match;
  }
}
