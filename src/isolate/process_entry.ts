/**
 * The entry of an isolate hosted in a child process (a process host): frames
 * of `src/wire.ts` arrive on stdin and leave on stdout. When stdin closes (the
 * runtime went away, even by SIGKILL) the process exits, and the OS frees
 * everything it held, GPU memory included.
 * @module
 */
import type { HostMessage, IsolateMessage } from "../protocol.ts";
import { encodeFrame, FrameReader } from "../wire.ts";
import { startIsolate } from "./main.ts";

// The runtime decides when this process ends (stdin closing, or SIGKILL). A Ctrl-C in a terminal, or a service
// manager's SIGTERM, reaches the whole process group: the runtime drains its requests first, so this isolate must
// not die under them.
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => {});

// Frames are written whole and in order with synchronous writes, before anything else can touch stdout: a write
// through Deno.stdout.writable cost the isolate a promise chain and a stream per message. A write that fails means
// the host is gone.
const exit = Deno.exit;

function post(message: IsolateMessage): void {
  let frame = encodeFrame(message);
  try {
    while (frame.byteLength > 0) frame = frame.subarray(Deno.stdout.writeSync(frame));
  } catch {
    exit(0);
  }
}

const onMessage = startIsolate({ post, exit: () => exit(0) });

// Read with Deno.stdin.read, not Deno.stdin.readable: no stream, no promise per chunk beyond the read itself.
const reader = new FrameReader();
const buffer = new Uint8Array(256 * 1024);
try {
  for (let n = await Deno.stdin.read(buffer); n !== null; n = await Deno.stdin.read(buffer)) {
    reader.push(buffer.slice(0, n));
    for (let message = reader.next(); message !== undefined; message = reader.next()) {
      onMessage(message as HostMessage);
    }
  }
} finally {
  // The host closed the pipe: nobody is left to serve.
  exit(0);
}
