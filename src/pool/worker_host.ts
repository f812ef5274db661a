/**
 * The Worker host: an isolate in a Deno Worker of the runtime process, with
 * the function's permissions. The cheapest hop (buffers are transferred, not
 * copied); every Worker on a device shares its primary CUDA context. It does
 * not contain a heap runaway: in Deno a Worker that runs out of heap aborts
 * the whole process, which is why CPU lanes default to the process host.
 * @module
 */
import type { HostMessage, IsolateMessage, Job, LinkMessage } from "../protocol.ts";
import { HostBase, type HostSpec, type Isolation } from "./host.ts";
import type { FunctionLimits } from "./limits.ts";
import { mainDoorbell, RingReader, RingWriter } from "../op_ring.ts";
import { packable } from "../packed.ts";

/** Bytes of the ring on which an isolate tells which jobs it answered on links: thousands of batches' ids. */
const doneBytes = 64 * 1024;
/** Bytes of the ring of runs of jobs answered on links: hundreds of batches of 64. */
const jobsBytes = 1024 * 1024;

const entry = new URL("../isolate/worker_entry.ts", import.meta.url);
// Inspecting needs neither ONNX Runtime nor the serving runtime: a lighter entry.
const inspectEntry = new URL("../isolate/inspect_entry.ts", import.meta.url);

/** An isolate in a Deno Worker. */
export class WorkerHost extends HostBase {
  readonly isolation: Isolation = "worker";
  readonly pid = null;
  #worker: Worker;
  /** The isolate's ring of jobs answered on links (made with the first link), drained when the doorbell rings. */
  #done: RingReader | undefined;
  /** Where runs of jobs answered on links go to the isolate (made with the first link). */
  #jobs: RingWriter | undefined;
  #drainDone = (): void => void this.#done?.drain(this.#doneSink);
  #doneSink = { ids: (replied: number[]) => this.receive({ type: "results", results: [], replied }) };

  private constructor(name: string, worker: Worker) {
    super(name);
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<IsolateMessage>) => {
      const message = event.data;
      // What the ring holds was written before this message.
      this.#drainDone();
      this.receive(message);
      // A planned shutdown released everything; nothing is left to wait for.
      if (message.type === "released") {
        this.kill();
        this.ended("released its sessions and ended");
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      this.ended(`crashed: ${event.message}`);
    };
  }

  /** Starts a Worker and resolves once it is ready; rejects with an `IsolaneError` saying why it could not start. */
  static async start(spec: HostSpec): Promise<WorkerHost> {
    const host = WorkerHost.prepare(spec.init.name, spec.limits, { inspect: spec.init.mode === "inspect" });
    await host.boot(spec);
    return host;
  }

  /**
   * Creates the Worker with `limits.permissions` (fixed for its life), which starts importing the isolate runtime;
   * {@link launch} boots it later. `warm` has it load ONNX Runtime's addon meanwhile (CPU lanes; `"models"`: and open its C API environment); `inspect` makes a
   * Worker that can only inspect a module (`inspect_entry.ts`).
   */
  static prepare(
    name: string,
    limits: FunctionLimits,
    { warm = false, inspect = false }: { warm?: boolean | "models"; inspect?: boolean } = {},
  ): WorkerHost {
    const worker = new Worker(inspect ? inspectEntry : entry, {
      type: "module",
      name: `isolane:${name}`,
      deno: { permissions: limits.permissions },
    });
    const host = new WorkerHost(name, worker);
    if (warm) host.send({ type: "warm", models: warm === "models" });
    return host;
  }

  /** Jobs answered on links go in the ring when it has room (no message, and no wake while the isolate has one due). */
  protected override sendJobs(jobs: Job[]): void {
    if (this.#jobs && jobs.every(packable) && this.#jobs.jobs(jobs)) return;
    super.sendJobs(jobs);
  }

  protected send(message: HostMessage, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(message, transfer);
  }

  link(link: number, port: MessagePort, arena: SharedArrayBuffer): void {
    if (!this.alive) return port.close();
    let rings: LinkMessage["rings"] = undefined;
    if (!this.#done) {
      rings = {
        jobs: new SharedArrayBuffer(jobsBytes),
        done: new SharedArrayBuffer(doneBytes),
        isolateBell: new SharedArrayBuffer(4),
        mainBell: mainDoorbell().buffer,
      };
      this.#done = new RingReader(rings.done);
      this.#jobs = new RingWriter(rings.jobs, rings.isolateBell);
      mainDoorbell().add(this.#drainDone);
    }
    this.#worker.postMessage({ type: "link", link, port, arena, ...(rings ? { rings } : {}) } satisfies HostMessage, [
      port,
    ]);
  }

  unlink(link: number): void {
    if (this.alive) this.#worker.postMessage({ type: "unlink", link } satisfies HostMessage);
  }

  protected kill(): void {
    mainDoorbell().delete(this.#drainDone);
    this.#worker.terminate();
    this.ended("was terminated");
  }

  residentBytes(): undefined {
    return undefined;
  }
}
