/**
 * `deno task deploy` (scripts/deploy.ts) as a new user runs it, against a real
 * runtime: a folder deploys and serves; the mistakes people make (a `--url`
 * without its scheme, a runtime that is not there, a folder that does not
 * exist or holds no `mod.ts`) end with one line that says what to do, not a
 * stack trace.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startServer } from "./support/server.ts";
import { adminToken } from "./support/bundles.ts";

const script = fileURLToPath(new URL("../scripts/deploy.ts", import.meta.url));

const echo = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Echoes",
  input: z.object({ message: z.string() }),
  output: z.object({ message: z.string() }),
  handler: ({ message }) => ({ message }),
});
`;

async function deployScript(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-net", "--allow-env", "--allow-sys", script, ...args],
    env: { ISOLANE_ADMIN_TOKEN: adminToken, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: output.code, stdout: text.decode(output.stdout), stderr: text.decode(output.stderr) };
}

Deno.test("deno task deploy: deploys a folder; a wrong --url, an absent runtime or folder are said in one line", async () => {
  const root = await Deno.makeTempDir({ prefix: "isolane-deploy-" });
  const folder = join(root, "echo");
  await Deno.mkdir(folder);
  await Deno.writeTextFile(join(folder, "mod.ts"), echo);
  await Deno.mkdir(join(root, "empty"));
  try {
    await using server = await startServer({ functionsDir: root, env: { ISOLANE_ADMIN_TOKEN: adminToken } });
    // The functions folder's own echo is not the one deployed: deploy it under another name.
    const ok = await deployScript([folder, "--url", server.url, "--name", "echo2"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).status, "ready");
    const answer = await server.invoke("echo2", { message: "hi" });
    assert.deepEqual(await answer.json(), { message: "hi" });

    const port = new URL(server.url).port;
    // A port nothing listens on: one the system gave, then closed.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const cases: { args: string[]; code: number; says: RegExp }[] = [
      {
        args: [folder, "--url", `127.0.0.1:${port}`],
        code: 2,
        says: /^Invalid --url '127\.0\.0\.1:\d+': .*http:\/\/127\.0\.0\.1:8000/,
      },
      {
        args: [folder, "--url", `http://127.0.0.1:${closed}`],
        code: 1,
        says: /^Cannot reach the runtime at http:\/\/127\.0\.0\.1:\d+: .*Connection refused/,
      },
      { args: [join(root, "missing"), "--url", server.url], code: 2, says: /^No function folder at .*missing/ },
      { args: [join(root, "empty"), "--url", server.url], code: 2, says: /^No mod\.ts in .*empty/ },
    ];
    for (const { args, code, says } of cases) {
      const run = await deployScript(args);
      assert.equal(run.code, code, `${args.join(" ")}: ${run.stderr}`);
      const lines = run.stderr.trim().split("\n").filter((l) => l.trim() !== "" && !l.startsWith("uploading"));
      assert.equal(lines.length, 1, `one line, no stack trace: ${run.stderr}`);
      assert.match(lines[0], says);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
