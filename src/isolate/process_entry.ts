/**
 * The entry of an isolate hosted in a child process (a process host): frames
 * of `src/wire.ts` cross the host's Unix socket (its path is the first
 * argument) both ways. When the socket closes (the runtime went away, even by
 * SIGKILL) the process stops its model runs, releases its sessions and exits
 * (within {@link leaveMs}), and the OS frees everything it held, GPU memory
 * included.
 * @module
 */
import type { HostMessage, IsolateMessage } from "../protocol.ts";
import { encodeFrame, FrameReader } from "../wire.ts";
import { startIsolate } from "./main.ts";

// The runtime decides when this process ends (the socket closing, or SIGKILL). A Ctrl-C in a terminal, or a service
// manager's SIGTERM, reaches the whole process group: the runtime drains its requests first, so this isolate must
// not die under them.
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => {});

const exit = Deno.exit;
const path = Deno.args[0];

/**
 * How long a child whose runtime went away waits for its runs to stop and its sessions to be released before it exits
 * anyway (the host's own grace for a planned unload is 2 s).
 */
const leaveMs = 2000;
let leaving = false;

/**
 * The runtime is gone: release as a planned unload does (ORT stops the runs in flight, `RunOptionsSetTerminate`, and
 * they are awaited), then exit. Exiting at once, with a nonblocking run still going on a pool thread, lets the run
 * meet ORT's teardown at exit (SIGSEGV).
 */
function leave(): void {
  if (leaving) return;
  leaving = true;
  setTimeout(() => exit(0), leaveMs);
  onMessage({ type: "shutdown" });
}
let conn: Deno.UnixConn;
try {
  conn = await Deno.connect({ transport: "unix", path });
} catch {
  // The host is gone, or this process was not started by one.
  exit(0);
}

// Frames are written whole and in order. A socket write is made at once, within the call, as far as the socket's
// buffer (some 200 KiB) takes it: a message posted just before an exit (`exiting`, `released`) is sent, unless a
// larger frame is still being written ahead of it. A write that fails means the host is gone.
const outbox: Uint8Array[] = [];
let writing = false;

async function flush(): Promise<void> {
  writing = true;
  try {
    while (outbox.length > 0) {
      let frame = outbox[0];
      while (frame.byteLength > 0) frame = frame.subarray(await conn.write(frame));
      outbox.shift();
    }
  } catch {
    outbox.length = 0;
    leave();
  } finally {
    writing = false;
  }
}

function post(message: IsolateMessage): void {
  outbox.push(encodeFrame(message));
  if (!writing) void flush();
}

const onMessage = startIsolate({ post, exit: () => exit(0) });

// The socket is read by this thread's event loop: stdin was read on a thread of Deno's blocking pool, which then
// woke this one, two wake-ups a message. No stream, no promise per chunk beyond the read itself.
const reader = new FrameReader();
const buffer = new Uint8Array(256 * 1024);
/** A read; `null` at the end, and on a reset too (a runtime killed with this child's messages unread in its socket). */
async function read(): Promise<number | null> {
  try {
    return await conn!.read(buffer);
  } catch {
    // Thrown out of this module, the error would end the process at once, under a run in flight: leave instead.
    return null;
  }
}
try {
  for (let n = await read(); n !== null; n = await read()) {
    reader.push(buffer.slice(0, n));
    for (let message = reader.next(); message !== undefined; message = reader.next()) {
      onMessage(message as HostMessage);
    }
  }
} finally {
  // The host closed the socket: nobody is left to serve.
  leave();
}
