/**
 * The composition root: discovers the devices, then starts the registry, the
 * functions, the HTTP server and the optional watcher. The one place that
 * wires the native layer (through `devices.ts`) to the server.
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { log, setLogLevel } from "./log.ts";
import { detectDevices, holdOrtLibrary } from "./devices.ts";
import { Registry } from "./registry/registry.ts";
import { ReadySpare } from "./registry/ready_spare.ts";
import { watchFunctions } from "./registry/watch.ts";
import { stopDependencyBuilds } from "./registry/dependencies.ts";
import { createApp } from "./server/app.tsx";
import { createMetrics } from "./server/metrics.ts";
import type { Context } from "hono";
import { adminMode } from "./server/admin_auth.ts";
import { openStore } from "./store/open.ts";
import { StoreSync } from "./store/sync.ts";
import { InvocationKeys } from "./registry/invocation_keys.ts";
import { InvocationAuth } from "./server/invocation_auth.ts";
import { HttpThreads } from "./server/http_threads.ts";
import { removeStaleRunFolders } from "./pool/run_folder.ts";
import { flushFunctionLogDrops, setFunctionLogLimit } from "./pool/log_limit.ts";
import { removeStaleEditedModels } from "./inference/model_edit.ts";
import { checkStartable } from "./start_checks.ts";

/** A running runtime. */
export interface Runtime {
  /** The base URL it listens on. */
  url: string;
  registry: Registry;
  /**
   * Stops accepting connections, logs "shutting down" (with `reason`, a signal's name, say), lets requests in
   * flight finish within the grace period, then ends every isolate.
   */
  close(reason?: string): Promise<void>;
}

const nodeModules = fileURLToPath(new URL("../node_modules", import.meta.url));

// A v2 infer path that names its version counts too, as the HTTP threads count it.
const invocation = /^\/(?:v1\/functions\/([^/]+)|v2\/models\/([^/]+)(?:\/versions\/[^/]+)?\/infer)$/;

/** The function a request invokes (label for metrics), `unknown` for names that do not exist, `null` for other routes. */
function invokedFunction(c: Context, registry: Registry): string | null {
  if (c.req.method !== "POST") return null;
  const match = invocation.exec(c.req.path);
  if (!match) return null;
  const name = match[1] ?? match[2];
  return registry.get(name) ? name : "unknown";
}

/**
 * Loads every function, then serves the API.
 *
 * @example
 * ```ts
 * const runtime = await startRuntime(parseConfig(Deno.env.toObject(), Deno.args));
 * ```
 */
