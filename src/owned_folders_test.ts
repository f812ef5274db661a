import assert from "node:assert/strict";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ownedPrefix, pidNamespace, removeStaleFolders, startTime } from "./owned_folders.ts";

/** A process that ran and ended: its pid and start time, as its folder's name would carry them. */
async function endedProcess(): Promise<{ pid: number; start: string }> {
  const child = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
  const start = startTime(child.pid);
  assert.ok(start !== undefined, "no start time in /proc for a running child");
  child.kill("SIGKILL");
  await child.status;
  return { pid: child.pid, start };
}

Deno.test({
  name: "removeStaleFolders judges only the folders of its own PID namespace",
  ignore: pidNamespace() === undefined,
  async fn() {
    const prefix = `isolane-owned-test-${crypto.randomUUID().slice(0, 8)}-`;
    const own = pidNamespace()!;
    const ended = await endedProcess();
    const folders = {
      // This process's own folder: it runs.
      mine: Deno.makeTempDirSync({ prefix: ownedPrefix(prefix) }),
      // Of a process of this namespace that ended: stale.
      endedHere: join(tmpdir(), `${prefix}${ended.pid}-${ended.start}-ns${own}-a`),
      // The same pid and start time in another namespace: a runtime this one cannot see, left alone.
      elsewhere: join(tmpdir(), `${prefix}${ended.pid}-${ended.start}-ns${Number(own) + 1}-b`),
      // Named before namespaces were: judged as one of this namespace.
      unnamed: join(tmpdir(), `${prefix}${ended.pid}-${ended.start}-c`),
    };
    for (const path of Object.values(folders)) Deno.mkdirSync(path, { recursive: true });
    try {
      assert.match(folders.mine, new RegExp(`${prefix}${Deno.pid}-\\d+-ns${own}-`));
      const removed = removeStaleFolders(prefix);
      assert.deepEqual(removed.sort(), [folders.endedHere, folders.unnamed].sort());
      const left = [...Deno.readDirSync(tmpdir())].map((e) => join(tmpdir(), e.name)).filter((p) => p.includes(prefix));
      assert.deepEqual(left.sort(), [folders.mine, folders.elsewhere].sort());
    } finally {
      for (const path of Object.values(folders)) {
        try {
          Deno.removeSync(path, { recursive: true });
        } catch { /* removed by the test */ }
      }
    }
  },
});
