import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ortLibraryPath } from "./mod.ts";
import { loopMatMulModel, writeTempModel } from "./test_models.ts";

const nodeModules = fileURLToPath(new URL("../../node_modules", import.meta.url));

Deno.test("keepOrtLoaded: a nonblocking run whose Worker ended runs on to its end; the process lives", async () => {
  const loopPath = await writeTempModel(loopMatMulModel(256), "loop.onnx");
  try {
    // A process of its own whose main thread never opens ORT except through keepOrtLoaded, as the runtime's.
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-worker-options",
        fileURLToPath(new URL("./_orphan_run.ts", import.meta.url)),
        ortLibraryPath(nodeModules),
        loopPath,
        "keep",
      ],
      stdout: "piped",
      stderr: "piped",
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(
      output.signal,
      null,
      `the process died of ${output.signal}: ${new TextDecoder().decode(output.stderr)}`,
    );
    assert.equal(output.code, 0, stdout);
    const seen = JSON.parse(stdout.trim().split("\n").at(-1)!);
    // The run went on after its Worker ended (it used CPU), and ended (the CPU time stood still).
    assert.ok(seen.ticksAfterEnd > 0, stdout);
    assert.equal(seen.settled, true, stdout);
  } finally {
    await Deno.remove(loopPath.slice(0, loopPath.lastIndexOf("/")), { recursive: true });
  }
});
