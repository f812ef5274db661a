/**
 * Deploys a function folder to a running isolane:
 *
 *   deno task deploy <folder> --url http://127.0.0.1:8000 [--name <name>] [--token <token>]
 *
 * Packs the folder into a .tar.gz, uploads it with `PUT /v1/functions/<name>`
 * (showing progress), and prints the runtime's answer. The token defaults to
 * `ISOLANE_ADMIN_TOKEN`; the name to the folder's name.
 * @module
 */
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import process from "node:process";
import cliProgress from "cli-progress";
import { packFolder } from "../src/registry/bundle.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { url: { type: "string" }, name: { type: "string" }, token: { type: "string" } },
});
const folder = positionals[0];
if (!folder || !values.url) {
  console.error("Usage: deno task deploy <folder> --url <runtime> [--name <name>] [--token <token>]");
  Deno.exit(2);
}
/** Says what went wrong in one line on stderr, and exits with `code`. */
function fail(message: string, code: number): never {
  console.error(message);
  Deno.exit(code);
}

let base: URL;
try {
  base = new URL(values.url);
  if (base.protocol !== "http:" && base.protocol !== "https:") throw new Error(`scheme ${base.protocol}`);
} catch {
  fail(`Invalid --url '${values.url}': give the runtime's address with its scheme, as --url http://127.0.0.1:8000`, 2);
}
const root = resolve(folder);
try {
  if (!Deno.statSync(root).isDirectory) {
    fail(`No function folder at ${root}: it is a file; give the folder of mod.ts`, 2);
  }
} catch (error) {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
  fail(`No function folder at ${root}: give the path of a folder that holds mod.ts`, 2);
}
try {
  Deno.statSync(join(root, "mod.ts"));
} catch {
  fail(`No mod.ts in ${root}: a function folder holds mod.ts, which default-exports defineFunction({...})`, 2);
}
const name = values.name ?? basename(root);
const token = values.token ?? Deno.env.get("ISOLANE_ADMIN_TOKEN");
const bundle = await packFolder(root);

const bar = new cliProgress.SingleBar({
  format: `uploading ${name} [{bar}] {percentage}% | {value}/{total} bytes`,
  stream: process.stderr,
  noTTYOutput: true,
  notTTYSchedule: 250,
}, cliProgress.Presets.shades_classic);
bar.start(bundle.byteLength, 0);
const chunk = 64 * 1024;
let sent = 0;
const body = new ReadableStream<Uint8Array>({
  pull(controller) {
    if (sent >= bundle.byteLength) {
      controller.close();
      return;
    }
    const next = bundle.subarray(sent, sent + chunk);
    sent += next.byteLength;
    bar.update(sent);
    controller.enqueue(next);
  },
});
const target = `${base.href.replace(/\/$/, "")}/v1/functions/${name}`;
let response: Response;
try {
  response = await fetch(target, {
    method: "PUT",
    headers: {
      "content-type": "application/gzip",
      "content-length": String(bundle.byteLength),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body,
  });
} catch (error) {
  bar.stop();
  const cause = (error as Error).cause;
  const why = cause instanceof Error ? cause.message : (error as Error).message;
  fail(`Cannot reach the runtime at ${base.origin}: ${why}; is it running there, and is --url right?`, 1);
}
bar.stop();
const answer = await response.text();
console.log(answer);
if (!response.ok) {
  console.error(`deploy failed: HTTP ${response.status}`);
  Deno.exit(1);
}
