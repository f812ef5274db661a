/**
 * Whether a path exists (any kind of file), without throwing.
 * @module
 */

/** Resolves `true` when `path` can be stat'ed, `false` otherwise (missing, or not readable). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
