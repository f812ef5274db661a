/**
 * Isolate hosts: where an isolate lives. The pool holds {@link IsolateHost}s
 * and does not care which kind it has:
 * - a Worker host (`worker_host.ts`): a Deno Worker in the runtime process,
 *   the cheapest hop; every Worker on a device shares its primary context;
 * - a process host (`process_host.ts`): a child Deno process with the
 *   function's permissions and its own heap limit, watched for resident
 *   memory, so a memory runaway ends only that process.
 *
 * Both speak the messages of `src/protocol.ts`; this file holds what they
 * share: the boot handshake, the jobs in flight, and every way a host ends.
 * @module
 */
import type {
  HostMessage,
  InitMessage,
  IsolateMessage,
  Job,
  JobResult,
  LaneInfo,
  LogMessage,
  Manifest,
  ModelInfo,
  PhaseMessage,
  SharedWeights,
} from "../protocol.ts";
import { clipLogText, transferablesOf } from "../protocol.ts";
import { packJobs } from "../packed.ts";
import { type ErrorBody, IsolaneError } from "../errors.ts";
import { isLogged, log } from "../log.ts";
import { admitFunctionLog } from "./log_limit.ts";
import type { FunctionLimits } from "./limits.ts";

/** What a start that ran out of time was doing, by the step the isolate said it began last (its message's end). */
const bootSteps: Record<PhaseMessage["phase"] | "import" | "inspect", string> = {
  inspect: ": reading its module (top-level code that never finishes?)",
  import: ": importing its module (top-level code that never finishes?)",
  models: ": loading its models",
  setup: ": its setup() had not finished (a promise it returns that never settles?)",
};
/** Where an isolate lives. */
export type Isolation = "worker" | "process";

/** What a host needs to start an isolate: its init message and its limits, in one object. */
export interface HostSpec {
  init: Omit<InitMessage, "type">;
  limits: FunctionLimits;
  /** How long the isolate may take to load; it is ended after that. */
  bootTimeoutMs: number;
}

/** Gets one streamed item (JSON) of a job. */
export type ItemListener = (id: number, body: ArrayBuffer) => void;

/** Gets the result of the job at `index` of a run ({@link IsolateHost.runEach}). */
export type ResultListener = (result: JobResult, index: number) => void;

/**
 * A run in flight: who gets its items and results, until its last result. Then both listeners are dropped, so that a
 * `PendingJob` still referenced from an old table of {@link HostBase}'s map holds no request: V8 re-allocates a map's
 * table as entries come and go, and its young generation collector keeps what old tables point to until the next full
 * collection (a listener kept that way kept its whole batch of requests; docs/cpu-mlp.md, "The main thread's garbage").
 */
interface PendingRun {
  onResult: ResultListener | undefined;
  onItem: ItemListener | undefined;
  left: number;
}

/** A job posted and not yet answered: its run, and its index in it. */
interface PendingJob {
  run: PendingRun;
  index: number;
}

/** Why a host stopped, for whoever held work on it. */
export type ExitListener = (error: IsolaneError) => void;

/** A running isolate, in whichever host. */
export interface IsolateHost {
  /** A process-unique id, shown in the API and logs. */
  readonly id: number;
  readonly isolation: Isolation;
  /** The child process id (process hosts), else `null`. */
  readonly pid: number | null;
  /** Jobs posted and not yet answered. */
  readonly inflight: number;
  /** Jobs answered. */
  readonly served: number;
  /** Models as the isolate loaded them (serve mode). */
  readonly models: ModelInfo[];
  /** The GPU lane as the isolate bound it (`null` on the CPU). */
  readonly laneInfo: LaneInfo | null;
  /** Blocks of shared weights the isolate uploaded for its device's lanes (a `publish` lane), by model. */
  readonly published: Record<string, SharedWeights>;
  /** The manifest (inspect mode). */
  readonly manifest: Manifest | undefined;
  readonly alive: boolean;
  /**
   * Posts jobs in one message; each promise settles with its job's result, or
   * an error result if the host ends first. `onItem` gets the items of jobs
   * whose handlers stream, before their results.
   */
  run(jobs: Job[], onItem?: ItemListener): Promise<JobResult>[];
  /**
   * {@link run} without a promise per job: `onResult` is called once per job with its result and its index in
   * `jobs`, when the isolate answers it (never before `runEach` returns), or with an error result if the host ends
   * first. It must not throw. The pool's path: per request on the main thread.
   */
  runEach(jobs: Job[], onResult: ResultListener, onItem?: ItemListener): void;
  /** Aborts a job's `ctx.signal` inside the isolate. */
  abort(id: number): void;
  /** Whether a job is still held by this host (not answered yet). */
  holds(id: number): boolean;
  /** Ends the host now; jobs it holds are answered with `error`, and the exit listener is told. */
  terminate(error: IsolaneError): void;
  /**
   * Planned unload: the isolate releases its sessions and lane and ends; it is
   * killed if it has not within `graceMs`. The exit listener is not told.
   * Its jobs in flight are answered `function_unavailable` with `reason`
   * (default: the function was unloaded). Resolves once it has ended.
   */
  close(graceMs?: number, reason?: string): Promise<void>;
  /** Calls `listener` once when the host ends for any reason other than {@link close}. */
  onExit(listener: ExitListener): void;
  /** Resident memory of the host in bytes, where it can be measured on its own (process hosts). */
  residentBytes(): number | undefined;
  /**
   * Worker hosts only: gives the isolate a direct link to an HTTP thread (see `LinkMessage` in protocol.ts), so that
   * jobs naming it take their inputs from the thread's arena and answer the thread on `port`.
   */
  link?(link: number, port: MessagePort, arena: SharedArrayBuffer): void;
  /** Worker hosts only: drops a link whose HTTP thread ended. */
  unlink?(link: number): void;
}