export async function startRuntime(config: Config): Promise<Runtime> {
  checkStartable(config);
  setLogLevel(config.logLevel);
  setFunctionLogLimit({ linesPerSecond: config.logRate, burst: config.logBurst });
  // The process hosts' socket folders of runtimes killed with SIGKILL (src/pool/run_folder.ts).
  removeStaleRunFolders();
  // Edited models' folders of runtimes killed with SIGKILL (src/inference/model_edit.ts).
  const staleModels = removeStaleEditedModels();
  if (staleModels.length > 0) log("info", "removed the edited models of runtimes that ended", { folders: staleModels });
  const held = holdOrtLibrary(nodeModules);
  if (!held.ok) log("warn", "ONNX Runtime's library is not held by the main thread", { reason: held.reason });
  const { inventory, sources, kernelsPtxPath, weightMemory } = detectDevices(nodeModules, config.cudaSync);
  const metrics = createMetrics({ devices: sources, functionOf: (c) => invokedFunction(c, registry) });
  // Started before the functions load, so that the first of them takes it (src/registry/ready_spare.ts).
  const readySpare = config.spareIsolates !== "off"
    ? new ReadySpare(join(config.dataDir, "spares"), { defaultIsolation: config.isolation })
    : undefined;
  await readySpare?.start();
  const registry = new Registry({
    observer: metrics.observer,
    functionsDir: config.functionsDir,
    nodeModules,
    kernelsPtxPath,
    ...(weightMemory && config.sharedWeights === "on" ? { weightMemory } : {}),
    devices: inventory,
    ortThreads: config.ortThreads,
    defaultIsolation: config.isolation,
    bootTimeoutMs: config.bootTimeoutMs,
    spares: config.spareIsolates !== "off",
    processSpares: config.spareIsolates === "all",
    ...(readySpare ? { readySpare } : {}),
  });
  log("info", "starting", {
    pid: Deno.pid,
    functions: registry.functionsDir,
    gpus: sources.devices.map((d) => `${d.index}: ${d.name} (${d.pciBusId})`),
    lanes: inventory.cuda.length > 0 ? "cuda" : `cpu (${inventory.reason})`,
    tensorRt: inventory.tensorRt.ok ? "available" : inventory.tensorRt.reason,
  });
  const store = await openStore(config);
  const sync = new StoreSync(store, registry, {
    reconcileMs: config.storeReconcileMs,
    ...(config.serveFunctions ? { only: config.serveFunctions } : {}),
  });
  // Deployed functions come back at the store's current versions (or this instance's cache while the store is down).
  await Promise.all([registry.loadAll(), sync.start()]);
  log("info", "function store", {
    kind: store.kind,
    reachable: store.health().ok,
    functions: registry.list().filter((e) => e.source === "deployed").map((e) => `${e.name}@${e.current?.version}`),
  });
  const admin = adminMode(config);
  log(admin.kind === "off" ? "info" : "warn", "admin API", {
    mode: admin.kind === "token"
      ? "on, bearer token"
      : admin.kind === "loopback"
      ? "on for loopback clients only, without a token (development)"
      : "off (set ISOLANE_ADMIN_TOKEN to deploy over HTTP)",
  });
  const keys = new InvocationKeys(config.dataDir);
  if (config.devAdmin) log("warn", "invocation auth off for folder functions (development)", {});
  const watcher = config.watch ? watchFunctions(registry) : undefined;
  if (watcher) log("info", "watching for changes", { functions: registry.functionsDir });
  metrics.bind(registry);
  const app = createApp(registry, {
    devices: sources,
    sync,
    admin,
    maxBundleBytes: config.maxBundleBytes,
    uploadTimeoutMs: config.uploadTimeoutMs,
    metrics,
    keys,
    invocationAuth: new InvocationAuth({
      keys,
      jwt: {
        secret: config.jwtSecret,
        jwksUrl: config.jwksUrl,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
      },
      devMode: config.devAdmin,
    }),
  });
  // HTTP on the main thread, or on HTTP threads that hand invocations to the main thread's pools.
  const threads = config.httpThreads > 0
    ? await HttpThreads.start({
      count: config.httpThreads,
      host: config.host,
      port: config.port,
      registry,
      metrics,
      fetch: app.fetch,
      logLevel: config.logLevel,
      maxWholeBytes: config.maxBundleBytes,
      wholeTimeoutMs: config.uploadTimeoutMs,
      devMode: config.devAdmin,
    })
    : undefined;
  const server = threads
    ? undefined
    : Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, app.fetch);
  const port = threads?.port ?? server!.addr.port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  const failed = registry.list().filter((e) => e.error).map((e) => e.name);
  log("info", "listening", {
    url,
    functions: registry.list().map((e) => e.name),
    failed,
    httpThreads: config.httpThreads,
  });
  return {
    url,
    registry,
    async close(reason?: string) {
      watcher?.close();
      sync.stop();
      // No dependency build of a reload or deploy goes on writing into a function's folder after the runtime stops.
      await stopDependencyBuilds();
      // Stop accepting at once; let requests in flight (running or queued) finish, within the grace period.
      const started = performance.now();
      const drained = threads ? (await threads.stopAccepting(), undefined) : server!.shutdown();
      log("info", "shutting down", reason ? { signal: reason } : {});
      const outcome = threads ? await threads.drain(config.shutdownGraceMs) : await Promise.race([
        drained!.then(() => "drained" as const),
        new Promise<"grace period over">((resolve) => setTimeout(resolve, config.shutdownGraceMs, "grace period over")),
      ]);
      await registry.close(
        `The runtime is shutting down (${config.shutdownGraceMs} ms grace period over); retry the request`,
      );
      // The HTTP threads send the answers the pools just gave, then end.
      await threads?.end();
      await readySpare?.close();
      await store.close();
      // Lines dropped in the last second by isolates outside a pool (a version that failed to load, say).
      flushFunctionLogDrops();
      log("info", "stopped", { requests: outcome, ms: Math.round(performance.now() - started) });
    },
  };
}
