/**
 * The function store: where deployed bundles, their versions and the serving
 * pointer of each function live. Two kinds: the local folder (the embedded
 * default, {@link LocalStore}) and PostgreSQL, shared by instances
 * ({@link PostgresStore}). The registry never sees the store: {@link StoreSync}
 * feeds it `activate(name, dir, version)` and `remove(name)`.
 * @module
 */

/** One stored version of a function. */
export interface StoredVersion {
  version: number;
  /** ISO 8601 time of the upload. */
  createdAt: string;
  /** Size of the bundle (`.tar.gz`) in bytes. */
  bytes: number;
  /** SHA-256 of the bundle, lowercase hex. */
  sha256: string;
}

/** The versions of one function and the one that serves (`null`: none yet). */
export interface FunctionVersions {
  current: number | null;
  versions: StoredVersion[];
}

/** Whether the store answers, and why not. */
export type StoreHealth = { ok: true } | { ok: false; reason: string };

/**
 * Bundles, versions and the serving pointer. Every mutation of one name runs
 * inside {@link FunctionStore.exclusive}; a store shared by instances makes
 * that exclusion hold across them.
 *
 * Errors: `store_unavailable` (503) when the store cannot be reached,
 * `invalid_bundle` (422) for a bundle that fails its checks.
 */
export interface FunctionStore {
  /** `local` or `postgres`, as logs and `/readyz` show it. */
  readonly kind: "local" | "postgres";
  /** Runs `fn` with the name's lock held (deploy, rollback, delete of one name never interleave). */
  exclusive<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /**
   * Stores an already checked bundle as a new version, not yet serving, and
   * returns its number and the local folder it is unpacked in. Call inside
   * {@link FunctionStore.exclusive}.
   */
  add(name: string, bundle: Uint8Array<ArrayBuffer>): Promise<{ version: number; dir: string }>;
  /** Drops a version that failed to load (and the name, if nothing else is left). */
  discard(name: string, version: number): Promise<void>;
  /** Marks a stored version as the one that serves. */
  setCurrent(name: string, version: number): Promise<void>;
  /** The versions of a function (empty when unknown). */
  versions(name: string): Promise<FunctionVersions>;
  /** Every name with a serving version, and that version. */
  currents(): Promise<Map<string, StoredVersion>>;
  /** The local folder holding a stored version unpacked (fetched and verified first when needed). */
  materialize(name: string, version: StoredVersion): Promise<string>;
  /** What this instance served last (its cache), for starting while the store is down. */
  lastKnown(): Promise<Map<string, StoredVersion>>;
  /** Records that this instance now serves `version` of `name` (`undefined`: nothing), for {@link FunctionStore.lastKnown}. */
  served(name: string, version: StoredVersion | undefined): Promise<void>;
  /** Removes a function and every version of it. */
  remove(name: string): Promise<void>;
  /** Drops this instance's local copies of a removed function (a no-op where the store is the folder itself). */
  forget(name: string): Promise<void>;
  /**
   * Calls `onChange(name)` when any instance changes a function, and
   * `onChange("")` when changes may have been missed (after a reconnection);
   * returns a function that stops.
   */
  watch(onChange: (name: string) => void): () => void;
  /** Whether the store answers now. */
  health(): StoreHealth;
  /** Closes connections. */
  close(): Promise<void>;
}
