/**
 * What `ocr`'s second reading of a line the angle classifier turned costs on CPU lanes (`functions/ocr/mod.ts`: such a
 * line is read as it came too). Two runtimes, this tree's and a copy of it whose `functions/ocr/mod.ts` reads each line
 * once, each serving its own `ocr`; the same images as bodies, requests to the two in turn (the order swapped every
 * round), so that a busy machine slows both alike. Images: two upright lines, and the same two lines turned 180°.
 * Prints each side's p50 and p90 in ms per request and the texts each read.
 *
 *   deno run -A scripts/ocr_second_read_ab.ts [--runs 20]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { renderTextPng } from "../tests/support/render_text.ts";
import { startServer, type TestServer } from "../tests/support/server.ts";
import { summary } from "./_ocr_cpu_stages.ts";

const { values } = parseArgs({ args: Deno.args, options: { runs: { type: "string", default: "20" } } });
const runs = Number(values.runs);
const root = fileURLToPath(new URL("..", import.meta.url));

/** The block of `functions/ocr/mod.ts` that reads turned lines a second time, as it came. */
const secondRead = /\n {2}const turned = flips\.flatMap[\s\S]*?\n {2}}\n(?= {2}const lines = \[\];)/;

// A copy of this tree's functions/ocr whose mod.ts reads each line once.
const once = await Deno.makeTempDir({ prefix: "isolane-ocr-once-" });
await new Deno.Command("cp", { args: ["-r", `${root}/functions/ocr`, `${once}/ocr`] }).output();
const source = await Deno.readTextFile(`${once}/ocr/mod.ts`);
if (!secondRead.test(source)) throw new Error("functions/ocr/mod.ts has no second reading of turned lines to take out");
await Deno.writeTextFile(`${once}/ocr/mod.ts`, source.replace(secondRead, "\n"));

const lines = ["Hello Edge World 2025", "The quick brown fox jumps"];
const images: Record<string, Uint8Array> = {
  "upright, 2 lines": await renderTextPng(lines, { width: 700 }),
  "turned 180°, 2 lines": await renderTextPng(lines, { width: 700, tiltDegrees: 180 }),
};

const servers: Record<string, TestServer> = {};
try {
  for (const [key, functionsDir] of [["twice", `${root}/functions`], ["once", once]]) {
    servers[key] = await startServer({
      functionsDir,
      env: { CUDA_VISIBLE_DEVICES: "", ISOLANE_LOG_LEVEL: "info", ISOLANE_SERVE_FUNCTIONS: "ocr" },
    });
  }
  console.log(`load average before: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  for (const [name, bytes] of Object.entries(images)) {
    const series: Record<string, number[]> = { twice: [], once: [] };
    const texts: Record<string, string> = {};
    for (let i = 0; i < runs + 2; i++) {
      for (const key of i % 2 ? ["once", "twice"] : ["twice", "once"]) {
        const started = performance.now();
        const response = await fetch(`${servers[key].url}/v1/functions/ocr`, {
          method: "POST",
          headers: { "content-type": "image/png" },
          body: new Uint8Array(bytes),
        });
        const body = await response.json();
        if (!response.ok) throw new Error(`ocr (${key}): ${response.status} ${JSON.stringify(body)}`);
        // The first two rounds warm both up.
        if (i >= 2) series[key].push(performance.now() - started);
        texts[key] = body.lines.map((l: { text: string }) => l.text).join(" | ");
      }
    }
    const [t, o] = [summary(series.twice), summary(series.once)];
    console.log(
      `${name}: read once p50 ${o.p50} (p90 ${o.p90}), turned lines read twice p50 ${t.p50} (p90 ${t.p90}) ms; ` +
        `texts: once "${texts.once}", twice "${texts.twice}"`,
    );
  }
  console.log(`load average after: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} finally {
  for (const server of Object.values(servers)) await server.stop();
  await Deno.remove(once, { recursive: true });
}
