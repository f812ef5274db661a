/**
 * The process host: an isolate on the main thread of a child Deno process
 * started with the function's permissions and a heap limit
 * (`--v8-flags=--max-old-space-size`), speaking the messages of
 * `src/protocol.ts` framed by `src/wire.ts`, with buffers as raw bytes, on a
 * Unix socket (a private one per host in the runtime's run folder,
 * `src/pool/run_folder.ts`, connected once and unlinked; what the
 * child writes to stdout and stderr is logged). A heap runaway aborts only the
 * child; a runaway of `ArrayBuffer`s, which the heap limit does not bound, is
 * caught by the memory watchdog. The child exits when the socket closes, so it
 * never outlives the runtime, even one killed with SIGKILL.
 *
 * Why a socket and not the child's stdin and stdout: Deno reads stdin on a
 * thread of its blocking pool, which then wakes the isolate's thread, so every
 * message woke two threads; a socket is read by the isolate's own event loop,
 * and on both sides without a stream. A bare round trip on the 2-core VM:
 * 20–27 µs against 33–70 µs through the pipes (docs/hop.md).
 * @module
 */
import { fileURLToPath } from "node:url";
import type { HostMessage, IsolateMessage, Job } from "../protocol.ts";
import { encodeFrame, encodeRunFrame, FrameReader } from "../wire.ts";
import { log } from "../log.ts";
import { HostBase, type HostSpec, type Isolation } from "./host.ts";
import { watchMemory } from "./memory_watchdog.ts";
import { IsolaneError } from "../errors.ts";
import type { FunctionLimits } from "./limits.ts";
import { socketPath } from "./run_folder.ts";

const entry = fileURLToPath(new URL("../isolate/process_entry.ts", import.meta.url));
const config = fileURLToPath(new URL("../../deno.json", import.meta.url));
const pageSize = 4096;

/**
 * The `deno run` flags that grant what `permissions` grants, and nothing else; with `channel` (the path of the host's
 * Unix socket), also what connecting to it takes: read, write and net (`unix:<path>`) of that one path, which is
 * unlinked as soon as the child has connected.
 */
export function permissionFlags(permissions: Deno.PermissionOptionsObject, channel?: string): string[] {
  const flags: string[] = [];
  const add = (name: string, value: unknown, extra?: string) => {
    if (value === true || value === "inherit") flags.push(`--allow-${name}`);
    else {
      const list = [...(Array.isArray(value) ? value : []), ...(extra ? [extra] : [])];
      if (list.length > 0) flags.push(`--allow-${name}=${list.join(",")}`);
    }
  };
  add("read", permissions.read, channel);
  add("write", permissions.write, channel);
  add("net", permissions.net, channel && `unix:${channel}`);
  add("env", permissions.env);
  add("ffi", permissions.ffi);
  add("run", permissions.run);
  add("sys", permissions.sys);
  // Deno 2 allows imports from a list of hosts by default; an isolate may import nothing remote. A bare
  // `--deny-import` leaves that list allowed in Deno 2.9.6 (a child imported https://deno.land/... with it), so the
  // list is denied by name; any other host needs an `--allow-import` the child never gets.
  if (!permissions.import) flags.push(`--deny-import=${defaultImportHosts.join(",")}`);
  return flags;
}

/** The hosts Deno 2 allows imports from without `--allow-import` (`deno run --help`, Deno 2.9.6). */
const defaultImportHosts = [
  "deno.land:443",
  "jsr.io:443",
  "esm.sh:443",
  "raw.esm.sh:443",
  "cdn.jsdelivr.net:443",
  "raw.githubusercontent.com:443",
  "gist.githubusercontent.com:443",
];

/** Errors of a read on a socket that closed, as opposed to bytes that are not frames. */
const hangUps = [
  Deno.errors.BadResource,
  Deno.errors.Interrupted,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.BrokenPipe,
];

