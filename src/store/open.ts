/**
 * Opens the function store the configuration names.
 * @module
 */
import type { Config } from "../config.ts";
import { LocalStore } from "./local.ts";
import type { FunctionStore } from "./mod.ts";
import { PostgresStore } from "./postgres.ts";

/**
 * The local folder store under `config.dataDir`, or the PostgreSQL store of
 * `config.store` (`ISOLANE_STORE`), migrated. An unreachable PostgreSQL does
 * not fail the start: the instance serves its cache and retries.
 */
export async function openStore(config: Config): Promise<FunctionStore> {
  const limits = { maxUnpackedBytes: config.maxUnpackedBytes, maxEntries: 10_000 };
  if (!config.store) return new LocalStore(config.dataDir, limits);
  return await PostgresStore.open({ url: config.store, dataDir: config.dataDir, limits });
}
