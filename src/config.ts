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
  adminToken: z.string().min(16, "ISOLANE_ADMIN_TOKEN must have at least 16 characters").optional(),
  /** Development: the admin API without a token, for loopback clients only. */
  devAdmin: z.boolean().default(false),
  /** Largest accepted bundle (compressed), and what it may unpack to. */
  maxBundleBytes: z.coerce.number().int().min(1024).default(256 * 1024 * 1024),
  maxUnpackedBytes: z.coerce.number().int().min(1024).default(1024 * 1024 * 1024),
  /** How long a shutdown waits for requests in flight. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(10_000),
  /** ONNX Runtime intra-op threads per isolate; 0 divides the machine's cores among the isolates. */
  ortThreads: z.coerce.number().int().min(0).max(256).default(0),
  /** Where isolates of functions that leave `isolation` at "auto" live: "auto" (process on CPU lanes, Worker on GPU lanes), or always one kind. */
  isolation: z.enum(["auto", "worker", "process"]).default("auto"),
  /** HS256 secret that JWTs of functions with `auth: "jwt"` are verified against. */
  jwtSecret: z.string().min(32, "ISOLANE_JWT_SECRET must have at least 32 characters (256 bits for HS256)").optional(),
  /** JWKS URL that JWTs of functions with `auth: "jwt"` are verified against (fetched and cached by jose). */
  jwksUrl: z.url({ protocol: /^https?$/, error: "ISOLANE_JWKS_URL must be an http(s) URL" }).optional(),
  /** The `iss` a JWT must carry, if set. */
  jwtIssuer: z.string().min(1).optional(),
  /** The `aud` a JWT must carry, if set. */
  jwtAudience: z.string().min(1).optional(),
});

/** The validated configuration; the only configuration type the runtime sees. */
export type Config = z.output<typeof configSchema>;

/**
 * Parses the configuration.
 *
 * Environment: `PORT`, `HOST`, `ISOLANE_FUNCTIONS`, `ISOLANE_DATA`,
 * `ISOLANE_LOG_LEVEL`, `ISOLANE_ORT_THREADS`, `ISOLANE_ISOLATION`, `ISOLANE_ADMIN_TOKEN`, `ISOLANE_MAX_BUNDLE_BYTES`,
 * `ISOLANE_MAX_UNPACKED_BYTES`, `ISOLANE_SHUTDOWN_GRACE_MS`, `ISOLANE_JWT_SECRET`, `ISOLANE_JWKS_URL`,
 * `ISOLANE_JWT_ISSUER`, `ISOLANE_JWT_AUDIENCE`. Arguments: `--watch`, `--dev-admin` (development: also
 * turns invocation auth off for folder functions).
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
    isolation: env.ISOLANE_ISOLATION || undefined,
    adminToken: env.ISOLANE_ADMIN_TOKEN || undefined,
    maxBundleBytes: env.ISOLANE_MAX_BUNDLE_BYTES || undefined,
    maxUnpackedBytes: env.ISOLANE_MAX_UNPACKED_BYTES || undefined,
    shutdownGraceMs: env.ISOLANE_SHUTDOWN_GRACE_MS || undefined,
    jwtSecret: env.ISOLANE_JWT_SECRET || undefined,
    jwksUrl: env.ISOLANE_JWKS_URL || undefined,
    jwtIssuer: env.ISOLANE_JWT_ISSUER || undefined,
    jwtAudience: env.ISOLANE_JWT_AUDIENCE || undefined,
    watch: args.includes("--watch"),
    devAdmin: args.includes("--dev-admin"),
  });
  if (!result.success) {
    throw new Error(`Invalid configuration: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}
