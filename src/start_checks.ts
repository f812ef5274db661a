/**
 * Settings that parse but cannot be used, found before anything loads: a start that would fail only after every
 * function's isolates were up (seconds, with `ocr`) fails at once instead, with one line that names the variable.
 * @module
 */
import { resolve } from "node:path";
import { type Config, ConfigError } from "./config.ts";

/**
 * Checks that the runtime can listen where `HOST` and `PORT` say, and that `ISOLANE_FUNCTIONS` is a folder.
 * The address is bound and released at once (port 0 is not checked): a process that takes it in between still
 * fails the real bind later.
 * @throws {ConfigError} naming the variable at fault, with what to do.
 * @example
 * ```ts
 * checkStartable(parseConfig(Deno.env.toObject(), Deno.args));
 * ```
 */
export function checkStartable(config: Pick<Config, "host" | "port" | "functionsDir">): void {
  const folder = resolve(config.functionsDir);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(folder);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new ConfigError(
      `ISOLANE_FUNCTIONS names no folder: ${folder} does not exist; create it, or point ISOLANE_FUNCTIONS at your ` +
        "functions' folder",
    );
  }
  if (!info.isDirectory) {
    throw new ConfigError(`ISOLANE_FUNCTIONS names ${folder}, which is a file; point it at your functions' folder`);
  }
  if (config.port === 0) return;
  const address = `${config.host.includes(":") ? `[${config.host}]` : config.host}:${config.port}`;
  try {
    Deno.listen({ hostname: config.host, port: config.port }).close();
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ConfigError(
        `Cannot listen on ${address}: the address is in use; stop what listens there, or set PORT (and HOST) to a ` +
          "free address",
      );
    }
    throw new ConfigError(
      `Cannot listen on ${address}: ${error instanceof Error ? error.message : String(error)}; check HOST and PORT`,
    );
  }
}
