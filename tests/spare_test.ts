/**
 * Spare isolates (`src/pool/spare.ts`), on both hosts: a version boots in the
 * load spare started while its module was inspected, when it declares no
 * more than the spare was given; a function that declares permissions gets
 * an isolate of its own with them instead; a respawn after a timeout boots
 * in the function's respawn spare, which was running before the timeout,
 * and a new spare follows (process hosts: only with `ISOLANE_SPARE_ISOLATES=all`,
 * and from the second respawn on). Observed through the log and the API (isolate
 * ids and pids), never through timings.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { errorOf, startServer, type TestServer } from "./support/server.ts";
import { adminToken, bundleOf, deploy } from "./support/bundles.ts";

const hang = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Answers at once, or never when asked to hang",
  input: z.object({ hang: z.boolean() }),
  output: z.object({ ok: z.boolean() }),
  timeoutMs: 300,
  abortGraceMs: 0,
  handler({ hang }) {
    if (hang) return new Promise<{ ok: boolean }>(() => {});
    return { ok: true };
  },
});
`;

// Declares an env permission: more than a load spare holds, so it must not boot in one.
const envy = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Reads the variable it declares",
  input: z.object({}),
  output: z.object({ value: z.string() }),
  permissions: { env: ["ISOLANE_SPARE_TEST"] },
  handler: () => ({ value: Deno.env.get("ISOLANE_SPARE_TEST") ?? "" }),
});
`;

const hangBundle = await bundleOf({ "mod.ts": hang });

async function functionsWith(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-spare-" });
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, path), content);
  }
  return dir;
}

type Line = Record<string, unknown>;

function spareStarted(
  server: TestServer,
  fn: string,
  purpose: "ready" | "load" | "respawn",
  after = -1,
): Promise<Line> {
  return server.waitForLog((l) =>
    l.msg === "spare isolate started" && l.function === fn && l.purpose === purpose && Number(l.isolate) > after
  );
}

// deno-lint-ignore no-explicit-any
async function isolateOf(server: TestServer, fn: string): Promise<any> {
  return (await (await fetch(`${server.url}/v1/functions/${fn}`)).json()).isolates[0];
}

for (const isolation of ["worker", "process"] as const) {
  Deno.test(`spares (${isolation} host): versions boot in spares started before them; declared permissions do not`, async () => {
    const dir = await functionsWith({ "envy/mod.ts": envy });
    try {
      await using server = await startServer({
        functionsDir: dir,
        env: { ISOLANE_ISOLATION: isolation, ISOLANE_SPARE_TEST: "granted", ISOLANE_ADMIN_TOKEN: adminToken },
      });
      // envy declares env access, which its load spare was not given: that spare is discarded, unused.
      const envySpare = await spareStarted(server, "envy", "load");
      assert.equal(envySpare.isolation, isolation);
      const discarded = await server.waitForLog((l) =>
        l.msg === "spare isolate discarded" && l.function === "envy" && l.isolate === envySpare.isolate
      );
      assert.match(String(discarded.reason), /limits differ/);
      assert.notEqual((await isolateOf(server, "envy")).id, envySpare.isolate);
      assert.deepEqual(await (await server.invoke("envy", {})).json(), { value: "granted" });

      // A deployed version boots in a spare, which inspects it: on Worker hosts the ready spare, started before it; on
      // process hosts, which keep no ready spare, one started with its folder. A model function: it answers with it.
      const ready = isolation === "worker" ? await spareStarted(server, "(ready spare)", "ready") : undefined;
      if (ready) assert.equal(ready.isolation, isolation);
      const model = await Deno.readFile(new URL("../functions/mlp/mlp.onnx", import.meta.url));
      const source = await Deno.readTextFile(new URL("../functions/mlp/mod.ts", import.meta.url));
      const bundle = await bundleOf({ "mod.ts": source, "mlp.onnx": model });
      const put = await deploy(server, "coldmlp", bundle);
      assert.equal(put.status, 201, await put.text());
      const spare = ready ?? await spareStarted(server, "coldmlp", "load");
      const served = await isolateOf(server, "coldmlp");
      assert.equal(served.id, spare.isolate);
      if (isolation === "process") assert.equal(served.pid, spare.pid);
      const answer = await server.invoke("coldmlp", { x: [[0.5, -1, 2, 0.25]] });
      assert.equal(answer.status, 200);
      const { y } = await answer.json();
      assert.equal(y.length, 1);
      assert.equal(y[0].length, 3);

      // Two deploys at once: on Worker hosts one takes the ready spare, the other boots in a load spare started with
      // its folder; on process hosts both do.
      const puts = await Promise.all(["hang1", "hang2"].map((name) => deploy(server, name, hangBundle)));
      for (const response of puts) assert.equal(response.status, 201, await response.text());
      const loadSpares = [];
      for (const name of ["hang1", "hang2"]) {
        const load = server.logs.find((l) =>
          l.msg === "spare isolate started" && l.function === name && l.purpose === "load"
        );
        if (load) {
          loadSpares.push(load);
          assert.equal((await isolateOf(server, name)).id, load.isolate);
        }
        assert.deepEqual(await (await server.invoke(name, { hang: false })).json(), { ok: true });
      }
      assert.equal(loadSpares.length, isolation === "worker" ? 1 : 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("spares (worker host): a respawn after a timeout boots in the spare that ran before it", async () => {
  const dir = await functionsWith({ "hang/mod.ts": hang });
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_ISOLATION: "worker" } });
    const first = await isolateOf(server, "hang");
    let spare = await spareStarted(server, "hang", "respawn");
    for (let round = 0; round < 2; round++) {
      // The spare runs before the timeout that it will replace.
      assert.ok(server.logs.every((l) => !(l.msg === "isolate respawned" && l.isolate === spare.isolate)));
      const timedOut = await errorOf(await server.invoke("hang", { hang: true }));
      assert.equal(timedOut.status, 504);
      const respawned = await server.waitForLog((l) =>
        l.msg === "isolate respawned" && l.function === "hang" && l.isolate === spare.isolate
      );
      assert.equal(respawned.spare, true);
      const now = await isolateOf(server, "hang");
      assert.equal(now.id, spare.isolate);
      assert.notEqual(now.id, first.id);
      assert.deepEqual(await (await server.invoke("hang", { hang: false })).json(), { ok: true });
      // The spare it used is replaced by a new one.
      spare = await spareStarted(server, "hang", "respawn", Number(spare.isolate));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spares: with ISOLANE_SPARE_ISOLATES=all a process host keeps a respawn spare once respawned; the next respawn boots in it", async () => {
  const dir = await functionsWith({ "hang/mod.ts": hang });
  try {
    await using server = await startServer({
      functionsDir: dir,
      env: { ISOLANE_ISOLATION: "process", ISOLANE_SPARE_ISOLATES: "all" },
    });
    const first = await isolateOf(server, "hang");
    assert.equal(first.isolation, "process");
    assert.equal((await errorOf(await server.invoke("hang", { hang: true }))).status, 504);
    const respawned = await server.waitForLog((l) => l.msg === "isolate respawned" && l.function === "hang");
    // No spare process before the first respawn (one costs some 80 MB resident): this one started the process anew.
    assert.equal(respawned.spare, false);
    const spare = await spareStarted(server, "hang", "respawn");
    assert.ok(server.logs.indexOf(spare) > server.logs.indexOf(respawned), "the spare came after the respawn");
    const second = await isolateOf(server, "hang");
    assert.notEqual(second.pid, first.pid);
    assert.notEqual(second.pid, spare.pid);
    assert.deepEqual(await (await server.invoke("hang", { hang: false })).json(), { ok: true });
    // The next timeout is respawned in that spare process, and a new spare follows it.
    assert.equal((await errorOf(await server.invoke("hang", { hang: true }))).status, 504);
    const again = await server.waitForLog((l) =>
      l.msg === "isolate respawned" && l.function === "hang" && l.isolate === spare.isolate
    );
    assert.equal(again.spare, true);
    assert.equal((await isolateOf(server, "hang")).pid, spare.pid);
    assert.deepEqual(await (await server.invoke("hang", { hang: false })).json(), { ok: true });
    await spareStarted(server, "hang", "respawn", Number(spare.isolate));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spares: by default a process host keeps no respawn spare (some 85 MB each); a timeout is still respawned", async () => {
  const dir = await functionsWith({ "hang/mod.ts": hang });
  try {
    await using server = await startServer({ functionsDir: dir, env: { ISOLANE_ISOLATION: "process" } });
    const first = await isolateOf(server, "hang");
    assert.equal((await errorOf(await server.invoke("hang", { hang: true }))).status, 504);
    const respawned = await server.waitForLog((l) => l.msg === "isolate respawned" && l.function === "hang");
    assert.equal(respawned.spare, false);
    const now = await isolateOf(server, "hang");
    assert.notEqual(now.pid, first.pid);
    assert.deepEqual(await (await server.invoke("hang", { hang: false })).json(), { ok: true });
    assert.ok(!server.logs.some((l) => l.msg === "spare isolate started" && l.purpose === "respawn"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spares: ISOLANE_SPARE_ISOLATES=off starts none, and a timeout is still respawned", async () => {
  const dir = await functionsWith({ "hang/mod.ts": hang });
  try {
    await using server = await startServer({
      functionsDir: dir,
      env: { ISOLANE_ISOLATION: "worker", ISOLANE_SPARE_ISOLATES: "off" },
    });
    const first = await isolateOf(server, "hang");
    assert.equal((await errorOf(await server.invoke("hang", { hang: true }))).status, 504);
    const respawned = await server.waitForLog((l) => l.msg === "isolate respawned" && l.function === "hang");
    assert.equal(respawned.spare, false);
    assert.notEqual((await isolateOf(server, "hang")).id, first.id);
    assert.deepEqual(await (await server.invoke("hang", { hang: false })).json(), { ok: true });
    assert.ok(!server.logs.some((l) => l.msg === "spare isolate started"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Whether a process of that pid still runs (and is no zombie). */
