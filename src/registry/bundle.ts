/**
 * Function bundles: a `.tar.gz` of a function's folder (`mod.ts`, models,
 * assets). Every entry is checked before anything is written: only files and
 * folders, relative paths without `..`, within the size and count limits.
 * @module
 */
import { Buffer } from "node:buffer";
import * as tar from "tar";
import { IsolaneError } from "../errors.ts";

/** Limits on what a bundle may unpack to. */
export interface BundleLimits {
  maxUnpackedBytes: number;
  maxEntries: number;
}

/** One entry as the bundle lists it. */
export interface BundleEntry {
  path: string;
  type: string;
  size: number;
}

/** The path of an entry relative to the bundle's root, or why it is refused. */
export function entryProblem(entry: BundleEntry): string | null {
  if (entry.type !== "File" && entry.type !== "Directory" && entry.type !== "OldFile") {
    return `${entry.path}: ${entry.type} entries are not allowed (only files and folders)`;
  }
  if (entry.path.startsWith("/") || /^[A-Za-z]:/.test(entry.path)) {
    return `${entry.path}: absolute paths are not allowed`;
  }
  if (entry.path.split(/[\\/]/).includes("..")) return `${entry.path}: '..' is not allowed in paths`;
  if (entry.path.includes("\0")) return `${entry.path}: NUL in a path`;
  return null;
}

function normalise(path: string): string {
  return path.replace(/^(\.\/)+/, "").replace(/\/$/, "");
}

/** Lists and checks every entry; throws `invalid_bundle` with the offending entries. */
export async function inspectBundle(bytes: Uint8Array, limits: BundleLimits): Promise<BundleEntry[]> {
  const entries: BundleEntry[] = [];
  const parser = new tar.Parser({
    onReadEntry: (entry) => {
      entries.push({ path: entry.path, type: entry.type, size: entry.size ?? 0 });
      entry.resume();
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      parser.on("end", () => resolve());
      parser.on("error", reject);
      parser.on("warn", (_code: string, message: string | Error) => reject(new Error(String(message))));
      parser.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });
  } catch (error) {
    throw new IsolaneError("invalid_bundle", `The bundle is not a readable .tar.gz: ${(error as Error).message}`);
  }
  const problems = entries.map(entryProblem).filter((p): p is string => p !== null);
  if (problems.length > 0) {
    throw new IsolaneError("invalid_bundle", "The bundle has entries that are not allowed", problems);
  }
  if (entries.length > limits.maxEntries) {
    throw new IsolaneError(
      "invalid_bundle",
      `The bundle has ${entries.length} entries; the limit is ${limits.maxEntries}`,
    );
  }
  const total = entries.reduce((sum, e) => sum + e.size, 0);
  if (total > limits.maxUnpackedBytes) {
    throw new IsolaneError(
      "invalid_bundle",
      `The bundle unpacks to ${total} bytes; the limit is ${limits.maxUnpackedBytes}`,
    );
  }
  const files = entries.filter((e) => e.type !== "Directory").map((e) => normalise(e.path));
  if (!files.includes("mod.ts")) {
    // `tar czf my-fn.tar.gz my-fn` puts the folder itself on top, the most common way to get this wrong.
    const nested = files.filter((path) => path.endsWith("/mod.ts")).sort((a, b) => a.length - b.length)[0];
    const folder = nested?.slice(0, -"/mod.ts".length);
    throw new IsolaneError(
      "invalid_bundle",
      nested
        ? `The bundle has no mod.ts at its root, but has ${nested}: pack the folder's contents rather than the ` +
          `folder (tar czf ${folder}.tar.gz -C ${folder} .), or deploy with deno task deploy ${folder}`
        : "The bundle has no mod.ts at its root: a function's folder holds mod.ts, which default-exports " +
          "defineFunction({...}); pack that folder's contents (tar czf fn.tar.gz -C <folder> .)",
    );
  }
  return entries;
}

/** Checks a bundle, then unpacks it into `dir` (which must exist and be empty). */
export async function unpackBundle(bytes: Uint8Array, dir: string, limits: BundleLimits): Promise<BundleEntry[]> {
  const entries = await inspectBundle(bytes, limits);
  await extractBundle(bytes, dir);
  return entries;
}

/** Unpacks a bundle that {@link inspectBundle} has passed into `dir` (which must exist and be empty). */
export async function extractBundle(bytes: Uint8Array, dir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const extract = tar.x({ cwd: dir, strict: true, preservePaths: false, noChmod: true });
    extract.on("finish", () => resolve());
    extract.on("close", () => resolve());
    extract.on("error", reject);
    extract.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });
}

/** Packs a folder into a `.tar.gz` (what `deno task deploy` uploads). */
export async function packFolder(dir: string): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of tar.c({ gzip: true, cwd: dir, portable: true }, ["."]) as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
