/**
 * Where a served `ocr` request's time goes beyond the function's own work, on CPU lanes (or CUDA lanes with
 * `--lanes cuda`): a runtime with the isolate
 * in a process host and one with it in a Worker (`ISOLANE_ISOLATION`), both serving a copy of `functions/ocr` whose
 * handler logs how long it took inside the isolate, and `ocr_echo`, a function with the same input, body types and
 * limits that decodes the body's base64 and answers two fixed lines (what serving costs with no OCR). Requests are
 * sequential and interleaved across the two runtimes and four kinds (JSON or PNG body, `ocr` or `ocr_echo`), so
 * that the machine's load falls on all alike; medians are reported: served latency, the handler's time, and the
 * difference (HTTP, the hop to the isolate and back, base64, validation, the answer's JSON).
 *
 * ```sh
 * deno run -A scripts/ocr_served_trace.ts [--runs 30] [--lanes cpu|cuda]
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Buffer } from "node:buffer";
import { renderTextPng } from "../tests/support/render_text.ts";
import { startServer, type TestServer } from "../tests/support/server.ts";
import { summary } from "./_ocr_cpu_stages.ts";

const { values: args } = parseArgs({
  options: { runs: { type: "string", default: "30" }, lanes: { type: "string", default: "cpu" } },
});
const runs = Number(args.runs);
const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));
const dir = await Deno.makeTempDir({ prefix: "ocr-trace-" });
await Deno.mkdir(`${dir}/ocr`);
for await (const entry of Deno.readDir(`${functionsDir}/ocr`)) {
  if (entry.isFile) await Deno.copyFile(`${functionsDir}/ocr/${entry.name}`, `${dir}/ocr/${entry.name}`);
}
const mod = `${dir}/ocr/mod.ts`;
const source = await Deno.readTextFile(mod);
const traced = source.replace(
  "async function readImage(",
  `async function readImage(...args: Parameters<typeof readImageUntimed>) {
  const started = performance.now();
  try {
    return await readImageUntimed(...args);
  } finally {
    console.log(\`handler \${(performance.now() - started).toFixed(3)}\`);
  }
}

async function readImageUntimed(`,
);
if (traced === source) throw new Error("functions/ocr/mod.ts has no readImage to time");
await Deno.writeTextFile(mod, traced);
await Deno.mkdir(`${dir}/ocr_echo`);
await Deno.writeTextFile(
  `${dir}/ocr_echo/mod.ts`,
  `import { Buffer } from "node:buffer";
import { defineFunction, z } from "isolane";

const point = z.tuple([z.number(), z.number()]);
const answer = (bytes: Uint8Array) => ({
  lines: [
    { text: "Hello World", score: 0.99, box: [[10, 10], [200, 10], [200, 50], [10, 50]] },
    { text: "isolane serves " + bytes.length, score: 0.98, box: [[10, 70], [400, 70], [400, 110], [10, 110]] },
  ],
});

export default defineFunction({
  description: "Answers as ocr does without reading the image",
  input: z.object({ image: z.base64().min(1) }),
  output: z.object({
    lines: z.array(z.object({ text: z.string(), score: z.number(), box: z.tuple([point, point, point, point]) })),
  }),
  maxBodyBytes: 16 * 1024 * 1024,
  memoryLimitMb: 4096,
  handler: ({ image }) => answer(Buffer.from(image, "base64")),
  raw: { accepts: ["image/png", "image/jpeg"], handler: (body) => answer(body.bytes) },
});
`,
);

const png = await renderTextPng(["Hello World", "isolane serves 42 models"], { width: 640 });
const json = JSON.stringify({ image: Buffer.from(png).toString("base64") });
const env: Record<string, string> = {
  ISOLANE_LOG_LEVEL: "info",
  ...(args.lanes === "cuda" ? {} : { CUDA_VISIBLE_DEVICES: "" }),
};
const servers: Record<string, TestServer> = {
  process: await startServer({ functionsDir: dir, env: { ...env, ISOLANE_ISOLATION: "process" } }),
  worker: await startServer({ functionsDir: dir, env: { ...env, ISOLANE_ISOLATION: "worker" } }),
};
try {
  const series: Record<string, number[]> = {};
  const push = (key: string, ms: number) => (series[key] ??= []).push(ms);
  const isHandlerLine = (l: Record<string, unknown>) => l.msg === "function log" && /^handler \d/.test(String(l.text));
  const isRequestLine = (l: Record<string, unknown>) => l.msg === "request";
  /** The `n`th log line (from 0) that `match` accepts, once it is there. */
  const nth = async (server: TestServer, match: (l: Record<string, unknown>) => boolean, n: number) => {
    let seen = 0;
    return await server.waitForLog((l) => match(l) && ++seen > n, 10_000);
  };
  for (let i = 0; i < runs + 3; i++) {
    for (const [host, server] of Object.entries(servers)) {
      for (const fn of ["ocr", "ocr_echo"]) {
        for (const body of ["json", "png"]) {
          const handlersBefore = server.logs.filter(isHandlerLine).length;
          const requestsBefore = server.logs.filter(isRequestLine).length;
          const t = performance.now();
          const response = await fetch(`${server.url}/v1/functions/${fn}`, {
            method: "POST",
            headers: { "content-type": body === "json" ? "application/json" : "image/png" },
            body: body === "json" ? json : new Uint8Array(png),
          });
          const answer = await response.json();
          const ms = performance.now() - t;
          if (!response.ok) throw new Error(`${fn} on ${host}: ${response.status} ${JSON.stringify(answer)}`);
          if (i < 3) continue;
          push(`${host} ${fn} ${body} client`, ms);
          const request = await nth(server, isRequestLine, requestsBefore);
          push(`${host} ${fn} ${body} server`, Number(request.ms));
          if (fn === "ocr") {
            const handler = Number(
              String((await nth(server, isHandlerLine, handlersBefore)).text).slice("handler ".length),
            );
            push(`${host} ${fn} ${body} handler`, handler);
            push(`${host} ${fn} ${body} server - handler`, Number(request.ms) - handler);
          }
        }
      }
    }
  }
  for (const [key, xs] of Object.entries(series)) console.log(key.padEnd(36), JSON.stringify(summary(xs)));
} finally {
  for (const server of Object.values(servers)) await server.stop();
  await Deno.remove(dir, { recursive: true });
}
