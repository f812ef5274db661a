/**
 * Shared steps of both stores: hash a bundle, unpack it into a fresh folder
 * of its own and move it into place in one rename.
 * @module
 */
import { join } from "node:path";
import { type BundleLimits, extractBundle, inspectBundle } from "../registry/bundle.ts";

/** SHA-256 of `bytes`, lowercase hex. */
export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks a bundle in memory, then unpacks it into a new folder under
 * `stagingRoot` (unique to this writer) and renames that to `target`. Nothing
 * is written when a check fails; `target` must not exist yet. Throws
 * `invalid_bundle` with the reason.
 */
export async function unpackInto(
  bundle: Uint8Array<ArrayBuffer>,
  paths: { stagingRoot: string; target: string },
  limits: BundleLimits,
): Promise<void> {
  await inspectBundle(bundle, limits);
  await Deno.mkdir(paths.stagingRoot, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: paths.stagingRoot, prefix: "unpack-" });
  try {
    await extractBundle(bundle, staging);
    await Deno.mkdir(join(paths.target, ".."), { recursive: true });
    await Deno.rename(staging, paths.target);
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** Writes `text` to `path` through a temporary file unique to this writer, then renames it. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(temp, text);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
