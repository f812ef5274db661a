/**
 * The process host: an isolate on the main thread of a child Deno process
 * started with the function's permissions and a heap limit
 * (`--v8-flags=--max-old-space-size`), speaking the messages of
 * `src/protocol.ts` framed by `src/wire.ts` over its stdin and stdout, with
 * buffers as raw bytes. A heap runaway aborts only the child; a runaway of
 * `ArrayBuffer`s, which the heap limit does not bound, is caught by the
 * memory watchdog. The child exits when its stdin closes, so it never
 * outlives the runtime, even one killed with SIGKILL.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { HostMessage, IsolateMessage } from "../protocol.ts";
import { encodeFrame, FrameReader } from "../wire.ts";
import { log } from "../log.ts";
import { HostBase, type HostSpec, type Isolation } from "./host.ts";
import { watchMemory } from "./memory_watchdog.ts";
import { IsolaneError } from "../errors.ts";
import type { FunctionLimits } from "./limits.ts";

const entry = fileURLToPath(new URL("../isolate/process_entry.ts", import.meta.url));
const config = fileURLToPath(new URL("../../deno.json", import.meta.url));
const pageSize = 4096;

/** The `deno run` flags that grant what `permissions` grants, and nothing else. */
export function permissionFlags(permissions: Deno.PermissionOptionsObject): string[] {
  const flags: string[] = [];
  const add = (name: string, value: unknown) => {
    if (value === true || value === "inherit") flags.push(`--allow-${name}`);
    else if (Array.isArray(value) && value.length > 0) flags.push(`--allow-${name}=${value.join(",")}`);
  };
  add("read", permissions.read);
  add("write", permissions.write);
  add("net", permissions.net);
  add("env", permissions.env);
  add("ffi", permissions.ffi);
  add("run", permissions.run);
  add("sys", permissions.sys);
  // Deno 2 allows imports from a list of hosts by default; an isolate may import nothing remote.
  if (!permissions.import) flags.push("--deny-import");
  return flags;
}

/** An isolate in a child process. */
export class ProcessHost extends HostBase {
  readonly isolation: Isolation = "process";
  readonly pid: number;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #memoryMb: number;
  #outOfMemory: string | undefined;
  #unwatch: () => void;
  #cpuLimitMs: number;
  /** CPU time of the process (ms) when the work in progress started, and how many jobs were answered then. */
  #cpuStart: { ms: number; served: number } | undefined;

  private constructor(name: string, child: Deno.ChildProcess, memoryMb: number, cpuLimitMs: number) {
    super(name);
    this.#cpuLimitMs = cpuLimitMs;
    this.#child = child;
    this.pid = child.pid;
    this.#memoryMb = memoryMb;
    this.#stdin = child.stdin.getWriter();
    this.#unwatch = watchMemory(this, memoryMb);
    const failed = (where: string) => (error: unknown) =>
      log("error", "process host failed", { function: this.name, isolate: this.id, where, reason: String(error) });
    this.#read(child.stdout).catch(failed("stdout"));
    this.#readErrors(child.stderr).catch(failed("stderr"));
    child.status.then((status) => {
      this.#unwatch();
      this.ended(this.#outOfMemory ?? `exited (code ${status.code}${status.signal ? `, ${status.signal}` : ""})`);
    }).catch(failed("exit"));
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
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        `--config=${config}`,
        `--v8-flags=--max-old-space-size=${limits.memoryMb}`,
        ...permissionFlags(limits.permissions),
        entry,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const host = new ProcessHost(name, child, limits.memoryMb, limits.cpuTimeMs);
    if (warm) host.send({ type: "warm", models: warm === "models" });
    return host;
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    const reader = new FrameReader();
    // A plain reader loop: the stream's async iterator cost a few more promises a chunk.
    const chunks = stream.getReader();
    try {
      for (let chunk = await chunks.read(); !chunk.done; chunk = await chunks.read()) {
        reader.push(chunk.value);
        for (let message = reader.next(); message !== undefined; message = reader.next()) {
          this.receive(message as IsolateMessage);
        }
      }
    } catch (error) {
      // Bytes that are not frames: the function wrote to stdout itself. Nothing it says can be trusted now.
      this.terminate(new IsolaneError("isolate_crashed", `The isolate broke its channel: ${(error as Error).message}`));
    }
  }

  /** Deno's and native libraries' own messages: logged, and read for the heap limit's fatal error. */
  async #readErrors(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      if (/out of memory|heap limit/i.test(text)) {
        this.#outOfMemory = `exceeded its memory limit of ${this.#memoryMb} MB (heap)`;
      }
      log("warn", "isolate stderr", { function: this.name, isolate: this.id, text: text.trimEnd().slice(0, 2000) });
    }
  }

  protected send(message: HostMessage): void {
    // The writer queues writes in order; a failed one means the child is gone, which its exit reports.
    this.#stdin.write(encodeFrame(message)).catch(() => {});
  }

  protected kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
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
