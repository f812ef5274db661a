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
import { basename, resolve } from "node:path";
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
const name = values.name ?? basename(resolve(folder));
const token = values.token ?? Deno.env.get("ISOLANE_ADMIN_TOKEN");
const bundle = await packFolder(resolve(folder));

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
const response = await fetch(`${values.url.replace(/\/$/, "")}/v1/functions/${name}`, {
  method: "PUT",
  headers: {
    "content-type": "application/gzip",
    "content-length": String(bundle.byteLength),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  },
  body,
});
bar.stop();
const answer = await response.text();
console.log(answer);
if (!response.ok) {
  console.error(`deploy failed: HTTP ${response.status}`);
  Deno.exit(1);
}
