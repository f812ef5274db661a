/**
 * The ocr example's recogniser with its CTC head (ArgMax and ReduceMax over
 * the classes, appended at load) against the same function with the plain
 * model (every class's probability read back and arg-maxed in JS), both
 * served by one real runtime: the same lines, text and boxes, on images of one
 * and several lines, tilted, on a transparent background and on a gradient;
 * scores within float rounding.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderTextPng } from "./support/render_text.ts";
import { startServer, type TestServer } from "./support/server.ts";

const ocrDir = fileURLToPath(new URL("../functions/ocr", import.meta.url));

interface Line {
  text: string;
  score: number;
  box: [number, number][];
}

async function read(server: TestServer, name: string, image: Uint8Array): Promise<Line[]> {
  const response = await server.invoke(name, { image: Buffer.from(image).toString("base64") });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.lines;
}

/** Copies functions/ocr to `dir`, with `edit` applied to its mod.ts. */
async function copyOcr(dir: string, edit: (module: string) => string): Promise<void> {
  await Deno.mkdir(dir);
  for await (const entry of Deno.readDir(ocrDir)) {
    if (!entry.isFile || entry.name.endsWith("_test.ts")) continue;
    const text = await Deno.readTextFile(join(ocrDir, entry.name));
    await Deno.writeTextFile(join(dir, entry.name), entry.name === "mod.ts" ? edit(text) : text);
  }
}

Deno.test("ocr: the recogniser's CTC head reads what the whole output read", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "isolane-ocr-head-" });
  try {
    await copyOcr(join(root, "ocr"), (m) => m);
    // The plain model: its one output, every class's probability a step.
    const declaration = /rec: \{\n\s*file: ("npm:[^"]+"),\n[\s\S]*?\n {4}\},\n/;
    await copyOcr(join(root, "ocr_plain"), (m) => {
      assert.match(m, declaration, "functions/ocr/mod.ts declares rec with its outputs");
      return m.replace(declaration, "rec: $1,\n");
    });
    await using server = await startServer({ functionsDir: root });

    await t.step("the edited model is what is described and served; the plain one keeps its output", async () => {
      const info = async (name: string) => (await (await fetch(`${server.url}/v1/functions/${name}`)).json());
      await read(server, "ocr", await renderTextPng(["warm"], { width: 200 }));
      await read(server, "ocr_plain", await renderTextPng(["warm"], { width: 200 }));
      const outputs = (i: { models: { name: string; outputs: { name: string; type: string }[] }[] }) =>
        i.models.find((m) => m.name === "rec")!.outputs.map((o) => `${o.name}:${o.type}`);
      assert.deepEqual(outputs(await info("ocr")), ["classes:int64", "probs:float32"]);
      assert.deepEqual(outputs(await info("ocr_plain")), ["softmax_11.tmp_0:float32"]);
    });

    const images: [string, Promise<Uint8Array>][] = [
      ["two lines, 640 px", renderTextPng(["Hello Edge World 2025", "isolane reads text"])],
      ["a paragraph", renderTextPng(["The quick brown fox", "jumps over 13 lazy dogs", "at 04:05 UTC, twice."])],
      ["tilted by 8°", renderTextPng(["Tilted text reads too"], { width: 700, tiltDegrees: 8 })],
      ["transparent", renderTextPng(["On nothing at all"], { background: "transparent" })],
      ["gradient", renderTextPng(["Photo-like 42%"], { background: "gradient", fontSize: 48 })],
    ];
    for (const [label, rendered] of images) {
      await t.step(`${label}: the same lines, text and boxes; scores within float rounding`, async () => {
        const png = await rendered;
        const head = await read(server, "ocr", png);
        const plain = await read(server, "ocr_plain", png);
        assert.ok(head.length > 0 && head.some((l) => l.text.length > 3), JSON.stringify(head));
        assert.deepEqual(head.map((l) => [l.text, l.box]), plain.map((l) => [l.text, l.box]));
        head.forEach((l, i) => assert.ok(Math.abs(l.score - plain[i].score) < 1e-5, `${l.score} ${plain[i].score}`));
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
