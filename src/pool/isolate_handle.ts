/**
 * The host's handle on one isolate: a Deno Worker with explicit permissions,
 * started with an init message and fed jobs. Every way a Worker can end (boot
 * failure, crash, termination) settles every promise it holds.
 * @module
 */
import type {
  InitMessage,
  IsolateMessage,
  Job,
  JobResult,
  LaneInfo,
  LogMessage,
  Manifest,
  ModelInfo,
} from "../protocol.ts";
import { transferablesOf } from "../protocol.ts";
import { type ErrorBody, IsolaneError } from "../errors.ts";
import { log } from "../log.ts";

const isolateEntry = new URL("../isolate/main.ts", import.meta.url);
let nextIsolateId = 1;

/** Options of {@link IsolateHandle.start}: the init message, the Worker's permissions and a boot limit. */
export interface StartOptions extends Omit<InitMessage, "type"> {
  permissions: Deno.PermissionOptionsObject;
  /** How long the isolate may take to load; it is terminated after that. */
  bootTimeoutMs: number;
}

/** Why an isolate stopped, for whoever held work on it. */
export type ExitListener = (error: IsolaneError) => void;

/** A running isolate. */
export class IsolateHandle {
  /** A process-unique id, shown in the API and logs. */
  readonly id = nextIsolateId++;
  /** Jobs posted and not yet answered. */
  inflight = 0;
  /** Jobs answered. */
  served = 0;
  /** Models as the isolate loaded them (serve mode). */
  models: ModelInfo[] = [];
  /** The GPU lane as the isolate bound it (`null` on the CPU). */
  laneInfo: LaneInfo | null = null;
  /** The manifest (inspect mode). */
  manifest: Manifest | undefined;
  #worker: Worker;
  #alive = true;
  #pending = new Map<number, (result: JobResult) => void>();
  #onExit: ExitListener | undefined;

  private constructor(worker: Worker, readonly name: string) {
    this.#worker = worker;
  }

  /** A line the function wrote with `console`, as a structured log line of the runtime. */
  #log(message: LogMessage): void {
    log(message.level, "function log", {
      function: this.name,
      isolate: this.id,
      ...(message.requestId ? { request: message.requestId } : {}),
      text: message.text,
    });
  }

  /** Whether the Worker is still running. */
  get alive(): boolean {
    return this.#alive;
  }

  /**
   * Starts a Worker and resolves once it is ready (or has reported its manifest).
   * Rejects with an `IsolaneError` saying why it could not start.
   */
  static start(options: StartOptions): Promise<IsolateHandle> {
    const { permissions, bootTimeoutMs, ...init } = options;
    const worker = new Worker(isolateEntry, {
      type: "module",
      name: `isolane:${init.name}`,
      deno: { permissions },
    });
    const handle = new IsolateHandle(worker, init.name);
    return new Promise<IsolateHandle>((resolve, reject) => {
      const failBoot = (error: IsolaneError) => {
        clearTimeout(timer);
        handle.#kill();
        reject(error);
      };
      const timer = setTimeout(
        () =>
          failBoot(
            new IsolaneError(
              "function_unavailable",
              `Cannot load function '${init.name}': the isolate did not start within ${bootTimeoutMs} ms`,
            ),
          ),
        bootTimeoutMs,
      );
      worker.onerror = (event) => {
        event.preventDefault();
        const error = new IsolaneError(
          "function_unavailable",
          `Cannot load function '${init.name}': the isolate crashed while starting: ${event.message}`,
        );
        failBoot(error);
      };
      worker.onmessage = (event: MessageEvent<IsolateMessage>) => {
        const message = event.data;
        if (message.type === "log") return handle.#log(message);
        if (message.type === "failed") return failBoot(IsolaneError.from(message.error));
        if (message.type === "exiting") {
          return failBoot(
            new IsolaneError("function_unavailable", `Cannot load function '${init.name}': ${message.reason}`),
          );
        }
        if (message.type !== "ready" && message.type !== "manifest") return;
        clearTimeout(timer);
        if (message.type === "ready") {
          handle.models = message.models;
          handle.laneInfo = message.lane;
        } else handle.manifest = message.manifest;
        handle.#listen();
        resolve(handle);
      };
      worker.postMessage({ type: "init", ...init } satisfies InitMessage);
    });
  }

  #listen(): void {
    this.#worker.onmessage = (event: MessageEvent<IsolateMessage>) => {
      if (event.data.type === "log") return this.#log(event.data);
      if (event.data.type === "exiting") {
        return this.terminate(new IsolaneError("isolate_crashed", `The isolate stopped: ${event.data.reason}`));
      }
      if (event.data.type !== "results") return;
      for (const result of event.data.results) {
        const settle = this.#pending.get(result.id);
        if (!settle) continue;
        this.#pending.delete(result.id);
        this.inflight--;
        this.served++;
        settle(result);
      }
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.terminate(new IsolaneError("isolate_crashed", `The isolate crashed: ${event.message}`));
    };
  }

  /** Calls `listener` once when this isolate stops for any reason other than {@link close}. */
  onExit(listener: ExitListener): void {
    this.#onExit = listener;
  }

  /** Posts a job; the promise settles with its result, or an error result if the isolate stops first. */
  run(job: Job): Promise<JobResult> {
    if (!this.#alive) {
      return Promise.resolve({
        id: job.id,
        ok: false,
        error: { code: "isolate_crashed", message: "The isolate is not running" },
      });
    }
    this.inflight++;
    return new Promise((resolve) => {
      this.#pending.set(job.id, resolve);
      this.#worker.postMessage({ type: "run", jobs: [job] }, transferablesOf(job));
    });
  }

  /** Aborts a job's signal inside the isolate. */
  abort(id: number): void {
    if (this.#alive) this.#worker.postMessage({ type: "abort", id });
  }

  /** Stops the Worker now; jobs it holds are answered with `error`, and the exit listener is told. */
  terminate(error: IsolaneError): void {
    if (!this.#alive) return;
    this.#kill();
    this.#failPending(error.toBody());
    this.#onExit?.(error);
  }

  /**
   * Stops the Worker without telling the exit listener (planned unload): it is
   * asked to release its lane and end, and terminated if it has not within `graceMs`.
   */
  close(graceMs = 2000): void {
    if (!this.#alive) return;
    this.#alive = false;
    const worker = this.#worker;
    worker.onmessage = null;
    worker.postMessage({ type: "shutdown" });
    setTimeout(() => worker.terminate(), graceMs);
    this.#failPending({ code: "function_unavailable", message: "The function was unloaded" });
  }

  #kill(): void {
    this.#alive = false;
    this.#worker.terminate();
  }

  #failPending(error: ErrorBody): void {
    for (const [id, settle] of this.#pending) settle({ id, ok: false, error });
    this.inflight = 0;
    this.#pending.clear();
  }
}