/** An isolate in a child process. */
export class ProcessHost extends HostBase {
  readonly isolation: Isolation = "process";
  readonly pid: number;
  #child: Deno.ChildProcess;
  /** The socket to the child, once it has connected; frames sent before then wait in {@link #outbox}. */
  #conn: Deno.UnixConn | undefined;
  #outbox: Uint8Array[] = [];
  #writing = false;
  #memoryMb: number;
  #outOfMemory: string | undefined;
  /** The child wrote V8's heap-limit words to stderr: its end is put down to the heap only if V8 then aborted it. */
  #heapLimitSaid = false;
  #unwatch: () => void;
  #cpuLimitMs: number;
  /** CPU time of the process (ms) when the work in progress started, and how many jobs were answered then. */
  #cpuStart: { ms: number; served: number } | undefined;

  private constructor(
    name: string,
    child: Deno.ChildProcess,
    channel: { listener: Deno.UnixListener; path: string },
    { memoryMb, cpuLimitMs }: { memoryMb: number; cpuLimitMs: number },
  ) {
    super(name);
    this.#cpuLimitMs = cpuLimitMs;
    this.#child = child;
    this.pid = child.pid;
    this.#memoryMb = memoryMb;
    this.#unwatch = watchMemory(this, memoryMb);
    const failed = (where: string) => (error: unknown) =>
      log("error", "process host failed", { function: this.name, isolate: this.id, where, reason: String(error) });
    this.#connect(channel).catch(failed("socket"));
    this.#readOutput(child.stdout, "stdout").catch(failed("stdout"));
    this.#readOutput(child.stderr, "stderr").catch(failed("stderr"));
    child.status.then((status) => {
      this.#unwatch();
      // A child that never connected leaves the listener waiting: closing it ends the accept.
      this.#close(channel);
      this.#hangUp();
      // V8's fatal out-of-memory ends the process with SIGTRAP (exit 133); the words alone on stderr may be the
      // function's own, and a later SIGKILL or crash was reported as a memory limit exceeded.
      const heap = this.#heapLimitSaid && (status.signal === "SIGTRAP" || status.code === 133)
        ? `exceeded its memory limit of ${this.#memoryMb} MB (heap)`
        : undefined;
      this.ended(
        this.#outOfMemory ?? heap ?? `exited (code ${status.code}${status.signal ? `, ${status.signal}` : ""})`,
      );
    }).catch(failed("exit"));
  }

