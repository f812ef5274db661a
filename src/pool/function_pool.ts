/**
 * The pool of one function version: a bounded queue, a set of lanes each with
 * at most one isolate, and the rules that keep every request answered:
 * a request waits at most `timeoutMs` for an isolate and runs at most
 * `timeoutMs` in one; a timed-out isolate is terminated and respawned; a
 * crashed one is respawned with back-off and its requests get an error.
 * @module
 */
import type { Job, JobResult, LaneInfo, LanePlan, ModelInfo, WireTensor } from "../protocol.ts";
import type { FunctionOptions } from "../sdk.ts";
import { IsolaneError } from "../errors.ts";
import { log } from "../log.ts";
import { backoffDelay } from "./backoff.ts";
import { IsolateHandle } from "./isolate_handle.ts";
import { isolatePermissions } from "./permissions.ts";
import type { PoolObserver } from "./observer.ts";

/** Everything a pool needs to start its isolates. */
export interface PoolSpec {
  name: string;
  /** The function's folder (absolute). */
  dir: string;
  moduleUrl: string;
  options: FunctionOptions;
  /** Absolute model paths by name. */
  modelPaths: Record<string, string>;
  /** Absolute asset paths by name. */
  assetPaths: Record<string, string>;
  /** One isolate per lane. */
  lanes: LanePlan[];
  ortThreads: number;
  /** The kernels' PTX, read by isolates on CUDA lanes. */
  kernelsPtxPath: string;
  bootTimeoutMs?: number;
  /** Told of dispatches and restarts (metrics). */
  observer?: PoolObserver;
}

/** A lane and the isolate that currently serves it. */
interface Slot {
  index: number;
  lane: LanePlan;
  isolate: IsolateHandle | undefined;
  /** Crashes and failed starts since the last successful job. */
  failures: number;
  restarts: number;
  lastError: string | undefined;
  respawnTimer: ReturnType<typeof setTimeout> | undefined;
}

interface Waiting {
  job: Job;
  settle: (result: JobResult) => void;
  queueTimer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/** One isolate as the API shows it. */
export interface IsolateInfo {
  lane: number;
  id: number | null;
  status: "ready" | "busy" | "restarting";
  device: string;
  served: number;
  restarts: number;
  lastError?: string;
  /** Execution providers of its sessions, first preferred. */
  providers: string[];
  /** Its GPU lane as bound, if any. */
  gpu?: LaneInfo;
}

const unhealthyAfter = 3;
let nextJobId = 1;

/** Runs the requests of one function version on its isolates. */
export class FunctionPool {
  #slots: Slot[];
  #queue: Waiting[] = [];
  #closing = false;
  #closed = false;
  #drained: (() => void) | undefined;
  #models: ModelInfo[] = [];

