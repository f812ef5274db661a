/**
 * Temporary folders owned by one runtime process: their names carry the
 * process's pid, its start time and its PID namespace (`<prefix><pid>-<start time>-ns<inode>-…`), so that a
 * later runtime can tell a folder left by a runtime killed with SIGKILL (which
 * cannot remove its own) from one of a runtime that still runs: `/proc/<pid>/stat`
 * says whether that pid runs, and its start time whether it is the same process
 * (a reused pid has another). Only a folder of the same PID namespace is judged: a runtime in another container that
 * shares `/tmp` has pids this one cannot see, so its folders are left alone. Used by the process hosts' run folder
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

/**
 * The inode of this process's PID namespace (`/proc/self/ns/pid`), which names it among the namespaces of one
 * machine; `undefined` off Linux or where `/proc` does not say.
 */
export function pidNamespace(): string | undefined {
  try {
    const { ino } = Deno.statSync("/proc/self/ns/pid");
    return ino === null ? undefined : String(ino);
  } catch {
    return undefined;
  }
}

/**
 * The name prefix of a folder this process owns: `<prefix><pid>-<start time>-ns<PID namespace's inode>-` (start
 * time 0 and no namespace off Linux).
 */
export function ownedPrefix(prefix: string): string {
  const namespace = pidNamespace();
  return `${prefix}${Deno.pid}-${startTime(Deno.pid) ?? "0"}-${namespace === undefined ? "" : `ns${namespace}-`}`;
}

/**
 * Removes the folders named `<prefix><pid>-<start time>-ns<inode>-…` (see {@link ownedPrefix}), in the temporary
 * folder (`TMPDIR`) and in `/tmp`, of this PID namespace whose process no longer runs; returns their paths. Does
 * nothing where `/proc` cannot tell (not Linux). Folders of processes that still run, of another PID namespace (whose
 * pids `/proc` here does not show), other names, and folders this user may not remove are left. A folder named
 * without a namespace (`<prefix><pid>-<start time>-…`, by a runtime before namespaces were named) is judged as one of
 * this namespace.
 */
export function removeStaleFolders(prefix: string): string[] {
  if (startTime(Deno.pid) === undefined) return [];
  const namespace = pidNamespace();
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\d+)-(\\d+)-(?:ns(\\d+)-)?`);
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
      if (!match || (match[3] !== undefined && match[3] !== namespace)) continue;
      if (startTime(Number(match[1])) === match[2]) continue;
      const path = join(dir, entry.name);
      try {
        Deno.removeSync(path, { recursive: true });
        removed.push(path);
      } catch { /* another user's, or removed meanwhile */ }
    }
  }
  return removed;
}
