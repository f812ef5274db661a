/**
 * The PostgreSQL store (`ISOLANE_STORE=postgres://…`), shared by every
 * instance: bundles as bytes in chunks with their SHA-256 (a `bytea` holds at
 * most 1 GB), version numbers allocated by the database, the serving pointer,
 * and `NOTIFY isolane_functions` on every change. Each instance unpacks the
 * versions it serves into a local cache, verifying the hash, and remembers
 * what it served so that it can serve from the cache while the store is down.
 * @module
 */
import { join } from "node:path";
import postgres from "postgres";
import { IsolaneError } from "../errors.ts";
import { log } from "../log.ts";
import type { BundleLimits } from "../registry/bundle.ts";
import { inspectBundle } from "../registry/bundle.ts";
import { sha256Hex, unpackInto, writeAtomically } from "./_bundle_io.ts";
import type { FunctionStore, FunctionVersions, StoredVersion, StoreHealth } from "./mod.ts";
import { exists } from "../_exists.ts";

/** Size of one stored chunk of a bundle (well under the 1 GB of a `bytea`). */
export const chunkBytes = 8 * 1024 * 1024;

/** The channel every change is announced on; the payload is the function's name. */
export const notifyChannel = "isolane_functions";

/** Versioned schema migrations, applied in order once each (table `isolane_schema`). */
export const migrations: readonly string[] = [
  `create table isolane_functions (
     name text primary key,
     current_version integer,
     last_version integer not null default 0,
     updated_at timestamptz not null default now()
   );
   create table isolane_versions (
     name text not null references isolane_functions (name) on delete cascade,
     version integer not null,
     created_at timestamptz not null default now(),
     bytes bigint not null,
     sha256 text not null,
     chunks integer not null,
     primary key (name, version)
   );
   create table isolane_chunks (
     name text not null,
     version integer not null,
     seq integer not null,
     data bytea not null,
     primary key (name, version, seq),
     foreign key (name, version) references isolane_versions (name, version) on delete cascade
   );`,
];

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database`. */
  url: string;
  /** The instance's data folder; versions are unpacked under `<dataDir>/cache`. */
  dataDir: string;
  limits: BundleLimits;
}

/**
 * Whether an error means the store cannot be reached (rather than a bad
 * query): SQLSTATE classes 08 (connection) and 57P (shutting down), the
 * client's `CONNECT_TIMEOUT`/`CONNECTION_*`, and socket errors (`ECONNREFUSED`…).
 */
function unreachable(error: unknown): boolean {
  if (error instanceof postgres.PostgresError) return /^(08|57P)/.test(error.code);
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^(CONNECT_TIMEOUT|CONNECTION_[A-Z]+|E[A-Z]+)$/.test(code);
}

function rowToVersion(row: postgres.Row): StoredVersion {
  return {
    version: Number(row.version),
    createdAt: new Date(row.created_at).toISOString(),
    bytes: Number(row.bytes),
    sha256: String(row.sha256),
  };
}

/**
 * Function versions in PostgreSQL. Call {@link PostgresStore.open}, not the constructor.
 *
 * @example
 * ```ts
 * const store = await PostgresStore.open({ url, dataDir: ".isolane", limits });
 * ```
 */
export class PostgresStore implements FunctionStore {
  readonly kind = "postgres" as const;
  readonly #sql: postgres.Sql;
  /** Connections that hold the per-name locks, apart from those doing the work: sharing one pool could deadlock it. */
  readonly #locks: postgres.Sql;
  readonly #cache: string;
  readonly #staging: string;
  readonly #limits: BundleLimits;
  #health: StoreHealth = { ok: true };
  #listening: { unlisten(): Promise<void> } | undefined;
  /** What this instance serves, as `serving.json` in its cache records it. */
  #serving = new Map<string, StoredVersion>();
  #servingWritten = Promise.resolve();

  private constructor(options: PostgresStoreOptions) {
    const client = {
      connect_timeout: 5,
      idle_timeout: 60,
      onnotice: () => {},
      connection: { application_name: "isolane" },
    };
    this.#sql = postgres(options.url, { ...client, max: 8 });
    this.#locks = postgres(options.url, { ...client, max: 16 });
    this.#cache = join(options.dataDir, "cache");
    this.#staging = join(options.dataDir, "staging");
    this.#limits = options.limits;
  }

  /**
   * Connects and applies pending migrations. A store that cannot be reached
   * does not fail the start: the instance serves from its cache and retries.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    store.#serving = await store.lastKnown();
    try {
      await store.migrate();
    } catch (error) {
      if (!(error instanceof IsolaneError && error.code === "store_unavailable")) throw error;
      log("warn", "function store unreachable at start-up: serving from the local cache", { reason: error.message });
    }
    return store;
  }

  /** Runs a store operation, recording whether the store answered; connection failures become `store_unavailable`. */
  async #run<T>(what: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    try {
      const result = await fn(this.#sql);
      if (!this.#health.ok) log("info", "function store reachable again", {});
      this.#health = { ok: true };
      return result;
    } catch (error) {
      if (error instanceof IsolaneError || !unreachable(error)) throw error;
      const reason = `The function store (PostgreSQL) is unreachable: ${(error as Error).message}`;
      this.#health = { ok: false, reason };
      throw new IsolaneError(
        "store_unavailable",
        `Cannot ${what}: ${reason}; functions keep serving from the local cache, retry when the store is back`,
        undefined,
        { "retry-after": "5" },
      );
    }
  }

  /** Applies the migrations not yet applied, under a lock so that instances starting together do not race. */
  async migrate(): Promise<number> {
    return await this.#run("migrate the schema", (sql) =>
      sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('isolane:schema'))`;
        await tx`create table if not exists isolane_schema (
          version integer primary key, applied_at timestamptz not null default now())`;
        const [{ applied }] = await tx`select coalesce(max(version), 0)::int as applied from isolane_schema`;
        for (let i = applied; i < migrations.length; i++) {
          await tx.unsafe(migrations[i]);
          await tx`insert into isolane_schema (version) values (${i + 1})`;
          log("info", "function store schema migrated", { version: i + 1 });
        }
        return migrations.length;
      }));
  }

  async exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const connection = await this.#run("lock the function", () => this.#locks.reserve());
    try {
      await this.#run(
        "lock the function",
        () => connection`select pg_advisory_lock(hashtext(${`isolane:fn:${name}`}))`,
      );
      try {
        return await fn();
      } finally {
        await connection`select pg_advisory_unlock(hashtext(${`isolane:fn:${name}`}))`.catch(() => {});
      }
    } finally {
      connection.release();
    }
  }

  async add(name: string, bundle: Uint8Array<ArrayBuffer>): Promise<{ version: number; dir: string }> {
    await inspectBundle(bundle, this.#limits);
    const sha256 = await sha256Hex(bundle);
    const chunks = Math.max(1, Math.ceil(bundle.byteLength / chunkBytes));
    const row = await this.#run("store the bundle", (sql) =>
      sql.begin(async (tx) => {
        const [allocated] = await tx`
          insert into isolane_functions (name, last_version) values (${name}, 1)
          on conflict (name) do update set last_version = isolane_functions.last_version + 1, updated_at = now()
          returning last_version`;
        const version = Number(allocated.last_version);
        const [inserted] = await tx`
          insert into isolane_versions (name, version, bytes, sha256, chunks)
          values (${name}, ${version}, ${bundle.byteLength}, ${sha256}, ${chunks})
          returning version, created_at, bytes, sha256`;
        for (let seq = 0; seq < chunks; seq++) {
          const data = bundle.subarray(seq * chunkBytes, (seq + 1) * chunkBytes);
          await tx`insert into isolane_chunks (name, version, seq, data) values (${name}, ${version}, ${seq}, ${data})`;
        }
        return inserted;
      }));
    const stored = rowToVersion(row);
    return { version: stored.version, dir: await this.#unpack(name, stored, bundle) };
  }

  async discard(name: string, version: number): Promise<void> {
    await this.#run("discard the version", (sql) =>
      sql.begin(async (tx) => {
        await tx`delete from isolane_versions where name = ${name} and version = ${version}`;
        // A number that never served is given again (unless a later one was allocated meanwhile).
        await tx`update isolane_functions f set last_version =
          (select coalesce(max(version), 0) from isolane_versions v where v.name = f.name) where name = ${name}`;
        await tx`delete from isolane_functions f where name = ${name} and current_version is null
          and not exists (select 1 from isolane_versions v where v.name = f.name)`;
      }));
    // Its unpacked copy goes too: a version that never served leaves nothing behind.
    try {
      for await (const item of Deno.readDir(join(this.#cache, name))) {
        if (item.name.startsWith(`${version}-`)) {
          await Deno.remove(join(this.#cache, name, item.name), { recursive: true });
        }
      }
      // The name's folder goes too when nothing else is cached for it (fails, and stays, when something is).
      await Deno.remove(join(this.#cache, name)).catch(() => {});
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  async setCurrent(name: string, version: number): Promise<void> {
    await this.#run("set the serving version", (sql) =>
      sql.begin(async (tx) => {
        await tx`update isolane_functions set current_version = ${version}, updated_at = now() where name = ${name}`;
        await tx`select pg_notify(${notifyChannel}, ${name})`;
      }));
  }

  async versions(name: string): Promise<FunctionVersions> {
    return await this.#run("read the versions", async (sql) => {
      const [fn] = await sql`select current_version from isolane_functions where name = ${name}`;
      const rows = await sql`select version, created_at, bytes, sha256 from isolane_versions
        where name = ${name} order by version`;
      return { current: fn?.current_version ?? null, versions: rows.map(rowToVersion) };
    });
  }

  async currents(): Promise<Map<string, StoredVersion>> {
    const rows = await this.#run(
      "read the serving versions",
      (sql) =>
        sql`select f.name, v.version, v.created_at, v.bytes, v.sha256
        from isolane_functions f join isolane_versions v on v.name = f.name and v.version = f.current_version`,
    );
    return new Map(rows.map((row) => [String(row.name), rowToVersion(row)]));
  }

  async lastKnown(): Promise<Map<string, StoredVersion>> {
    try {
      const text = await Deno.readTextFile(join(this.#cache, "serving.json"));
      return new Map(Object.entries(JSON.parse(text) as Record<string, StoredVersion>));
    } catch {
      return new Map();
    }
  }

  async served(name: string, version: StoredVersion | undefined): Promise<void> {
    const previous = this.#serving.get(name);
    if (version) this.#serving.set(name, version);
    else this.#serving.delete(name);
    if (version) await this.#prune(name, [version, previous]);
    const text = JSON.stringify(Object.fromEntries(this.#serving), null, 2);
    // Written one after another, so that the file ends as the latest state.
    this.#servingWritten = this.#servingWritten.then(async () => {
      await Deno.mkdir(this.#cache, { recursive: true });
      await writeAtomically(join(this.#cache, "serving.json"), text);
    }).catch((error) => log("warn", "could not record what this instance serves", { reason: error.message }));
    await this.#servingWritten;
  }

  #dir(name: string, version: StoredVersion): string {
    return join(this.#cache, name, `${version.version}-${version.sha256}`);
  }

  async #unpack(name: string, version: StoredVersion, bundle: Uint8Array<ArrayBuffer>): Promise<string> {
    const dir = this.#dir(name, version);
    try {
      await unpackInto(bundle, { stagingRoot: this.#staging, target: dir }, this.#limits);
    } catch (error) {
      // Another caller unpacked the same verified version first.
      if (!(await exists(dir))) throw error;
    }
    return dir;
  }

  /**
   * Removes a function's cached versions except those kept: the one that
   * serves and the one it replaced (which may still be draining requests).
   */
  async #prune(name: string, keep: (StoredVersion | undefined)[]): Promise<void> {
    const kept = new Set(keep.filter((v) => v !== undefined).map((v) => `${v.version}-${v.sha256}`));
    try {
      for await (const item of Deno.readDir(join(this.#cache, name))) {
        if (!kept.has(item.name)) await Deno.remove(join(this.#cache, name, item.name), { recursive: true });
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  async materialize(name: string, version: StoredVersion): Promise<string> {
    const dir = this.#dir(name, version);
    // The folder is named by the hash it was verified against, and appears only once complete (one rename).
    if (await exists(dir)) return dir;
    // One chunk at a time into a buffer of the recorded size: a large bundle is held once, not twice.
    const bundle = new Uint8Array(version.bytes);
    let offset = 0;
    await this.#run("fetch the bundle", async (sql) => {
      const chunks = sql`select data from isolane_chunks where name = ${name} and version = ${version.version}
        order by seq`.cursor(1);
      for await (const [row] of chunks) {
        const data = row.data as Uint8Array;
        if (offset + data.byteLength > bundle.byteLength) {
          throw new IsolaneError(
            "internal",
            `Version ${version.version} of '${name}' in the store is larger than recorded`,
          );
        }
        bundle.set(data, offset);
        offset += data.byteLength;
      }
    });
    const actual = await sha256Hex(bundle);
    if (actual !== version.sha256 || offset !== version.bytes) {
      throw new IsolaneError(
        "internal",
        `Version ${version.version} of '${name}' in the function store is damaged: SHA-256 ${actual} (${offset} bytes), expected ${version.sha256} (${version.bytes} bytes)`,
      );
    }
    return await this.#unpack(name, version, bundle);
  }

  async remove(name: string): Promise<void> {
    await this.#run("delete the function", (sql) =>
      sql.begin(async (tx) => {
        await tx`delete from isolane_functions where name = ${name}`;
        await tx`select pg_notify(${notifyChannel}, ${name})`;
      }));
  }

  /** Drops this instance's cached versions of a function. */
  async forget(name: string): Promise<void> {
    await Deno.remove(join(this.#cache, name), { recursive: true }).catch(() => {});
  }

  watch(onChange: (name: string) => void): () => void {
    let stopped = false;
    let wasDown = false;
    const listen = async () => {
      await this.#listening?.unlisten().catch(() => {});
      // onlisten runs on every (re)connection: changes missed meanwhile are caught up by the caller's reconcile.
      this.#listening = await this.#sql.listen(notifyChannel, onChange, () => onChange(""));
    };
    // The client re-listens once after a lost connection; while the store is down that can fail, so listen again once it answers.
    const timer = setInterval(() => {
      if (stopped) return;
      if (!this.#health.ok) wasDown = true;
      else if (wasDown) {
        wasDown = false;
        listen().catch(() => (wasDown = true));
      }
    }, 500);
    listen().catch(() => (wasDown = true));
    return () => {
      stopped = true;
      clearInterval(timer);
      void this.#listening?.unlisten().catch(() => {});
    };
  }

  health(): StoreHealth {
    return this.#health;
  }

  async close(): Promise<void> {
    await this.#listening?.unlisten().catch(() => {});
    await Promise.all([this.#sql.end({ timeout: 2 }), this.#locks.end({ timeout: 2 })]);
  }
}
