/**
 * Runtime configuration, parsed once at start-up from the environment and the
 * command line. Nothing else in isolane reads `Deno.env`.
 * @module
 */
import { z } from "zod";

const configSchema = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(8000),
  host: z.string().min(1).default("127.0.0.1"),
  functionsDir: z.string().min(1).default("functions"),
  dataDir: z.string().min(1).default(".isolane"),
  watch: z.boolean().default(false),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** Bearer token of the admin API (deploy, rollback, delete); without one the admin API is off. */
  adminToken: z.string().min(16, "must have at least 16 characters").optional(),
  /** Development: the admin API without a token, for loopback clients only. */
  devAdmin: z.boolean().default(false),
  /** Largest accepted bundle (compressed), and what it may unpack to. */
  maxBundleBytes: z.coerce.number().int().min(1024).default(256 * 1024 * 1024),
  maxUnpackedBytes: z.coerce.number().int().min(1024).default(1024 * 1024 * 1024),
  /** How long a shutdown waits for requests in flight. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(10_000),
  /** ONNX Runtime intra-op threads per isolate; 0 divides the machine's cores among the isolates. */
  ortThreads: z.coerce.number().int().min(0).max(256).default(0),
});

/** Where each setting is read from: its environment variable, or its command-line flag. */
const sources: Record<string, string> = {
  port: "PORT",
  host: "HOST",
  functionsDir: "ISOLANE_FUNCTIONS",
  dataDir: "ISOLANE_DATA",
  logLevel: "ISOLANE_LOG_LEVEL",
  ortThreads: "ISOLANE_ORT_THREADS",
  adminToken: "ISOLANE_ADMIN_TOKEN",
  maxBundleBytes: "ISOLANE_MAX_BUNDLE_BYTES",
  maxUnpackedBytes: "ISOLANE_MAX_UNPACKED_BYTES",
  shutdownGraceMs: "ISOLANE_SHUTDOWN_GRACE_MS",
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
 * `ISOLANE_LOG_LEVEL`, `ISOLANE_ORT_THREADS`, `ISOLANE_ADMIN_TOKEN`, `ISOLANE_MAX_BUNDLE_BYTES`,
 * `ISOLANE_MAX_UNPACKED_BYTES`, `ISOLANE_SHUTDOWN_GRACE_MS`. Arguments: `--watch`, `--dev-admin`.
 *
 * @example
 * ```ts
 * const config = parseConfig(Deno.env.toObject(), Deno.args);
 * ```
 */
export function parseConfig(env: Record<string, string | undefined>, args: readonly string[]): Config {
  const result = configSchema.safeParse({
    port: env.PORT || undefined,
    host: env.HOST || undefined,
    functionsDir: env.ISOLANE_FUNCTIONS || undefined,
    dataDir: env.ISOLANE_DATA || undefined,
    logLevel: env.ISOLANE_LOG_LEVEL || undefined,
    ortThreads: env.ISOLANE_ORT_THREADS || undefined,
    adminToken: env.ISOLANE_ADMIN_TOKEN || undefined,
    maxBundleBytes: env.ISOLANE_MAX_BUNDLE_BYTES || undefined,
    maxUnpackedBytes: env.ISOLANE_MAX_UNPACKED_BYTES || undefined,
    shutdownGraceMs: env.ISOLANE_SHUTDOWN_GRACE_MS || undefined,
    watch: args.includes("--watch"),
    devAdmin: args.includes("--dev-admin"),
  });
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "");
      return `${sources[key] ?? key} ${issue.message.replace(/^Invalid input: /, "")}`;
    });
    throw new ConfigError(`Invalid configuration: ${problems.join("; ")}`);
  }
  return result.data;
}