function running(pid: number): boolean {
  try {
    return !/\) Z /.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

Deno.test("spares: a process host's respawn spare ends with its function (deleted over HTTP)", async () => {
  const dir = await functionsWith({});
  try {
    await using server = await startServer({
      functionsDir: dir,
      env: { ISOLANE_ISOLATION: "process", ISOLANE_SPARE_ISOLATES: "all", ISOLANE_ADMIN_TOKEN: adminToken },
    });
    const deployed = await deploy(server, "hang", hangBundle);
    assert.ok(deployed.ok, await deployed.text());
    assert.equal((await errorOf(await server.invoke("hang", { hang: true }))).status, 504);
    const spare = await spareStarted(server, "hang", "respawn");
    const serving = await isolateOf(server, "hang");
    assert.ok(running(Number(spare.pid)) && running(serving.pid), JSON.stringify({ spare, serving }));
    const deleted = await fetch(`${server.url}/v1/functions/hang`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(deleted.status, 200, await deleted.text());
    await server.waitForLog((l) => l.msg === "function removed" && l.function === "hang");
    // Ending a host takes its grace (2 s at most); the processes are looked for until then and a while after.
    const deadline = Date.now() + 10_000;
    let left = [Number(spare.pid), serving.pid].filter(running);
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = left.filter(running);
    }
    assert.deepEqual(left, [], `still running: spare ${spare.pid}, serving ${serving.pid}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
