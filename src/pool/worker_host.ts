/**
 * The Worker host: an isolate in a Deno Worker of the runtime process, with
 * the function's permissions. The cheapest hop (buffers are transferred, not
 * copied); every Worker on a device shares its primary CUDA context. It does
 * not contain a heap runaway: in Deno a Worker that runs out of heap aborts
 * the whole process, which is why CPU lanes default to the process host.
 * @module
 */
import type { HostMessage, IsolateMessage } from "../protocol.ts";
import { HostBase, type HostSpec, type Isolation } from "./host.ts";

const entry = new URL("../isolate/worker_entry.ts", import.meta.url);

/** An isolate in a Deno Worker. */
export class WorkerHost extends HostBase {
  readonly isolation: Isolation = "worker";
  readonly pid = null;
  #worker: Worker;

  private constructor(name: string, worker: Worker) {
    super(name);
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<IsolateMessage>) => {
      const message = event.data;
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
    const worker = new Worker(entry, {
      type: "module",
      name: `isolane:${spec.init.name}`,
      deno: { permissions: spec.limits.permissions },
    });
    const host = new WorkerHost(spec.init.name, worker);
    await host.boot(spec);
    return host;
  }

  protected send(message: HostMessage, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(message, transfer);
  }

  link(link: number, port: MessagePort, arena: SharedArrayBuffer): void {
    if (this.alive) this.#worker.postMessage({ type: "link", link, port, arena } satisfies HostMessage, [port]);
    else port.close();
  }

  unlink(link: number): void {
    if (this.alive) this.#worker.postMessage({ type: "unlink", link } satisfies HostMessage);
  }

  protected kill(): void {
    this.#worker.terminate();
    this.ended("was terminated");
  }

  residentBytes(): undefined {
    return undefined;
  }
}
