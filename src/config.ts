/**
 * Runtime configuration, parsed once at start-up from the environment and the
 * command line. Nothing else in isolane reads `Deno.env`.
 * @module
 */
import { z } from "zod";

/**
 * Half the cores, at most 8, where there are 8 or more; else 0 (HTTP on the main thread). On the 16-core H200 host,
 * 8×1024 MLP at c=64 with the load generator on the same cores: 4 threads 14,621 rps, 6 17,995, 8 19,349
 * (docs/gpu-results.md).
 */
export function defaultHttpThreads(): number {
  const cores = navigator.hardwareConcurrency;
  return cores >= 8 ? Math.min(8, Math.floor(cores / 2)) : 0;
}

const configSchema = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(8000),
  host: z.string().min(1).default("127.0.0.1"),
  functionsDir: z.string().min(1).default("functions"),
  dataDir: z.string().min(1).default(".isolane"),
  watch: z.boolean().default(false),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** Log lines a second each function may write with `console`, on average; more are dropped and counted. */
  logRate: z.coerce.number().positive().default(100),
  /** Log lines each function may write at once above `logRate`. */
  logBurst: z.coerce.number().int().min(1).default(1000),
  /** Bearer token of the admin API (deploy, rollback, delete); without one the admin API is off. */
  adminToken: z.string().min(16, "must have at least 16 characters").optional(),
  /** Development: the admin API without a token, for loopback clients only. */
  devAdmin: z.boolean().default(false),
  /** Largest accepted bundle (compressed), and what it may unpack to. */
  maxBundleBytes: z.coerce.number().int().min(1024).default(256 * 1024 * 1024),
  maxUnpackedBytes: z.coerce.number().int().min(1024).default(1024 * 1024 * 1024),
  /**
   * How long the body of an admin request (a bundle's upload, a rollback) may take to arrive, in milliseconds; past
   * it the request is answered 408 and nothing is deployed. 5 minutes: a 256 MiB bundle at 7 Mbit/s.
   */
  uploadTimeoutMs: z.coerce.number().int().min(100).default(300_000),
  /**
   * How long an isolate may take to start serving a version (import its module, load its models, run `setup`), in
   * milliseconds; past it the load fails with the step it was in.
   */
  bootTimeoutMs: z.coerce.number().int().min(1000).default(120_000),
  /** How long a shutdown waits for requests in flight. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(10_000),
  /** Where deployed functions live: absent for the local folder under `dataDir`, or a `postgres://` URL shared by instances. */
  store: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL").optional(),
  /** Deployed functions this instance serves (comma list); absent: all. One Knative Service per function sets it. */
  serveFunctions: z.string().transform((s) => s.split(",").map((n) => n.trim()).filter((n) => n !== "")).optional(),
  /** Milliseconds between full reconciles with a shared store (notifications carry changes in between). */
  storeReconcileMs: z.coerce.number().int().min(100).default(10_000),
  /** ONNX Runtime intra-op threads per isolate; 0: every core on CPU lanes, one on GPU lanes (`defaultOrtThreads`). */
  ortThreads: z.coerce.number().int().min(0).max(256).default(0),
  /** Where isolates of functions that leave `isolation` at "auto" live: "auto" (process on CPU lanes, Worker on GPU lanes), or always one kind. */
  isolation: z.enum(["auto", "worker", "process"]).default("auto"),
  /** Whether the Worker-hosted CUDA lanes of a function share one copy of its weights per device ("on"), or not. */
  sharedWeights: z.enum(["on", "off"]).default("on"),
  /**
   * How a thread that waits for the GPU treats its CPU, set on each device's primary context by its lanes: "auto"
   * (the driver's default: spin while the process has fewer contexts than cores), "spin", "yield", or "blocking"
   * (`CU_CTX_SCHED_BLOCKING_SYNC`: sleep until the GPU is done, leaving the core to HTTP and other isolates).
   */
  cudaSync: z.enum(["auto", "spin", "yield", "blocking"]).default("auto"),
  /** Whether isolates start ahead ("on"): a spare while a version loads, and one per function for respawns. */
  spareIsolates: z.enum(["on", "off", "all"]).default("on"),
  /**
   * Threads that serve HTTP (parse, read bodies, answer) beside the main thread, which keeps the queues and isolates;
   * 0 serves HTTP on the main thread. Default: half the cores, at most 8, on machines with 8 or more; else 0.
   */
  httpThreads: z.coerce.number().int().min(0).max(64).default(defaultHttpThreads()),
  /** HS256 secret that JWTs of functions with `auth: "jwt"` are verified against. */
  jwtSecret: z.string().min(32, "must have at least 32 characters (256 bits for HS256)").optional(),
  /** JWKS URL that JWTs of functions with `auth: "jwt"` are verified against (fetched and cached by jose). */
  jwksUrl: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  /** The `iss` a JWT must carry, if set. */
  jwtIssuer: z.string().min(1).optional(),
  /** The `aud` a JWT must carry, if set. */
  jwtAudience: z.string().min(1).optional(),
});

