/**
 * A child of `hop_floor.ts`: connects to the Unix socket named by its argument, creates one ONNX Runtime session per
 * model of `BENCH_MODELS` (onnxruntime-node on the CPU, every core as intra-op threads, spinning off unless
 * `BENCH_FLOOR_SPIN=1`), sends an empty
 * frame once ready, then answers frames (see `hop_floor.ts` for their layout): `echo` parses each body and writes it
 * back; a model concatenates every body's `x` rows, runs once and sends each body its own rows of `y`.
 * @module
 */
import * as ort from "onnxruntime-node";
import { availableParallelism } from "node:os";

/** Writes every byte, as many `write` calls as it takes. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Calls `onFrame` with each frame's payload (the bytes after its u32 length) until EOF or `limit` frames. */
export async function readFrames(
  conn: Deno.Conn,
  onFrame: (frame: Uint8Array<ArrayBuffer>) => void | Promise<void>,
  limit = Infinity,
): Promise<void> {
  let buffer = new Uint8Array(1 << 16);
  let filled = 0;
  let seen = 0;
  while (seen < limit) {
    if (filled === buffer.length) {
      const grown = new Uint8Array(buffer.length * 2);
      grown.set(buffer);
      buffer = grown;
    }
    const n = await conn.read(buffer.subarray(filled));
    if (n === null) return;
    filled += n;
    let at = 0;
    while (seen < limit && filled - at >= 4) {
      const length = new DataView(buffer.buffer, at, 4).getUint32(0, true);
      if (filled - at - 4 < length) {
        if (length + 4 > buffer.length) {
          const grown = new Uint8Array(length + 4);
          grown.set(buffer.subarray(at, filled));
          buffer = grown;
          filled -= at;
          at = 0;
        }
        break;
      }
      await onFrame(buffer.slice(at + 4, at + 4 + length));
      at += 4 + length;
      seen++;
    }
    buffer.copyWithin(0, at, filled);
    filled -= at;
  }
}

/** Creates the sessions, then returns the frame handler: a frame to the child in, its answer frame out. */
async function frameHandler(): Promise<(frame: Uint8Array) => Promise<Uint8Array<ArrayBuffer>>> {
  const models: Record<string, string> = JSON.parse(Deno.env.get("BENCH_MODELS") ?? "{}");
  const sessions: (ort.InferenceSession | null)[] = [null];
  for (const path of Object.values(models)) {
    sessions.push(
      await ort.InferenceSession.create(path, {
        intraOpNumThreads: availableParallelism(),
        graphOptimizationLevel: "all",
        extra: { session: { intra_op: { allow_spinning: Deno.env.get("BENCH_FLOOR_SPIN") === "1" ? "1" : "0" } } },
      }),
    );
  }
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  return async (frame) => {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const session = sessions[view.getUint8(0)];
    const count = view.getUint16(1, true);
    const bodies: unknown[] = [];
    for (let i = 0, at = 3; i < count; i++) {
      const length = view.getUint32(at, true);
      bodies.push(JSON.parse(decoder.decode(frame.subarray(at + 4, at + 4 + length))));
      at += 4 + length;
    }
    let answers: string[];
    if (!session) {
      answers = bodies.map((body) => JSON.stringify(body));
    } else {
      const rows = bodies.map((body) => (body as { x: number[][] }).x);
      const width = rows[0][0].length;
      const total = rows.reduce((n, x) => n + x.length, 0);
      const input = new Float32Array(total * width);
      let r = 0;
      for (const x of rows) for (const row of x) input.set(row, r++ * width);
      const { y } = await session.run({
        [session.inputNames[0]]: new ort.Tensor("float32", input, [total, width]),
      });
      const out = y.data as Float32Array;
      const cols = y.dims[1];
      r = 0;
      answers = rows.map((x) => JSON.stringify({ y: x.map(() => Array.from(out.subarray(r * cols, ++r * cols))) }));
    }
    const encoded = answers.map((a) => encoder.encode(a));
    const size = 6 + encoded.reduce((n, a) => n + 4 + a.length, 0);
    const out = new Uint8Array(size);
    const w = new DataView(out.buffer);
    w.setUint32(0, size - 4, true);
    w.setUint16(4, count, true);
    let at = 6;
    for (const a of encoded) {
      w.setUint32(at, a.length, true);
      out.set(a, at + 4);
      at += 4 + a.length;
    }
    return out;
  };
}

if ("WorkerGlobalScope" in globalThis) {
  // A Worker child (BENCH_FLOOR_HOST=worker): frames come and go as transferred messages.
  const handle = await frameHandler();
  const scope = self as unknown as Worker;
  scope.onmessage = async ({ data }: MessageEvent<Uint8Array>) => {
    const out = await handle(data.subarray(4));
    scope.postMessage(out, [out.buffer]);
  };
  scope.postMessage("ready");
} else if (import.meta.main) {
  const handle = await frameHandler();
  const conn = await Deno.connect({ transport: "unix", path: Deno.args[0] });
  await writeAll(conn, new Uint8Array(4)); // ready: an empty frame
  await readFrames(conn, async (frame) => await writeAll(conn, await handle(frame)));
}
