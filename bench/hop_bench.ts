/**
 * The hop alone: round trips of one echo job through each isolate host
 * (`WorkerHost`, `ProcessHost`) with `host.run`, no HTTP, beside a bare
 * Worker's and a bare child process's message round trip, over pipes and over
 * a Unix socket as the process host uses (the floors).
 * Prints the median and p90 in microseconds, and the CPU time per round trip
 * of the process (main thread and Workers) and, for the process host, of
 * the child. Sequential: one job in flight.
 *
 *   deno run -A --unstable-worker-options bench/hop_bench.ts [--count 5000]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { WorkerHost } from "../src/pool/worker_host.ts";
import { ProcessHost } from "../src/pool/process_host.ts";
import type { IsolateHost } from "../src/pool/host.ts";
import { cpuServeSpec } from "../tests/support/serve_spec.ts";

const { values } = parseArgs({ args: Deno.args, options: { count: { type: "string", default: "5000" } } });
const count = Number(values.count);
const dir = await Deno.makeTempDir({ prefix: "isolane-hop-" });
await Deno.writeTextFile(
  `${dir}/mod.ts`,
  `import { defineFunction, z } from "${fileURLToPath(new URL("../src/sdk.ts", import.meta.url))}";
export default defineFunction({
  description: "Echoes a message",
  input: z.object({ message: z.string().max(1000) }),
  output: z.object({ message: z.string() }),
  handler: ({ message }) => ({ message }),
});
`,
);
const spec = cpuServeSpec(dir, "echo", "Echoes a message");
const body = new TextEncoder().encode(JSON.stringify({ message: "hi" }));

function cpuMs(pid: number | string): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function summary(name: string, times: number[], cpu: string): void {
  const s = times.sort((a, b) => a - b);
  const at = (q: number) => s[Math.floor(q * (s.length - 1))].toFixed(0);
  console.log(`| ${name} | ${at(0.5)} | ${at(0.9)} | ${cpu} |`);
}

async function measure(name: string, once: () => Promise<void>, childPid?: number): Promise<void> {
  for (let i = 0; i < 300; i++) await once();
  const times: number[] = [];
  const [self0, child0] = [cpuMs("self"), childPid ? cpuMs(childPid) : 0];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await once();
    times.push((performance.now() - t0) * 1000);
  }
  const self = ((cpuMs("self") - self0) * 1000) / count;
  const child = childPid ? `; child ${(((cpuMs(childPid) - child0) * 1000) / count).toFixed(0)}` : "";
  summary(name, times, `process ${self.toFixed(0)}${child}`);
}

async function viaHost(host: IsolateHost): Promise<void> {
  const [result] = host.run([{ id: next++, body: body.slice().buffer }]);
  const r = await result;
  if (!r.ok) throw new Error(r.error.message);
}
let next = 1;

console.log(`load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(", ")}; ${count} round trips each`);
console.log("| hop | p50 µs | p90 µs | CPU µs per round trip |");
console.log("| --- | --- | --- | --- |");
const bare = new Worker(
  URL.createObjectURL(new Blob(["self.onmessage = (e) => self.postMessage(e.data);"], { type: "text/javascript" })),
  { type: "module" },
);
await measure("bare Worker postMessage", () =>
  new Promise<void>((resolve) => {
    bare.onmessage = () => resolve();
    const b = body.slice().buffer;
    bare.postMessage({ type: "run", jobs: [{ id: 1, body: b }] }, [b]);
  }));
bare.terminate();
const worker = await WorkerHost.start(spec);
await measure("WorkerHost.run (echo)", () => viaHost(worker));
await worker.close();

const echo = new Deno.Command(Deno.execPath(), {
  args: [
    "eval",
    "const b = new Uint8Array(65536); for (let n = await Deno.stdin.read(b); n !== null; n = await Deno.stdin.read(b)) { let f = b.subarray(0, n); while (f.length) f = f.subarray(Deno.stdout.writeSync(f)); }",
  ],
  stdin: "piped",
  stdout: "piped",
}).spawn();
const writer = echo.stdin.getWriter();
const reader = echo.stdout.getReader();
const frame = new TextEncoder().encode(JSON.stringify({ type: "run", jobs: [{ id: 1, body: "0123456789abcdef" }] }));
await measure("bare child process, pipes", async () => {
  await writer.write(frame);
  let got = 0;
  while (got < frame.byteLength) got += (await reader.read()).value!.byteLength;
}, echo.pid);
await writer.close();
await echo.status;
// The process host's channel: a Unix socket, read by the child's own event loop (stdin is read on a pool thread).
const socketDir = await Deno.makeTempDir({ prefix: "isolane-hop-socket-" });
const listener = Deno.listen({ transport: "unix", path: `${socketDir}/s` });
const socketEcho = new Deno.Command(Deno.execPath(), {
  args: [
    "eval",
    `const c = await Deno.connect({ transport: "unix", path: ${
      JSON.stringify(`${socketDir}/s`)
    } }); const b = new Uint8Array(65536); for (let n = await c.read(b); n !== null; n = await c.read(b)) { let f = b.subarray(0, n); while (f.length) f = f.subarray(await c.write(f)); }`,
  ],
}).spawn();
const conn = await listener.accept();
listener.close();
const buffer = new Uint8Array(65536);
await measure("bare child process, Unix socket", async () => {
  await conn.write(frame);
  let got = 0;
  while (got < frame.byteLength) got += (await conn.read(buffer))!;
}, socketEcho.pid);
conn.close();
await socketEcho.status;
await Deno.remove(socketDir, { recursive: true });
const child = await ProcessHost.start(spec);
await measure("ProcessHost.run (echo)", () => viaHost(child), child.pid);
await child.close();
await Deno.remove(dir, { recursive: true });
