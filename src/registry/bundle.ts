/**
 * Function bundles: a `.tar.gz` of a function's folder (`mod.ts`, models,
 * assets). Every entry is checked before anything is written: only files and
 * folders, relative paths without `..`, names the file system can hold, no
 * path both a file and a folder, within the size and count limits.
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
  const bytes = encoder.encode(entry.path).length;
  const clipped = entry.path.length > 64 ? `${entry.path.slice(0, 64)}…` : entry.path;
  if (bytes > maxPathBytes) return `${clipped}: a path of ${bytes} bytes; the limit is ${maxPathBytes}`;
  const long = entry.path.split("/").find((part) => encoder.encode(part).length > maxNameBytes);
  if (long !== undefined) {
    return `${clipped}: a name of ${encoder.encode(long).length} bytes; the limit is ${maxNameBytes}`;
  }
  return null;
}

const encoder = new TextEncoder();
/** Linux's limit on one name in a path (`NAME_MAX`): a longer one cannot be unpacked. */
const maxNameBytes = 255;
/** The longest entry path taken: well within `PATH_MAX` (4096) under the store's folders. */
const maxPathBytes = 1024;

/** The parts of an entry's path, without `.` and empty ones (`./a//b/` is `a`, `b`). */
function partsOf(path: string): string[] {
  return path.split("/").filter((part) => part !== "" && part !== ".");
}

/**
 * Entries that cannot all be unpacked: one inside a path that is a file of the bundle (`x`, then `x/y`), and a folder
 * that is also a file. Either order fails in node-tar, with the file system's error (`EEXIST`, `ENOTDIR`).
 */
function pathConflicts(entries: readonly BundleEntry[]): string[] {
  const files = new Set(entries.filter((e) => e.type !== "Directory").map((e) => partsOf(e.path).join("/")));
  const problems: string[] = [];
  for (const entry of entries) {
    const parts = partsOf(entry.path);
    for (let i = 1; i < parts.length; i++) {
      const above = parts.slice(0, i).join("/");
      if (files.has(above)) {
        problems.push(`${entry.path}: '${above}' is a file in this bundle, not a folder`);
        break;
      }
    }
    if (entry.type === "Directory" && files.has(parts.join("/"))) {
      problems.push(`${entry.path}: a folder and a file of this bundle have this path`);
    }
  }
  return problems;
}

function normalise(path: string): string {
  return path.replace(/^(\.\/)+/, "").replace(/\/$/, "");
}

/** How much of a bundle's compressed bytes node-tar is given at a time. */
const feedBytes = 16 * 1024;
/** How long feeding a bundle holds the event loop before it lets other work run. */
const feedSliceMs = 10;

/**
 * Writes `bytes` to node-tar's `stream` a slice at a time, letting the event loop run every {@link feedSliceMs}: a
 * bundle inflates on the main thread, and given whole (a gzip bomb of 1.5 MB to 1.5 GB) it held every request for
 * seconds. Stops early once `stop()` says so (the stream has failed or refused the bundle), then ends the stream.
 */
async function feed(
  stream: { write(chunk: Buffer): unknown; end(): unknown },
  bytes: Uint8Array,
  stop: () => boolean,
): Promise<void> {
  let since = performance.now();
  for (let at = 0; at < bytes.length && !stop(); at += feedBytes) {
    stream.write(Buffer.from(bytes.buffer, bytes.byteOffset + at, Math.min(feedBytes, bytes.length - at)));
    if (performance.now() - since > feedSliceMs) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      since = performance.now();
    }
  }
  if (!stop()) stream.end();
}

/**
 * Lists and checks every entry; throws `invalid_bundle` with the offending entries. Entries past the limits stop the
 * reading at their header, before their content is inflated.
 */
export async function inspectBundle(bytes: Uint8Array, limits: BundleLimits): Promise<BundleEntry[]> {
  const entries: BundleEntry[] = [];
  let declared = 0;
  let refused: IsolaneError | undefined;
  let failed = false;
  const parser = new tar.Parser({
    onReadEntry: (entry) => {
      entries.push({ path: entry.path, type: entry.type, size: entry.size ?? 0 });
      declared += entry.size ?? 0;
      if (!refused && entries.length > limits.maxEntries) {
        refused = new IsolaneError(
          "invalid_bundle",
          `The bundle has more than ${limits.maxEntries} entries; the limit is ${limits.maxEntries}`,
        );
      } else if (!refused && declared > limits.maxUnpackedBytes) {
        refused = new IsolaneError(
          "invalid_bundle",
          `The bundle unpacks to at least ${declared} bytes; the limit is ${limits.maxUnpackedBytes}`,
        );
      }
      entry.resume();
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (error: unknown) => {
        failed = true;
        reject(error);
      };
      parser.on("end", () => resolve());
      parser.on("error", fail);
      parser.on("warn", (_code: string, message: string | Error) => fail(new Error(String(message))));
      feed(parser, bytes, () => failed || refused !== undefined).then(() => {
        if (refused) resolve();
      }, fail);
    });
  } catch (error) {
    throw new IsolaneError("invalid_bundle", `The bundle is not a readable .tar.gz: ${(error as Error).message}`);
  }
  if (refused) throw refused;
  const problems = entries.map(entryProblem).filter((p): p is string => p !== null);
  if (problems.length === 0) problems.push(...pathConflicts(entries));
  if (problems.length > 0) {
    throw new IsolaneError("invalid_bundle", "The bundle has entries that are not allowed", problems);
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

/** File system errors that say the runtime's disk or limits failed, not the bundle: they stay server errors. */
const serverSide = new Set(["ENOSPC", "EDQUOT", "EIO", "EMFILE", "ENFILE", "EACCES", "EPERM", "EROFS", "ENOMEM"]);

/**
 * Unpacks a bundle that {@link inspectBundle} has passed into `dir` (which must exist and be empty).
 * @throws {IsolaneError} `invalid_bundle` (422) for an entry node-tar cannot unpack (its error, without `dir`); a
 * failure of the disk itself (`ENOSPC`, `EIO`, …) is thrown as node-tar gives it.
 */
export async function extractBundle(bytes: Uint8Array, dir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const extract = tar.x({ cwd: dir, strict: true, preservePaths: false, noChmod: true });
    extract.on("finish", () => resolve());
    extract.on("close", () => resolve());
    let failed = false;
    extract.on("error", (error: Error & { code?: string; tarCode?: string }) => {
      failed = true;
      // An entry's error carries node-tar's code; the checks before should leave none, but one is the bundle's fault.
      if (error.tarCode === undefined || serverSide.has(error.code ?? "")) return reject(error);
      const message = error.message.replaceAll(`${dir}/`, "").replaceAll(dir, ".");
      reject(new IsolaneError("invalid_bundle", `The bundle cannot be unpacked: ${message}`));
    });
    feed(extract, bytes, () => failed).catch(reject);
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
