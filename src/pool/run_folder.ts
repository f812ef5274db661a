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
import { ownedPrefix, removeStaleFolders } from "../owned_folders.ts";

const prefix = "isolane-run-";
/** The longest socket name made in the folder (`h` and a counter). */
const socketNameBytes = 12;
/** A Unix socket's path holds at most 107 bytes. */
const socketPathBytes = 107;

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
  const name = ownedPrefix(prefix);
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
  const removed = removeStaleFolders(prefix);
  if (removed.length > 0) log("info", "removed the run folders of runtimes that ended", { folders: removed });
  return removed;
}
