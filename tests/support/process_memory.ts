/**
 * Resident memory of a process and its descendants, read from /proc (Linux):
 * what the containment tests and the fault soak compare before and after.
 * @module
 */

/** Resident memory of a process tree: in all, and per process (MiB). */
export interface TreeResident {
  mb: number;
  processes: number;
  byPid: Record<number, number>;
}

/** Resident memory of a process and all its descendants, from /proc (Linux). */
export async function treeResident(root: number): Promise<TreeResident> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      parents.set(Number(entry.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch { /* gone */ }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  let pages = 0;
  let processes = 0;
  const byPid: Record<number, number> = {};
  for (const pid of tree) {
    try {
      const own = Number((await Deno.readTextFile(`/proc/${pid}/statm`)).split(" ")[1]);
      pages += own;
      byPid[pid] = (own * 4096) / 2 ** 20;
      processes++;
    } catch { /* gone */ }
  }
  return { mb: (pages * 4096) / 2 ** 20, processes, byPid };
}
