/**
 * A process host's child that loses its runtime mid-run (the socket closes:
 * the runtime was killed or crashed) stops its ONNX Runtime run and releases
 * its sessions before it exits: a process that exits while a nonblocking run
 * still goes on a pool thread can meet ORT's teardown at exit and die of
 * SIGSEGV. The test plays the runtime's part itself (src/isolate/process_entry.ts
 * as its own child, spoken to in src/wire.ts frames over a Unix socket), so
 * that it can read what the child says after the runtime's side has gone quiet
 * and see how it exits.
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { encodeFrame, FrameReader } from "../src/wire.ts";
import type { HostMessage, IsolateMessage } from "../src/protocol.ts";
import { loopMatMulModel } from "../native/ort/test_models.ts";

const entry = fileURLToPath(new URL("../src/isolate/process_entry.ts", import.meta.url));
const config = fileURLToPath(new URL("../deno.json", import.meta.url));

/** Iterations of the loop model: minutes of one run on this machine. */
const longRun = 200_000_000;

const loopFunction = `import { defineFunction, Tensor, z } from "isolane";
export default defineFunction({
  description: "Multiplies a row by the identity n times, in one model run",
  input: z.object({ n: z.number().int().min(0) }),
  output: z.object({ y0: z.number() }),
  models: { loop: "loop.onnx" },
  timeoutMs: 600000,
  async handler({ n }, { models }) {
    const x = new Tensor("float32", new Float32Array(256).fill(1), [1, 256]);
    console.log("run started");
    const { y } = await models.loop.run({ n: new Tensor("int64", BigInt64Array.of(BigInt(n)), []), x });
    return { y0: (y.data as Float32Array)[0] };
  },
});
`;