  /** Creates a pool; call {@link start} before {@link invoke}. */
  constructor(readonly spec: PoolSpec) {
    this.#slots = spec.lanes.map((lane, index) => ({
      index,
      lane,
      isolate: undefined,
      failures: 0,
      restarts: 0,
      lastError: undefined,
      respawnTimer: undefined,
    }));
  }

  /** Starts every isolate; rejects with the first start failure, leaving nothing running. */
  async start(): Promise<void> {
    try {
      const isolates = await Promise.all(this.#slots.map((slot) => this.#spawn(slot)));
      this.#models = isolates[0]?.models ?? [];
      this.#slots.forEach((slot, i) => this.#attach(slot, isolates[i]));
    } catch (error) {
      this.#closeAll();
      throw error;
    }
  }

  /** Models as the first isolate loaded them. */
  get models(): ModelInfo[] {
    return this.#models;
  }

  /** Requests waiting for an isolate. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Whether every isolate is down and keeps failing. */
  get unhealthy(): boolean {
    return this.#slots.every((s) => !s.isolate && s.failures >= unhealthyAfter);
  }

  /** The isolates, for the API. */
  isolates(): IsolateInfo[] {
    return this.#slots.map((slot) => ({
      lane: slot.index,
      id: slot.isolate?.id ?? null,
      status: !slot.isolate ? "restarting" : slot.isolate.inflight > 0 ? "busy" : "ready",
      device: slot.lane.kind === "cuda" ? `cuda:${slot.lane.device}` : "cpu",
      served: slot.isolate?.served ?? 0,
      restarts: slot.restarts,
      ...(slot.lastError ? { lastError: slot.lastError } : {}),
      providers: slot.isolate?.models[0]?.providers ?? [],
      ...(slot.isolate?.laneInfo ? { gpu: slot.isolate.laneInfo } : {}),
    }));
  }

  /**
   * Runs one request body through the function. Resolves with the JSON
   * response body; rejects with an `IsolaneError` (queue full, timeout, ...).
   */
  async invoke(
    body: ArrayBuffer,
    options: { signal?: AbortSignal; requestId?: string } = {},
  ): Promise<ArrayBuffer> {
    return (await this.#submit({ body }, options)).body;
  }

  /**
   * Runs decoded input tensors (KServe v2) through a function with a tensor
   * signature. Resolves with its output tensors; rejects like {@link invoke}.
   * The tensors' buffers are transferred to the isolate.
   */
  async infer(
    tensors: WireTensor[],
    options: { signal?: AbortSignal; requestId?: string } = {},
  ): Promise<WireTensor[]> {
    return (await this.#submit({ body: new ArrayBuffer(0), tensors }, options)).tensors ?? [];
  }

  #submit(
    payload: Pick<Job, "body" | "tensors">,
    { signal, requestId }: { signal?: AbortSignal; requestId?: string },
  ): Promise<{ body: ArrayBuffer; tensors?: WireTensor[] }> {
    const { name, options } = this.spec;
    if (this.#closed) {
      return Promise.reject(
        new IsolaneError("function_unavailable", `Function '${name}' was unloaded; retry the request`),
      );
    }
    if (this.unhealthy) return Promise.reject(this.#unhealthyError());
    if (this.#queue.length >= options.queueDepth && !this.#idleSlot()) {
      return Promise.reject(
        new IsolaneError(
          "queue_full",
          `Function '${name}' has ${this.#queue.length} requests waiting, its limit; retry later`,
          undefined,
          // A queue of waiting requests drains in moments; a second is a fair first retry.
          { "retry-after": "1" },
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const waiting: Waiting = {
        job: { id: nextJobId++, ...payload, ...(requestId ? { requestId } : {}) },
        queueTimer: undefined,
        signal,
        onAbort: () => this.#dequeue(waiting, new IsolaneError("timeout", "The client went away")),
        settle: (result) => {
          clearTimeout(waiting.queueTimer);
          signal?.removeEventListener("abort", waiting.onAbort);
          if (result.ok) resolve(result);
          else reject(IsolaneError.from(result.error));
        },
      };
      waiting.queueTimer = setTimeout(
        () =>
          this.#dequeue(
            waiting,
            new IsolaneError("timeout", `Function '${name}' had no free isolate within ${options.timeoutMs} ms`),
          ),
        options.timeoutMs,
      );
      signal?.addEventListener("abort", waiting.onAbort, { once: true });
      this.#queue.push(waiting);
      this.#pump();
    });
  }

  /**
   * Stops taking new work, lets queued and running requests finish, then
   * terminates the isolates. Used when a new version replaces this one.
   */
  drain(): Promise<void> {
    this.#closing = true;
    const done = new Promise<void>((resolve) => (this.#drained = resolve));
    this.#pump();
    return done;
  }

  /** Terminates everything now; queued and running requests get 503. */
  close(): void {
    this.#closing = true;
    for (const waiting of this.#queue.splice(0)) {
      waiting.settle({
        id: waiting.job.id,
        ok: false,
        error: { code: "function_unavailable", message: `Function '${this.spec.name}' was unloaded` },
      });
    }
    this.#closeAll();
  }

  #closeAll(): void {
    this.#closed = true;
    for (const slot of this.#slots) {
      clearTimeout(slot.respawnTimer);
      slot.isolate?.close();
      slot.isolate = undefined;
    }
    this.#drained?.();
  }

  #unhealthyError(): IsolaneError {
    const last = this.#slots.find((s) => s.lastError)?.lastError ?? "unknown";
    return new IsolaneError(
      "function_unavailable",
      `Function '${this.spec.name}' is unhealthy: its isolates keep failing (last error: ${last})`,
    );
  }

  #dequeue(waiting: Waiting, error: IsolaneError): void {
    const i = this.#queue.indexOf(waiting);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    waiting.settle({ id: waiting.job.id, ok: false, error: error.toBody() });
    this.#pump();
  }

  /** The least busy live isolate with room for a job. */
  #idleSlot(): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of this.#slots) {
      const isolate = slot.isolate;
      if (!isolate || isolate.inflight > 0) continue;
      if (!best || isolate.served < best.isolate!.served) best = slot;
    }
    return best;
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const slot = this.#idleSlot();
      if (!slot) break;
      this.#execute(slot, this.#queue.shift()!);
    }
    if (
      this.#closing && !this.#closed && this.#queue.length === 0 &&
      this.#slots.every((s) => !s.isolate || s.isolate.inflight === 0)
    ) {
      this.#closeAll();
    }
  }

  #execute(slot: Slot, waiting: Waiting): void {
    clearTimeout(waiting.queueTimer);
    const isolate = slot.isolate!;
    const { job } = waiting;
    const { timeoutMs } = this.spec.options;
    const timer = setTimeout(() => {
      waiting.settle({
        id: job.id,
        ok: false,
        error: { code: "timeout", message: `Function '${this.spec.name}' did not finish within ${timeoutMs} ms` },
      });
      // A handler past its limit may be stuck in a synchronous loop: only termination is sure to stop it.
      isolate.terminate(new IsolaneError("timeout", `A request ran past ${timeoutMs} ms`));
    }, timeoutMs);
    this.spec.observer?.dispatched(this.spec.name, 1);
    const onClientGone = () => isolate.abort(job.id);
    waiting.signal?.addEventListener("abort", onClientGone, { once: true });
    isolate.run(job).then((result) => {
      clearTimeout(timer);
      waiting.signal?.removeEventListener("abort", onClientGone);
      if (result.ok) slot.failures = 0;
      waiting.settle(result);
      this.#pump();
    });
  }

  #attach(slot: Slot, isolate: IsolateHandle): void {
    slot.isolate = isolate;
    isolate.onExit((error) => {
      slot.isolate = undefined;
      slot.restarts++;
      slot.lastError = error.message;
      if (error.code !== "timeout") slot.failures++;
      this.spec.observer?.isolateStopped(this.spec.name, error.code);
      log("warn", "isolate stopped", {
        function: this.spec.name,
        isolate: isolate.id,
        code: error.code,
        reason: error.message,
      });
      this.#scheduleRespawn(slot);
    });
  }

  #scheduleRespawn(slot: Slot): void {
    if (this.#closed) return;
    if (this.unhealthy) {
      const error = this.#unhealthyError().toBody();
      for (const waiting of this.#queue.splice(0)) waiting.settle({ id: waiting.job.id, ok: false, error });
    }
    this.#pump();
    slot.respawnTimer = setTimeout(async () => {
      slot.respawnTimer = undefined;
      try {
        const isolate = await this.#spawn(slot);
        if (this.#closed) return isolate.close();
        this.#attach(slot, isolate);
        log("info", "isolate respawned", { function: this.spec.name, isolate: isolate.id, lane: slot.index });
      } catch (error) {
        slot.failures++;
        slot.lastError = error instanceof Error ? error.message : String(error);
        log("error", "isolate respawn failed", { function: this.spec.name, lane: slot.index, reason: slot.lastError });
        this.#scheduleRespawn(slot);
      }
      this.#pump();
    }, backoffDelay(slot.failures));
  }

  #spawn(slot: Slot): Promise<IsolateHandle> {
    const { spec } = this;
    return IsolateHandle.start({
      mode: "serve",
      name: spec.name,
      moduleUrl: spec.moduleUrl,
      modelPaths: spec.modelPaths,
      assetPaths: spec.assetPaths,
      kernelsPtxPath: slot.lane.kind === "cuda" ? spec.kernelsPtxPath : null,
      lane: slot.lane,
      ortThreads: spec.ortThreads,
      bootTimeoutMs: spec.bootTimeoutMs ?? 120_000,
      permissions: isolatePermissions({
        dir: spec.dir,
        modelPaths: [
          ...Object.values(spec.modelPaths),
          ...Object.values(spec.assetPaths),
          ...(slot.lane.kind === "cuda" ? [spec.kernelsPtxPath] : []),
        ],
        declared: spec.options.permissions,
        native: true,
      }),
    });
  }
}
