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
  /** ONNX Runtime intra-op threads per isolate; 0 divides the machine's cores among the isolates. */
  ortThreads: z.coerce.number().int().min(0).max(256).default(0),
});

/** The validated configuration; the only configuration type the runtime sees. */
export type Config = z.output<typeof configSchema>;

/**
 * Parses the configuration.
 *
 * Environment: `PORT`, `HOST`, `ISOLANE_FUNCTIONS`, `ISOLANE_DATA`,
 * `ISOLANE_LOG_LEVEL`, `ISOLANE_ORT_THREADS`. Arguments: `--watch`.
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
    watch: args.includes("--watch"),
  });
  if (!result.success) {
    throw new Error(`Invalid configuration: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}