let nextHostId = 1;

/** The result of every job answered on its HTTP thread's link (one object: nothing reads its id). */
const replied: JobResult = { id: 0, ok: true, body: new ArrayBuffer(0), replied: true };

/**
 * What both hosts share. A subclass provides the transport ({@link send},
 * {@link kill}) and feeds {@link receive} and {@link ended}.
 */
export abstract class HostBase implements IsolateHost {
  readonly id = nextHostId++;
  abstract readonly isolation: Isolation;
  abstract readonly pid: number | null;
  inflight = 0;
  served = 0;
  models: ModelInfo[] = [];
  laneInfo: LaneInfo | null = null;
  published: Record<string, SharedWeights> = {};
  manifest: Manifest | undefined;
  #alive = true;
  #booted = false;
  /** The step of its start the isolate said it began last (`PhaseMessage`); none yet: importing its module. */
  #phase: PhaseMessage["phase"] | undefined;
  #pending = new Map<number, PendingJob>();
  #onExit: ExitListener | undefined;
  #boot: { resolve: () => void; reject: (e: IsolaneError) => void; timer: ReturnType<typeof setTimeout> } | undefined;
  #closed: (() => void) | undefined;
  #ended = false;

  /** The function's name; a spare takes its function's at {@link launch}. */
  protected constructor(public name: string) {}

  /** Sends one message to the isolate; `transfer` lists buffers given up. */
  protected abstract send(message: HostMessage, transfer?: ArrayBuffer[]): void;
  /** Ends the transport at once (terminate the Worker, kill the process). */
  protected abstract kill(): void;

  abstract residentBytes(): number | undefined;

  get alive(): boolean {
    return this.#alive;
  }

  /**
   * Boots a host made ahead of its function (a spare, `spare.ts`) with `spec`; its transport was created with
   * `spec.limits`. Resolves once the isolate is ready.
   * @throws {IsolaneError} `function_unavailable` when the isolate ended before, or could not load.
   */
  async launch(spec: HostSpec): Promise<this> {
    if (!this.#alive) {
      throw new IsolaneError("function_unavailable", `Cannot load function '${this.name}': the spare isolate ended`);
    }
    this.name = spec.init.name;
    await this.boot(spec);
    return this;
  }

  /** Ends a host that never booted (an unused spare) at once. */
  discard(): void {
    this.terminate(new IsolaneError("function_unavailable", "The spare isolate was discarded"));
  }

