/**
 * The runtime's run folder: one private folder (mode 0700) per runtime
 * process in the temporary folder, `isolane-run-<pid>-<start time>`, where the
 * process hosts' Unix sockets lie until each child has connected. It goes
 * when the runtime exits (the `unload` event: `Deno.exit` after SIGTERM or
 * SIGINT, the end of the event loop). A runtime killed with SIGKILL cannot
 * remove it, so every runtime removes, when it starts, the run folders of
 * runtimes that no longer run ({@link removeStaleRunFolders}): a folder's name
 * says which process made it, and `/proc/<pid>/stat` whether that process
 * (the same one: its start time too) still runs.
 * @module
 */
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { log } from "../log.ts";

const prefix = "isolane-run-";
/** The longest socket name made in the folder (`h` and a counter). */
const socketNameBytes = 12;
/** A Unix socket's path holds at most 107 bytes. */
const socketPathBytes = 107;

/** This process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22), or `undefined` off Linux. */
function startTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

let folder: string | undefined;
let sockets = 0;

/**
 * A new socket path in this runtime's run folder, made (0700) on first use,
 * and made again if it is gone (a tmp cleaner such as systemd-tmpfiles ages
 * out a folder left unchanged for days); a `TMPDIR` too long for a socket's
 * path, or one that cannot be written, gives way to `/tmp`; a relative one is made absolute. The caller unlinks
 * the socket once its child has connected or ended.
 * @throws Error when neither the temporary folder nor `/tmp` takes a folder.
 */
export function socketPath(): string {
  if (folder && !isFolder(folder)) folder = undefined;
  if (!folder) {
    folder = makeRunFolder();
    globalThis.addEventListener("unload", removeRunFolder);
  }
  return join(folder, `h${++sockets}`);
}

function isFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function makeRunFolder(): string {
  const name = `${prefix}${Deno.pid}-${startTime(Deno.pid) ?? "0"}-`;
  try {
    // Absolute under a relative TMPDIR too: the child's `--allow-net=unix:<path>` takes only an absolute path.
    const dir = resolve(Deno.makeTempDirSync({ prefix: name }));
    if (new TextEncoder().encode(`${dir}/`).byteLength + socketNameBytes <= socketPathBytes) return dir;
    Deno.removeSync(dir);
  } catch { /* TMPDIR missing or not writable: /tmp */ }
  try {
    return Deno.makeTempDirSync({ dir: "/tmp", prefix: name });
  } catch (error) {
    throw new Error(
      `Cannot make the process hosts' run folder in ${tmpdir()} (TMPDIR) nor in /tmp: ${(error as Error).message}; ` +
        `set TMPDIR to a folder this user may write`,
    );
  }
}

/** Removes this runtime's run folder now (it is made again if a host starts later). */
export function removeRunFolder(): void {
  if (!folder) return;
  try {
    Deno.removeSync(folder, { recursive: true });
  } catch { /* removed already */ }
  globalThis.removeEventListener("unload", removeRunFolder);
  folder = undefined;
}

/**
 * Removes the run folders, in the temporary folder and in `/tmp`, of runtimes
 * that no longer run (killed with SIGKILL, say); returns their paths. Does
 * nothing where `/proc` cannot tell (not Linux). Folders of runtimes that
 * still run, and folders this user may not remove, are left.
 */
export function removeStaleRunFolders(): string[] {
  if (startTime(Deno.pid) === undefined) return [];
  const removed: string[] = [];
  for (const dir of new Set([tmpdir(), "/tmp"])) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const entry of entries) {
      const match = entry.isDirectory && entry.name.match(/^isolane-run-(\d+)-(\d+)-/);
      if (!match || startTime(Number(match[1])) === match[2]) continue;
      const path = join(dir, entry.name);
      try {
        Deno.removeSync(path, { recursive: true });
        removed.push(path);
      } catch { /* another user's, or removed meanwhile */ }
    }
  }
  if (removed.length > 0) log("info", "removed the run folders of runtimes that ended", { folders: removed });
  return removed;
}
