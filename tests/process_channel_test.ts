/**
 * The process host's channel: a private Unix socket between the runtime and
 * each child (src/pool/process_host.ts). What the child writes to its stdout
 * is logged and leaves the channel whole; `Deno.exit` in a handler is still
 * announced before the process ends; a temporary folder whose path is too long
 * for a socket falls back to /tmp; the runtime's run folder, where the sockets
 * lie, goes with a runtime ended by SIGTERM while a child starts, and one left
 * by SIGKILL is removed by the next runtime. Real runtime, real children, real
 * HTTP.
 * @module
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { errorOf, startServer, type TestServer } from "./support/server.ts";
import { adminToken, bundleOf, deploy } from "./support/bundles.ts";

const chatty = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Writes to its own stdout, then answers; exits when asked",
  input: z.object({ say: z.string(), exit: z.boolean().optional() }),
  output: z.object({ said: z.string() }),
  isolation: "process",
  handler({ say, exit }) {
    Deno.stdout.writeSync(new TextEncoder().encode(say + "\\n"));
    if (exit) Deno.exit(3);
    return { said: say };
  },
});
`;

async function functionsWith(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-channel-" });
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, path), content);
  }
  return dir;
}

Deno.test("process channel: stdout is logged, the channel holds, and Deno.exit is announced", async () => {
  const dir = await functionsWith({ "chatty/mod.ts": chatty });
  try {
    await using server = await startServer({ functionsDir: dir });
    const info = await (await fetch(`${server.url}/v1/functions/chatty`)).json();
    assert.equal(info.isolates[0].isolation, "process");
    for (const say of ["first line", "second line"]) {
      const response = await server.invoke("chatty", { say });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { said: say });
      const line = await server.waitForLog((l) => l.msg === "isolate stdout" && String(l.text).includes(say));
      assert.equal(line.function, "chatty");
    }
    const exited = await server.invoke("chatty", { say: "bye", exit: true });
    assert.equal(exited.status, 500);
    const error = await errorOf(exited);
    assert.equal(error.code, "isolate_crashed");
    assert.match(error.message, /called Deno\.exit\(3\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("process channel: under a TMPDIR too long for a socket's path, the socket lies in /tmp", async () => {
  const dir = await functionsWith({ "chatty/mod.ts": chatty });
  const tmp = join(await Deno.makeTempDir({ prefix: "isolane-long-" }), "x".repeat(100));
  await Deno.mkdir(tmp);
  try {
    await using server = await startServer({ functionsDir: dir, env: { TMPDIR: tmp } });
    const response = await server.invoke("chatty", { say: "through /tmp" });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { said: "through /tmp" });
    // The run folder lies in /tmp: nothing under the long TMPDIR, and the runtime's own folder in /tmp while it runs.
    assert.deepEqual([...Deno.readDirSync(tmp)].filter((e) => e.name.startsWith("isolane-")), []);
    const pid = server.logs.find((l) => l.msg === "starting")?.pid;
    const ofRuntime = () => [...Deno.readDirSync("/tmp")].filter((e) => e.name.startsWith(`isolane-run-${pid}-`));
    assert.equal(ofRuntime().length, 1);
    assert.equal((await server.stop()).code, 0);
    assert.deepEqual(ofRuntime(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(join(tmp, ".."), { recursive: true });
  }
});

/** The `isolane-` entries of a folder. */
function isolaneEntries(dir: string): string[] {
  return [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("isolane-")).map((e) => e.name).sort();
}

/**
 * Deploys a process-host function without waiting for the answer, and resolves once the runtime has made a folder
 * for its child's socket in `tmp` (the child is starting: it connects only once its Deno has started).
 */
async function deployUntilChannel(server: TestServer, tmp: string): Promise<{ answer: Promise<Response> }> {
  using watcher = Deno.watchFs(tmp, { recursive: false });
  const answer = deploy(server, "chatty", await bundleOf({ "mod.ts": chatty }));
  for await (const event of watcher) {
    if (event.kind === "create" && event.paths.some((p) => p.includes("/isolane-"))) break;
  }
  return { answer };
}