  /** Sends the init message and resolves once the isolate is ready (or reported its manifest). */
  protected boot(spec: HostSpec): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.#failBoot(
            new IsolaneError(
              "function_unavailable",
              `Cannot load function '${this.name}': the isolate did not start within ${spec.bootTimeoutMs} ms` +
                bootSteps[this.#phase ?? (spec.init.mode === "serve" ? "import" : "inspect")],
            ),
          ),
        spec.bootTimeoutMs,
      );
      this.#boot = { resolve, reject, timer };
      this.#phase = undefined;
      this.send({ type: "init", ...spec.init });
    });
  }

  #failBoot(error: IsolaneError): void {
    const boot = this.#boot;
    if (!boot) return;
    this.#boot = undefined;
    clearTimeout(boot.timer);
    this.#alive = false;
    this.kill();
    boot.reject(error);
  }

  #log(message: LogMessage): void {
    // A line below the log level is not written, so it takes nothing from the function's log limit.
    if (!isLogged(message.level) || !admitFunctionLog(this.name, message.level)) return;
    log(message.level, "function log", {
      function: this.name,
      isolate: this.id,
      ...(message.requestId ? { request: message.requestId } : {}),
      // Clipped by the isolate too; a Worker's code could post a message of its own.
      text: clipLogText(String(message.text)),
    });
  }

  /** A message from the isolate. */
  protected receive(message: IsolateMessage): void {
    switch (message.type) {
      case "log":
        return this.#log(message);
      case "run-terminated":
        return log("info", "run terminated", {
          function: this.name,
          isolate: this.id,
          model: message.model,
          jobs: message.jobs,
          ...(message.requests.length > 0 ? { requests: message.requests } : {}),
          ms: message.ms,
        });
      case "failed":
        return this.#failBoot(IsolaneError.from(message.error));
      case "ready":
      case "manifest": {
        const boot = this.#boot;
        if (!boot) return;
        this.#boot = undefined;
        clearTimeout(boot.timer);
        if (message.type === "ready") {
          this.models = message.models;
          this.laneInfo = message.lane;
          this.published = message.weights ?? {};
        } else this.manifest = message.manifest;
        this.#booted = true;
        return boot.resolve();
      }
      case "exiting": {
        const reason = `The isolate stopped: ${message.reason}`;
        if (!this.#booted) {
          return this.#failBoot(
            new IsolaneError("function_unavailable", `Cannot load function '${this.name}': ${message.reason}`),
          );
        }
        return this.terminate(new IsolaneError("isolate_crashed", reason));
      }
      case "placement": {
        const { model, placement, shapes } = message;
        this.models = this.models.map((m) =>
          m.name !== model ? m : {
            ...m,
            ...(placement ? { providers: Object.keys(placement), placement } : {}),
            ...(shapes ? { shapes } : {}),
          }
        );
        return;
      }
      case "phase":
        this.#phase = message.phase;
        return;
      case "released":
        return;
      case "item":
        return this.#pending.get(message.id)?.run.onItem?.(message.id, message.body);
      case "results":
        for (const result of message.results) this.#settle(result.id, result);
        if (message.replied) { for (const id of message.replied) this.#settle(id, replied); }
    }
  }

  #settle(id: number, result: JobResult): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    this.inflight--;
    this.served++;
    resultOf(pending, result);
  }

  /**
   * The transport ended (Worker error, process exit). `reason` says why; an
   * end that follows {@link close} or {@link terminate} is expected and quiet.
   */
  protected ended(reason: string, code: "isolate_crashed" | "function_unavailable" = "isolate_crashed"): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#closed?.();
    if (this.#boot) {
      return this.#failBoot(
        new IsolaneError("function_unavailable", `Cannot load function '${this.name}': the isolate ${reason}`),
      );
    }
    if (this.#alive) this.terminate(new IsolaneError(code, `The isolate ${reason}`));
  }

  onExit(listener: ExitListener): void {
    this.#onExit = listener;
  }

  run(jobs: Job[], onItem?: ItemListener): Promise<JobResult>[] {
    const resolvers = jobs.map(() => Promise.withResolvers<JobResult>());
    this.runEach(jobs, (result, index) => resolvers[index].resolve(result), onItem);
    return resolvers.map((r) => r.promise);
  }

  runEach(jobs: Job[], onResult: ResultListener, onItem?: ItemListener): void {
    if (!this.#alive) {
      // Never before `runEach` returns: the caller is still dispatching.
      queueMicrotask(() =>
        jobs.forEach((job, index) =>
          onResult(
            { id: job.id, ok: false, error: { code: "isolate_crashed", message: "The isolate is not running" } },
            index,
          )
        )
      );
      return;
    }
    const run: PendingRun = { onResult, onItem, left: jobs.length };
    for (let index = 0; index < jobs.length; index++) this.#pending.set(jobs[index].id, { run, index });
    this.inflight += jobs.length;
    this.sendJobs(jobs);
  }

  /** Sends a run of jobs to the isolate: a `run` message (a Worker host may write them in a ring instead). */
  protected sendJobs(jobs: Job[]): void {
    this.send({ type: "run", ...packJobs(jobs) }, jobs.flatMap(transferablesOf));
  }

  abort(id: number): void {
    if (this.#alive && this.#pending.has(id)) this.send({ type: "abort", id });
  }

  holds(id: number): boolean {
    return this.#pending.has(id);
  }

  terminate(error: IsolaneError): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.kill();
    this.#failPending(error.toBody());
    this.#onExit?.(error);
  }

  /** Ends the isolate (at most `graceMs` for it to release its sessions); jobs in flight get 503 with `reason`. */
  close(graceMs = 2000, reason = "The function was unloaded"): Promise<void> {
    if (!this.#alive) return Promise.resolve();
    this.#alive = false;
    this.#failPending({ code: "function_unavailable", message: reason });
    if (this.#ended) return Promise.resolve();
    const done = new Promise<void>((resolve) => (this.#closed = resolve));
    const timer = setTimeout(() => this.kill(), graceMs);
    this.send({ type: "shutdown" });
    return done.finally(() => clearTimeout(timer));
  }

  #failPending(error: ErrorBody): void {
    // Emptied first: a listener may run more jobs (on another host) before this returns.
    const pending = [...this.#pending];
    this.inflight = 0;
    this.#pending.clear();
    for (const [id, job] of pending) resultOf(job, { id, ok: false, error });
  }
}

/** Hands `result` to the listener of `job`'s run; after the run's last result, the run lets go of its listeners. */
function resultOf({ run, index }: PendingJob, result: JobResult): void {
  const onResult = run.onResult!;
  if (--run.left === 0) run.onResult = run.onItem = undefined;
  onResult(result, index);
}
