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

// Write frames in order, from one writer, before anything else can touch stdout.
const out = Deno.stdout.writable.getWriter();
const exit = Deno.exit;
let writing = Promise.resolve();

function post(message: IsolateMessage): void {
  const frame = encodeFrame(message);
  writing = writing.then(() => out.write(frame)).catch(() => exit(0));
}

const onMessage = startIsolate({
  post,
  exit: () => void writing.finally(() => exit(0)),
});

const reader = new FrameReader();
try {
  for await (const chunk of Deno.stdin.readable) {
    reader.push(chunk);
    for (let message = reader.next(); message !== undefined; message = reader.next()) {
      onMessage(message as HostMessage);
    }
  }
} finally {
  // The host closed the pipe: nobody is left to serve.
  exit(0);
}
