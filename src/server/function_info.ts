/**
 * What the API says about a function.
 * @module
 */
import type { FunctionEntry, Registry } from "../registry/registry.ts";

/** A function as `GET /v1/functions/:name` shows it. */
export function functionInfo(registry: Registry, entry: FunctionEntry): Record<string, unknown> {
  const status = registry.status(entry);
  const current = entry.current;
  const base = {
    name: entry.name,
    source: entry.source,
    status,
    ...(entry.error ? { error: entry.error, file: `${entry.dir}/mod.ts` } : {}),
  };
  if (!current) return base;
  const { options, inputSchema, outputSchema } = current.manifest;
  return {
    ...base,
    description: options.description,
    version: current.version,
    loadedAt: current.loadedAt.toISOString(),
    device: options.device,
    instances: options.instances,
    timeoutMs: options.timeoutMs,
    maxBodyBytes: options.maxBodyBytes,
    queueDepth: options.queueDepth,
    isolation: options.isolation,
    memoryLimitMb: options.memoryLimitMb,
    dynamicBatching: options.dynamicBatching ?? null,
    recentBatchSizes: current.pool.recentBatchSizes,
    sharedAnswers: current.pool.sharedAnswers,
    permissions: options.permissions,
    auth: options.auth,
    cors: options.cors ?? null,
    input: inputSchema,
    output: outputSchema,
    models: current.pool.models.map((m) => ({ ...m, source: options.models[m.name] })),
    isolates: current.pool.isolates(),
    queued: current.pool.queued,
  };
}