/** Where each setting is read from: its environment variable, or its command-line flag. */
const sources: Record<keyof z.input<typeof configSchema>, string> = {
  port: "PORT",
  host: "HOST",
  functionsDir: "ISOLANE_FUNCTIONS",
  dataDir: "ISOLANE_DATA",
  logLevel: "ISOLANE_LOG_LEVEL",
  logRate: "ISOLANE_LOG_RATE",
  logBurst: "ISOLANE_LOG_BURST",
  ortThreads: "ISOLANE_ORT_THREADS",
  adminToken: "ISOLANE_ADMIN_TOKEN",
  maxBundleBytes: "ISOLANE_MAX_BUNDLE_BYTES",
  maxUnpackedBytes: "ISOLANE_MAX_UNPACKED_BYTES",
  uploadTimeoutMs: "ISOLANE_UPLOAD_TIMEOUT_MS",
  shutdownGraceMs: "ISOLANE_SHUTDOWN_GRACE_MS",
  bootTimeoutMs: "ISOLANE_BOOT_TIMEOUT_MS",
  store: "ISOLANE_STORE",
  storeReconcileMs: "ISOLANE_STORE_RECONCILE_MS",
  serveFunctions: "ISOLANE_SERVE_FUNCTIONS",
  isolation: "ISOLANE_ISOLATION",
  sharedWeights: "ISOLANE_SHARED_WEIGHTS",
  spareIsolates: "ISOLANE_SPARE_ISOLATES",
  cudaSync: "ISOLANE_CUDA_SYNC",
  httpThreads: "ISOLANE_HTTP_THREADS",
  jwtSecret: "ISOLANE_JWT_SECRET",
  jwksUrl: "ISOLANE_JWKS_URL",
  jwtIssuer: "ISOLANE_JWT_ISSUER",
  jwtAudience: "ISOLANE_JWT_AUDIENCE",
  watch: "--watch",
  devAdmin: "--dev-admin",
};

/**
 * A configuration that cannot be used. Its message is one line that names
 * each variable at fault and why (never its value: it may be a secret), fit to
 * print as it is; `main.ts` prints it and exits with status 1.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The validated configuration; the only configuration type the runtime sees. */
export type Config = z.output<typeof configSchema>;

/**
 * Parses the configuration. Throws `ConfigError` naming the variable at fault.
 *
 * Environment: `PORT`, `HOST`, `ISOLANE_FUNCTIONS`, `ISOLANE_DATA`,
 * `ISOLANE_LOG_LEVEL`, `ISOLANE_LOG_RATE`, `ISOLANE_LOG_BURST`, `ISOLANE_ORT_THREADS`, `ISOLANE_ISOLATION`, `ISOLANE_SHARED_WEIGHTS`, `ISOLANE_SPARE_ISOLATES`, `ISOLANE_CUDA_SYNC`, `ISOLANE_ADMIN_TOKEN`, `ISOLANE_MAX_BUNDLE_BYTES`,
 * `ISOLANE_MAX_UNPACKED_BYTES`, `ISOLANE_UPLOAD_TIMEOUT_MS`, `ISOLANE_SHUTDOWN_GRACE_MS`, `ISOLANE_BOOT_TIMEOUT_MS`, `ISOLANE_STORE`,
 * `ISOLANE_STORE_RECONCILE_MS`, `ISOLANE_SERVE_FUNCTIONS`, `ISOLANE_JWT_SECRET`, `ISOLANE_JWKS_URL`,
 * `ISOLANE_JWT_ISSUER`, `ISOLANE_JWT_AUDIENCE`. Arguments: `--watch`, `--dev-admin` (development: also
 * turns invocation auth off for folder functions).
 *
 * @example
 * ```ts
 * const config = parseConfig(Deno.env.toObject(), Deno.args);
 * ```
 */
export function parseConfig(env: Record<string, string | undefined>, args: readonly string[]): Config {
  // One list says where each setting comes from; an empty variable counts as unset.
  const input = Object.fromEntries(
    Object.entries(sources).map((
      [key, from],
    ) => [key, from.startsWith("--") ? args.includes(from) : env[from] || undefined]),
  );
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "");
      return `${sources[key as keyof typeof sources] ?? key} ${issue.message.replace(/^Invalid input: /, "")}`;
    });
    throw new ConfigError(`Invalid configuration: ${problems.join("; ")}`);
  }
  return result.data;
}