Deno.test("process channel: a runtime ended by SIGTERM while a child starts leaves no socket folder", async () => {
  const dir = await functionsWith({});
  const tmp = await Deno.makeTempDir({ prefix: "isolane-tmp-" });
  try {
    await using server = await startServer({
      functionsDir: dir,
      env: { TMPDIR: tmp, ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_SHUTDOWN_GRACE_MS: "0" },
    });
    const { answer } = await deployUntilChannel(server, tmp);
    server.kill("SIGTERM");
    await answer.then((r) => r.body?.cancel(), () => {});
    assert.equal((await server.stop()).code, 0);
    assert.deepEqual(isolaneEntries(tmp), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("process channel: the folder of a runtime killed with SIGKILL while a child starts goes at the next start", async () => {
  const dir = await functionsWith({});
  const tmp = await Deno.makeTempDir({ prefix: "isolane-tmp-" });
  try {
    let left: string[];
    {
      await using server = await startServer({
        functionsDir: dir,
        env: { TMPDIR: tmp, ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_SHUTDOWN_GRACE_MS: "0" },
      });
      const { answer } = await deployUntilChannel(server, tmp);
      server.kill("SIGKILL");
      await answer.then((r) => r.body?.cancel(), () => {});
      assert.equal((await server.stop()).signal, "SIGKILL");
      // Nothing runs at a SIGKILL: the folder stays until a runtime cleans it.
      left = isolaneEntries(tmp);
      assert.equal(left.length, 1);
    }
    await using next = await startServer({ functionsDir: dir, env: { TMPDIR: tmp } });
    assert.deepEqual(isolaneEntries(tmp), []);
    const swept = await next.waitForLog((l) => l.msg === "removed the run folders of runtimes that ended");
    assert.deepEqual(swept.folders, [join(tmp, left[0])]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmp, { recursive: true });
  }
});

/** A PID namespace of its own (and a /proc that shows it), for a runtime as a container would run it. */
const ownPidNamespace = ["unshare", "--pid", "--fork", "--kill-child=SIGTERM", "--mount-proc"];
const canUnshare = await new Deno.Command(ownPidNamespace[0], { args: [...ownPidNamespace.slice(1), "true"] })
  .output().then((o) => o.success, () => false);

Deno.test({
  name: "process channel: a runtime in another PID namespace sharing the folder keeps its run folder at our start",
  // unshare needs CAP_SYS_ADMIN or unprivileged user namespaces; src/owned_folders_test.ts tests the rule without.
  ignore: !canUnshare,
  async fn() {
    const dir = await functionsWith({ "chatty/mod.ts": chatty });
    const tmp = await Deno.makeTempDir({ prefix: "isolane-tmp-" });
    try {
      await using other = await startServer({ functionsDir: dir, env: { TMPDIR: tmp }, under: ownPidNamespace });
      assert.equal((await other.invoke("chatty", { say: "from the other namespace" })).status, 200);
      const [folder] = isolaneEntries(tmp);
      // Its pid is one of its own namespace (1, or close): here that pid is another process, or none.
      const pid = Number(/^isolane-run-(\d+)-/.exec(folder ?? "")?.[1]);
      assert.equal(pid, other.logs.find((l) => l.msg === "starting")?.pid, folder);
      await using next = await startServer({ functionsDir: dir, env: { TMPDIR: tmp } });
      assert.notEqual(next.logs.find((l) => l.msg === "starting")?.pid, pid);
      assert.deepEqual(
        next.logs.filter((l) => l.msg === "removed the run folders of runtimes that ended"),
        [],
        "the other runtime's folder was taken for a stale one",
      );
      assert.ok(isolaneEntries(tmp).includes(folder), `${folder} is gone: ${isolaneEntries(tmp)}`);
      // The other runtime's next child still finds its socket folder.
      const crashed = await other.invoke("chatty", { say: "bye", exit: true });
      assert.equal((await errorOf(crashed)).code, "isolate_crashed");
      assert.equal((await other.invoke("chatty", { say: "after" })).status, 200);
      assert.ok(isolaneEntries(tmp).includes(folder), `${folder} was made again: ${isolaneEntries(tmp)}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("process channel: a run folder removed under a running runtime (a tmp cleaner) is made again for the next child", async () => {
  const dir = await functionsWith({ "chatty/mod.ts": chatty });
  const tmp = await Deno.makeTempDir({ prefix: "isolane-tmp-" });
  try {
    await using server = await startServer({ functionsDir: dir, env: { TMPDIR: tmp } });
    assert.equal((await server.invoke("chatty", { say: "before" })).status, 200);
    const [folder] = isolaneEntries(tmp);
    assert.match(folder, /^isolane-run-/);
    // What systemd-tmpfiles does to a folder left unchanged for 10 days, or a runtime in another PID namespace that
    // shares the folder and sees no process of that pid.
    await Deno.remove(join(tmp, folder), { recursive: true });
    const crashed = await server.invoke("chatty", { say: "bye", exit: true });
    assert.equal((await errorOf(crashed)).code, "isolate_crashed");
    // The respawned child needs a socket of its own.
    const after = await server.invoke("chatty", { say: "after" });
    const body = await after.json();
    assert.equal(after.status, 200, JSON.stringify(body));
    assert.deepEqual(body, { said: "after" });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("process channel: under a TMPDIR that does not exist, the socket lies in /tmp", async () => {
  const dir = await functionsWith({ "chatty/mod.ts": chatty });
  const tmp = join(await Deno.makeTempDir({ prefix: "isolane-gone-" }), "missing");
  try {
    await using server = await startServer({ functionsDir: dir, env: { TMPDIR: tmp } });
    const response = await server.invoke("chatty", { say: "through /tmp" });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.deepEqual(body, { said: "through /tmp" });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(join(tmp, ".."), { recursive: true });
  }
});

Deno.test("process channel: under a relative TMPDIR, the socket's path is made absolute (the child's permission needs one)", async () => {
  const dir = await functionsWith({ "chatty/mod.ts": chatty });
  const tmp = await Deno.makeTempDir({ prefix: "isolane-rel-" });
  try {
    // The runtime runs in this process's folder: the same folder, said relative to it.
    await using server = await startServer({ functionsDir: dir, env: { TMPDIR: relative(Deno.cwd(), tmp) } });
    const response = await server.invoke("chatty", { say: "relative" });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.deepEqual(body, { said: "relative" });
    assert.match(isolaneEntries(tmp)[0] ?? "", /^isolane-run-/, "the run folder lies in that TMPDIR");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmp, { recursive: true });
  }
});
