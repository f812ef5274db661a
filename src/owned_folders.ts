/**
 * Temporary folders owned by one runtime process: their names carry the
 * process's pid and its start time (`<prefix><pid>-<start time>-…`), so that a
 * later runtime can tell a folder left by a runtime killed with SIGKILL (which
 * cannot remove its own) from one of a runtime that still runs: `/proc/<pid>/stat`
 * says whether that pid runs, and its start time whether it is the same process
 * (a reused pid has another). Used by the process hosts' run folder
 * (`src/pool/run_folder.ts`) and the folder of edited models
 * (`src/inference/model_edit.ts`).
 * @module
 */
import { join } from "node:path";
import { tmpdir } from "node:os";

/** A process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22); `undefined` off Linux or gone. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** The name prefix of a folder this process owns: `<prefix><pid>-<start time>-` (start time 0 off Linux). */
export function ownedPrefix(prefix: string): string {
  return `${prefix}${Deno.pid}-${startTime(Deno.pid) ?? "0"}-`;
}

/**
 * Removes the folders named `<prefix><pid>-<start time>-…` (see {@link ownedPrefix}), in the temporary folder
 * (`TMPDIR`) and in `/tmp`, whose process no longer runs; returns their paths. Does nothing where `/proc` cannot tell
 * (not Linux). Folders of processes that still run, other names, and folders this user may not remove are left.
 */
export function removeStaleFolders(prefix: string): string[] {
  if (startTime(Deno.pid) === undefined) return [];
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\d+)-(\\d+)-`);
  const removed: string[] = [];
  for (const dir of new Set([tmpdir(), "/tmp"])) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const entry of entries) {
      const match = entry.isDirectory && entry.name.match(pattern);
      if (!match || startTime(Number(match[1])) === match[2]) continue;
      const path = join(dir, entry.name);
      try {
        Deno.removeSync(path, { recursive: true });
        removed.push(path);
      } catch { /* another user's, or removed meanwhile */ }
    }
  }
  return removed;
}