/** The child isolate's process, as the process host starts it, to connect to the socket at `path`. */
function spawnChild(path: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", `--config=${config}`, "--allow-all", entry, path],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** A child isolate started as the process host starts it, with this test on the other end of its socket. */
async function startChild(dir: string) {
  const path = join(dir, "s");
  const listener = Deno.listen({ transport: "unix", path });
  const child = spawnChild(path);
  const conn = await listener.accept();
  listener.close();
  const messages: IsolateMessage[] = [];
  const waiters: { match: (m: IsolateMessage) => boolean; resolve: (m: IsolateMessage) => void }[] = [];
  const reading = (async () => {
    const reader = new FrameReader();
    const buffer = new Uint8Array(64 * 1024);
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      reader.push(buffer.slice(0, n));
      for (let m = reader.next() as IsolateMessage | undefined; m !== undefined; m = reader.next() as IsolateMessage) {
        messages.push(m);
        for (const w of waiters.filter((w) => w.match(m!))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  })().catch(() => {});
  return {
    child,
    conn,
    messages,
    /** Everything the child said, once it has closed its side. */
    reading,
    send: async (message: HostMessage) => {
      let frame = encodeFrame(message);
      while (frame.byteLength > 0) frame = frame.subarray(await conn.write(frame));
    },
    next: (match: (m: IsolateMessage) => boolean) =>
      new Promise<IsolateMessage>((resolve) => {
        const seen = messages.find(match);
        if (seen) resolve(seen);
        else waiters.push({ match, resolve });
      }),
  };
}

/** The serve init of the `loop` function written into `dir`, as the host sends it (a CPU lane, one ORT thread). */
function loopInit(dir: string) {
  return {
    type: "init",
    mode: "serve",
    name: "loop",
    moduleUrl: new URL(`file://${join(dir, "loop", "mod.ts")}`).href,
    modelPaths: { loop: join(dir, "loop", "loop.onnx") },
    assetPaths: {},
    kernelsPtxPath: null,
    lane: { kind: "cpu" },
    ortThreads: 1,
  } as const;
}

Deno.test("process exit: a child whose runtime goes away mid-run stops the run, releases, then exits 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-exit-" });
  await Deno.mkdir(join(dir, "loop"));
  await Deno.writeTextFile(join(dir, "loop", "mod.ts"), loopFunction);
  await Deno.writeFile(join(dir, "loop", "loop.onnx"), loopMatMulModel(256));
  try {
    const isolate = await startChild(dir);
    await isolate.send(loopInit(dir));
    const boot = await isolate.next((m) => m.type === "ready" || m.type === "failed");
    assert.equal(boot.type, "ready", JSON.stringify(boot));
    assert.equal(boot.type === "ready" && boot.models[0].api, "c", "the model runs through the C API");
    await isolate.send({
      type: "run",
      jobs: [{ id: 1, body: new TextEncoder().encode(JSON.stringify({ n: longRun })).buffer }],
    });
    await isolate.next((m) => m.type === "log" && m.text.includes("run started"));
    // The runtime's side goes quiet, as when the runtime dies; the child may still write.
    await isolate.conn.closeWrite();
    const status = await isolate.child.status;
    await isolate.reading;
    const stderr = new TextDecoder().decode(await new Response(isolate.child.stderr).arrayBuffer());
    assert.equal(status.signal, null, `the child died of ${status.signal}: ${stderr}`);
    assert.equal(status.code, 0, stderr);
    const types = isolate.messages.map((m) => m.type);
    // `released` comes once the session's runs in flight have been stopped and have returned, and the session is
    // released: before the exit.
    const released = isolate.messages.find((m) => m.type === "released");
    assert.deepEqual(released, { type: "released", sessions: 1 }, JSON.stringify(types));
    isolate.conn.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The loop function that also logs every 20 ms while its run goes on (the run is nonblocking: the loop is free). */
const tickingFunction = loopFunction.replace(
  `console.log("run started");`,
  `console.log("run started");
    setInterval(() => console.log("tick"), 20);`,
);

Deno.test("process exit: a runtime that dies with the child's messages unread (ECONNRESET) still gets a release, then exit 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-exit-" });
  await Deno.mkdir(join(dir, "loop"));
  await Deno.writeTextFile(join(dir, "loop", "mod.ts"), tickingFunction);
  await Deno.writeFile(join(dir, "loop", "loop.onnx"), loopMatMulModel(256));
  const path = join(dir, "s");
  const listener = Deno.listen({ transport: "unix", path });
  const child = spawnChild(path);
  try {
    const conn = await listener.accept();
    listener.close();
    const send = async (message: HostMessage) => {
      let frame = encodeFrame(message);
      while (frame.byteLength > 0) frame = frame.subarray(await conn.write(frame));
    };
    const reader = new FrameReader();
    const buffer = new Uint8Array(64 * 1024);
    const next = async (match: (m: IsolateMessage) => boolean): Promise<IsolateMessage> => {
      for (;;) {
        for (
          let m = reader.next() as IsolateMessage | undefined;
          m !== undefined;
          m = reader.next() as IsolateMessage
        ) {
          if (match(m)) return m;
        }
        const n = await conn.read(buffer);
        assert.ok(n !== null, "the child closed its side");
        reader.push(buffer.slice(0, n));
      }
    };
    await send(loopInit(dir));
    const boot = await next((m) => m.type === "ready" || m.type === "failed");
    assert.equal(boot.type, "ready", JSON.stringify(boot));
    await send({
      type: "run",
      jobs: [{ id: 1, body: new TextEncoder().encode(JSON.stringify({ n: longRun })).buffer }],
    });
    await next((m) => m.type === "log" && m.text.includes("run started"));
    // One byte of the next message: the rest of it stays unread, so closing resets the child's side (as the kernel
    // does when a runtime is killed with data in its socket's queue).
    assert.equal(await conn.read(new Uint8Array(1)), 1);
    conn.close();
    const status = await child.status;
    const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    assert.equal(status.signal, null, `the child died of ${status.signal}: ${stderr}`);
    assert.equal(status.code, 0, stderr);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await Deno.remove(dir, { recursive: true });
  }
});
