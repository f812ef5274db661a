/**
 * The process host's channel: a private Unix socket between the runtime and
 * each child (src/pool/process_host.ts). What the child writes to its stdout
 * is logged and leaves the channel whole; `Deno.exit` in a handler is still
 * announced before the process ends; a temporary folder whose path is too long
 * for a socket falls back to /tmp. Real runtime, real children, real HTTP.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { errorOf, startServer } from "./support/server.ts";

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
    // The folder is removed once the child has connected: nothing is left under the long TMPDIR either.
    assert.deepEqual([...Deno.readDirSync(tmp)].filter((e) => e.name.startsWith("isolane-host-")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(join(tmp, ".."), { recursive: true });
  }
});