  /** Takes the child's connection (the first and only one), then unlinks the socket and sends what waited. */
  async #connect(channel: { listener: Deno.UnixListener; path: string }): Promise<void> {
    let conn: Deno.UnixConn;
    try {
      conn = await channel.listener.accept();
    } catch {
      return; // The child ended first; its exit reports why.
    } finally {
      this.#close(channel);
    }
    this.#conn = conn;
    void this.#flush();
    await this.#read(conn);
  }

  #close({ listener, path }: { listener: Deno.UnixListener; path: string }): void {
    try {
      listener.close();
    } catch { /* closed already */ }
    // At once: nobody else may connect, and the run folder keeps no dead sockets.
    try {
      Deno.removeSync(path);
    } catch { /* removed already */ }
  }

  /** Writes the waiting frames in order, each whole; a write that fails means the child is gone (its exit reports it). */
  async #flush(): Promise<void> {
    const conn = this.#conn;
    if (this.#writing || !conn) return;
    this.#writing = true;
    try {
      while (this.#outbox.length > 0) {
        let frame = this.#outbox[0];
        while (frame.byteLength > 0) frame = frame.subarray(await conn.write(frame));
        this.#outbox.shift();
      }
    } catch {
      this.#outbox.length = 0;
    } finally {
      this.#writing = false;
    }
  }

  /** Starts a child process and resolves once its isolate is ready; rejects with an `IsolaneError` saying why not. */
  static async start(spec: HostSpec): Promise<ProcessHost> {
    const host = ProcessHost.prepare(spec.init.name, spec.limits);
    await host.boot(spec);
    return host;
  }

  /**
   * Spawns the child with `limits` (its permission flags and heap limit, fixed for its life), which starts importing
   * the isolate runtime; {@link launch} boots it later. `warm` has it load ONNX Runtime's addon meanwhile (CPU lanes; `"models"`: and open its C API environment).
   */
  static prepare(
    name: string,
    limits: FunctionLimits,
    { warm = false }: { warm?: boolean | "models" } = {},
  ): ProcessHost {
    // In the run folder (mode 0700): nobody else can connect before the child does.
    const path = socketPath();
    const listener = Deno.listen({ transport: "unix", path });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--no-prompt",
          `--config=${config}`,
          `--v8-flags=--max-old-space-size=${limits.memoryMb}`,
          ...permissionFlags(limits.permissions, path),
          entry,
          path,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      listener.close();
      Deno.removeSync(path);
      throw error;
    }
    const host = new ProcessHost(name, child, { listener, path }, {
      memoryMb: limits.memoryMb,
      cpuLimitMs: limits.cpuTimeMs,
    });
    if (warm) host.send({ type: "warm", models: warm === "models" });
    return host;
  }

  /** The isolate's messages, until the socket closes (the child ended: its exit reports why). */
  async #read(conn: Deno.UnixConn): Promise<void> {
    const reader = new FrameReader();
    const buffer = new Uint8Array(256 * 1024);
    try {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        reader.push(buffer.slice(0, n));
        for (let message = reader.next(); message !== undefined; message = reader.next()) {
          this.receive(message as IsolateMessage);
        }
      }
    } catch (error) {
      // The socket closed under the read (the child died, or the host ended it): the child's exit says why.
      if (hangUps.some((type) => error instanceof type)) return;
      // Bytes that are not frames: nothing the isolate says can be trusted now.
      this.terminate(new IsolaneError("isolate_crashed", `The isolate broke its channel: ${(error as Error).message}`));
    }
  }

  /**
   * What the child writes itself (Deno's and native libraries' messages, a function's own `Deno.stdout` writes):
   * logged, and stderr read for the heap limit's fatal error.
   */
  async #readOutput(stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr"): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      if (name === "stderr" && /out of memory|heap limit/i.test(text)) {
        this.#heapLimitSaid = true;
      }
      log("warn", `isolate ${name}`, { function: this.name, isolate: this.id, text: text.trimEnd().slice(0, 2000) });
    }
  }

  protected send(message: HostMessage): void {
    this.#outbox.push(encodeFrame(message));
    void this.#flush();
  }

  /** A run of plain jobs (every JSON or raw request) framed straight from the list, without a message object. */
  protected override sendJobs(jobs: Job[]): void {
    const frame = encodeRunFrame(jobs);
    if (!frame) return super.sendJobs(jobs);
    this.#outbox.push(frame);
    void this.#flush();
  }

  protected kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
    this.#hangUp();
  }

  #hangUp(): void {
    try {
      this.#conn?.close();
    } catch { /* closed already */ }
  }

  /** The child's resident set, from `/proc/<pid>/statm` (Linux); `undefined` where that cannot be read. */
  residentBytes(): number | undefined {
    try {
      const statm = Deno.readTextFileSync(`/proc/${this.pid}/statm`);
      return Number(statm.split(" ")[1]) * pageSize;
    } catch {
      return undefined;
    }
  }

  /** CPU time (user + system) of the child so far in milliseconds, from `/proc/<pid>/stat` (USER_HZ = 100). */
  cpuTimeMs(): number | undefined {
    try {
      const stat = Deno.readTextFileSync(`/proc/${this.pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      return undefined;
    }
  }

  /**
   * Ends the host when the request in progress has used more than its CPU
   * time since it started (or since the last job was answered): a handler
   * that burns CPU is stopped long before its wall-clock deadline.
   */
  checkCpuTime(): void {
    if (this.#cpuLimitMs <= 0 || this.inflight === 0) {
      this.#cpuStart = undefined;
      return;
    }
    const now = this.cpuTimeMs();
    if (now === undefined) return;
    if (!this.#cpuStart || this.#cpuStart.served !== this.served) {
      this.#cpuStart = { ms: now, served: this.served };
      return;
    }
    const used = now - this.#cpuStart.ms;
    if (used > this.#cpuLimitMs) {
      this.terminate(
        new IsolaneError(
          "timeout",
          `Function '${this.name}' used more than its CPU time of ${this.#cpuLimitMs} ms on one request (${used} ms)`,
        ),
      );
    }
  }

  /** Ends the host for exceeding its memory limit (called by the watchdog). */
  exceeded(residentMb: number): void {
    this.#outOfMemory = `exceeded its memory limit of ${this.#memoryMb} MB (resident ${residentMb} MB)`;
    this.terminate(new IsolaneError("isolate_crashed", `The isolate ${this.#outOfMemory}`));
  }
}
