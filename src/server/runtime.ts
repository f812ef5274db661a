/**
 * Starts the whole runtime: registry, functions, HTTP server, optional watcher.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Config } from "../config.ts";
import { log, setLogLevel } from "../log.ts";
import type { DeviceInventory } from "../pool/plan_lanes.ts";
import { Registry } from "../registry/registry.ts";
import { watchFunctions } from "../registry/watch.ts";
import { createApp } from "./app.ts";

/** A running runtime. */
export interface Runtime {
  /** The base URL it listens on. */
  url: string;
  registry: Registry;
  /** Stops the server and every isolate. */
  close(): Promise<void>;
}

const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));

/** The devices usable here; CPU only until GPU lanes land. */
function detectDevices(): DeviceInventory {
  return { cuda: [], reason: "GPU lanes are not available in this build" };
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
  setLogLevel(config.logLevel);
  const devices = detectDevices();
  const registry = new Registry({
    functionsDir: config.functionsDir,
    nodeModules,
    devices,
    ortThreads: config.ortThreads,
  });
  log("info", "starting", {
    functions: registry.functionsDir,
    devices: devices.cuda.length > 0 ? devices.cuda : "cpu",
  });
  await registry.loadAll();
  const watcher = config.watch ? watchFunctions(registry) : undefined;
  if (watcher) log("info", "watching for changes", { functions: registry.functionsDir });
  const app = createApp(registry);
  const server = Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, app.fetch);
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.addr.port}`;
  const failed = registry.list().filter((e) => e.error).map((e) => e.name);
  log("info", "listening", { url, functions: registry.list().map((e) => e.name), failed });
  return {
    url,
    registry,
    async close() {
      watcher?.close();
      await server.shutdown();
      registry.close();
    },
  };
}
