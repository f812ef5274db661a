/**
 * The pool of one function version: admission, a bounded queue, the dynamic
 * batcher and dispatch to the supervisor's isolates, with one deadline per
 * request. Every request is answered exactly once:
 * - it waits and runs within `timeoutMs` in all, or gets 504; past its
 *   deadline its `ctx.signal` is aborted, and its isolate is ended only if it
 *   still holds the request `abortGraceMs` later (a stuck handler);
 * - it is refused with 429 at once when the queue is full or the expected
 *   wait would pass its deadline (`Retry-After` gives that wait), and a queued
 *   one as soon as a finished batch shows that it cannot finish in time;
 * - a crashed isolate's requests get 500 and it is respawned with back-off.
 * @module
 */
import {
  answerBytes,
  type Job,
  type JobResult,
  type LaneInfo,
  type ModelInfo,
  noBody,
  type SharedTensor,
  type WireTensor,
} from "../protocol.ts";
import { setImmediate } from "node:timers";
import { IsolaneError } from "../errors.ts";
import { decideBatch } from "./batcher.ts";
import { isolationFor } from "./limits.ts";
import { flushFunctionLogDrops } from "./log_limit.ts";
import type { IsolateHost, Isolation } from "./host.ts";
import { type PoolSpec, type Slot, Supervisor } from "./supervisor.ts";

export type { PoolSpec } from "./supervisor.ts";

/** One isolate as the API shows it. */
export interface IsolateInfo {
  lane: number;
  id: number | null;
  status: "ready" | "busy" | "restarting";
  device: string;
  isolation: Isolation;
  /** The child process id (process hosts). */
  pid?: number;
  /** Resident memory of the host in MiB (process hosts). */
  residentMb?: number;
  served: number;
  restarts: number;
  lastError?: string;
  /** Execution providers of its sessions, first preferred. */
  providers: string[];
  /** Its GPU lane as bound, if any. */
  gpu?: LaneInfo;
}

/** Options of {@link FunctionPool.invoke}. */
export interface InvokeOptions {
  /** Aborts when the client goes away. */
  signal?: AbortSignal;
  /**
   * The same without an `AbortSignal`: called once with a function that cancels the request (as a client that went
   * away); calling it after the request settled does nothing.
   */
  onCancel?: (cancel: () => void) => void;
  requestId?: string;
  /** Rows (first dimension) of the request, where the route knows them; 1 otherwise. */
  rows?: number;
  /** The media type of a raw (not JSON) body, with its parameters. */
  contentType?: string;
  /** Gets each item (JSON) of a handler that streams, before the request settles. */
  onItem?: (body: ArrayBuffer) => void;
}

/**
 * One request whose input tensors an HTTP thread left in its arena: the main thread carries neither the tensors nor
 * the answer when it runs on a Worker host. The thread's own record of it (its ring's `infer`) serves as is.
 */
export interface SharedRequest {
  /** The thread's id of the request. */
  id: number;
  /** Where its input tensors lie in the arena. */
  shared: SharedTensor[];
  requestId: string;
}

/**
 * Where shared requests come from (one per HTTP thread): its arena, its links to isolates, and whom to tell each
 * request's answer. One object per thread rather than a closure and an options object per request.
 */
export interface SharedSource<R extends SharedRequest = SharedRequest> {
  /** The thread's arena (a `SharedArrayBuffer`). */
  arena: SharedArrayBuffer;
  /** The link from the thread to `host` (made on first use), or `undefined` where there is none (process hosts). */
  linkFor(host: IsolateHost): number | undefined;
  /** Called once per request: with the error, or with the answer. Must not throw. */
  answered(request: R, error: IsolaneError | undefined, answer: SharedAnswer | undefined): void;
}

interface Request {
  job: Job;
  /** Set with `source` for a shared request (`inferShared`), which is answered through its source, not `settle`. */
  shared: SharedRequest | undefined;
  source: SharedSource | undefined;
  rows: number;
  arrived: number;
  state: "queued" | "running" | "done";
  slot: Slot | undefined;
  /** `performance.now()` past which it is answered 504. */
  deadlineAt: number;
  /** Taken before any batch had finished: no service time checked its wait (only such are shed, `#shedLate`). */
  unchecked: boolean;
  signal: AbortSignal | undefined;
  onAbort: () => void;
  /** Called once: with the error, or with the output (see {@link FunctionPool.#answer}). */
  settle: Settle | undefined;
  onItem: ((body: ArrayBuffer) => void) | undefined;
  /** The requests dispatched with it (itself included), whose run it shares. */
  batch: readonly Request[] | undefined;
  /** Its neighbours in the pool's list of requests not yet answered (arrival order); unset once answered. */
  older: Request | undefined;
  newer: Request | undefined;
}

/**
 * How {@link FunctionPool.inferShared} answers: `replied` when the isolate answered the HTTP thread itself (Worker
 * hosts), else the output `tensors` (process hosts; missing means none).
 */
export interface SharedAnswer {
  replied?: true;
  tensors?: WireTensor[];
}

/** What a request is answered with: a body (JSON), or tensors for a tensor request. */
type Output = { body: ArrayBuffer; tensors?: WireTensor[]; streamed?: true; replied?: true };

/** How a request is answered: one callback for both outcomes (a closure less per request than a resolve/reject pair). */
type Settle = (error: IsolaneError | undefined, output: Output | undefined) => void;

let nextJobId = 1;
/** How many recent batches' service times {@link FunctionPool.#shedLate} takes the fastest of. */
const recentBatches = 8;
/** The options of a shared request: none (its request id comes with it). */
const noOptions: InvokeOptions = Object.freeze({});
/** Pools that queued requests during {@link FunctionPool.arrivals}, pumped once it ends. */
let held: Set<FunctionPool> | undefined;
/** Pools of batching functions that queued requests in this turn of the event loop, pumped once it ends. */
const arriving: FunctionPool[] = [];

/** Runs the requests of one function version on its isolates. */
export class FunctionPool {
  #supervisor: Supervisor;
  #queue: Request[] = [];
  #closing = false;
  #drained: (() => void) | undefined;
  #batchTimer: ReturnType<typeof setTimeout> | undefined;
  /** Moving average of one batch's service time in ms, for the expected wait: batches that answered, not failed ones. */
  #serviceMs = 0;
  /** Service times in ms of the last batches (at most {@link recentBatches}), for {@link FunctionPool.#shedLate}. */
  readonly #recentMs: number[] = [];
  /**
   * When each batch now running started (`performance.now()`), for {@link FunctionPool.#longestRunningMs}, by the id
   * of its first job: keyed by the batch itself, the map's old tables (see {@link FunctionPool.#oldest}) kept its
   * requests alive through young collections.
   */
  readonly #runningSince = new Map<number, number>();
  #batchSizes: number[] = [];
  /**
   * Requests not yet answered, oldest first, as a list linked through the requests themselves. Every request of a
   * pool has the same `timeoutMs`, so this is also deadline order, and one timer (for the oldest) serves them all.
   * Not a `Set`: a long-lived `Set` whose entries come and go re-allocates its table again and again, and V8's young
   * generation collector kept every request its old tables had held (with its body, promises and response) until the
   * next full collection: at c=32 a quarter of the young generation survived each scavenge, which took 10–180 ms
   * (docs/cpu-mlp.md, "The main thread's garbage").
   */
  #oldest: Request | undefined;
  #newest: Request | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  /** Rows of the requests at the head of the queue, for the batcher (reused). */
  #rows: number[] = [];
  /** When each slot last became idle, as a count of batches finished: the warmest idle isolate goes first. */
  #idleSince = new WeakMap<Slot, number>();
  #finishedBatches = 0;
  #sharedAnswers = { direct: 0, relayed: 0 };
  /** Whether every isolate was busy at the end of the last pump (see {@link FunctionPool.onBusy}). */
  #allBusyNow = false;

  /**
   * Told whenever a pool's isolates become all busy (`true`: each holds a batch, so a request arriving now only
   * waits in the queue until one finishes) and when one is free again (`false`), at the end of the pump that saw it;
   * always `false` once the pool closes. The HTTP threads then stop ringing the main thread for its requests for a
   * few milliseconds at a time, which it takes from their rings when a batch finishes instead (`http_threads.ts`).
   */
  static onBusy: ((pool: FunctionPool, busy: boolean) => void) | undefined;

  /**
   * Takes the requests that arrived unannounced (see {@link onBusy}) into their pools' queues, through
   * {@link arrivals}: called when a batch of a pool whose isolates were all busy finishes, before it pumps.
   */
  static takeArrivals: ((pool: FunctionPool) => void) | undefined;

  /**
   * Runs `enqueue`, which queues many requests at once (the main thread draining an HTTP thread's ring), and pumps
   * each pool it reached once, after: the requests then leave as one batch, where a pump per request would send the
   * first alone to an idle isolate and the rest only once that batch is done. Nothing waits past `enqueue`'s return.
   */
  static arrivals(enqueue: () => void): void {
    if (held) return enqueue();
    const pools = held = new Set();
    try {
      enqueue();
    } finally {
      held = undefined;
      for (const pool of pools) pool.#pump();
    }
  }

  /** Creates a pool; call {@link start} before {@link invoke}. */
  constructor(readonly spec: PoolSpec) {
    this.#supervisor = new Supervisor(spec, () => this.#changed());
  }

  /** Starts every isolate; rejects with the first start failure, leaving nothing running. */
  start(): Promise<void> {
    return this.#supervisor.start();
  }

  /** Models as the first isolate loaded them. */
  get models(): ModelInfo[] {
    return this.#supervisor.models;
  }

  /** Requests waiting for an isolate. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Whether every isolate is down and keeps failing. */
  get unhealthy(): boolean {
    return this.#supervisor.unhealthy;
  }

  /** Sizes of the last batches sent (at most 64), for the API. */
  get recentBatchSizes(): number[] {
    return [...this.#batchSizes];
  }

  /** The isolates, for the API. */
  isolates(): IsolateInfo[] {
    return this.#supervisor.slots.map((slot) => {
      const host = slot.host;
      const resident = host?.residentBytes();
      return {
        lane: slot.index,
        id: host?.id ?? null,
        status: !host ? "restarting" : host.inflight > 0 ? "busy" : "ready",
        device: slot.lane.kind === "cuda" ? `cuda:${slot.lane.device}` : "cpu",
        isolation: host?.isolation ?? isolationFor(this.spec.options, slot.lane, this.spec.defaultIsolation),
        ...(host?.pid ? { pid: host.pid } : {}),
        ...(resident !== undefined ? { residentMb: Math.round(resident / 2 ** 20) } : {}),
        served: host?.served ?? 0,
        restarts: slot.restarts,
        ...(slot.lastError ? { lastError: slot.lastError } : {}),
        providers: host?.models[0]?.providers ?? [],
        ...(host?.laneInfo ? { gpu: host.laneInfo } : {}),
      };
    });
  }

  /**
   * Why a new request would be refused now, if it would: unloaded, unhealthy,
   * queue full, or an expected wait past the deadline. Cheap, so a route
   * calls it before reading the body.
   */
  refusal(): IsolaneError | undefined {
    const { name, options } = this.spec;
    if (this.#supervisor.closed || this.#closing) {
      return new IsolaneError("function_unavailable", `Function '${name}' was unloaded; retry the request`);
    }
    if (this.unhealthy) return this.#supervisor.unhealthyError();
    if (this.#queue.length === 0 || this.#freeSlot()) return undefined;
    if (this.#queue.length >= options.queueDepth) {
      return this.#busy(`has ${this.#queue.length} requests waiting, its limit`);
    }
    const waitMs = this.#expectedWaitMs();
    if (waitMs > options.timeoutMs) {
      return this.#busy(`would answer in about ${Math.round(waitMs)} ms, past its ${options.timeoutMs} ms limit`);
    }
    return undefined;
  }

  #busy(why: string): IsolaneError {
    // Within timeoutMs every request waiting now is answered or has timed out: a longer Retry-After is never true.
    const waitMs = Math.min(this.#expectedWaitMs(), this.spec.options.timeoutMs);
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    return new IsolaneError("queue_full", `Function '${this.spec.name}' ${why}; retry later`, undefined, {
      "retry-after": String(seconds),
    });
  }

  /** Live isolates (at least 1: a restarting one still serves the queue once it is back). */
  #lanes(): number {
    // Counted, not filtered: with every isolate busy this runs on each request (`refusal`).
    let lanes = 0;
    for (const slot of this.#supervisor.slots) if (slot.host) lanes++;
    return lanes || 1;
  }

  /** How long a request queued now would wait, from the queue and the recent service time. */
  #expectedWaitMs(): number {
    const lanes = this.#lanes();
    const perBatch = this.spec.options.dynamicBatching?.maxBatchSize ?? 1;
    const batchesAhead = Math.ceil((this.#queue.length + 1) / perBatch);
    return (batchesAhead / lanes) * (this.#serviceMs > 0 ? this.#serviceMs : this.#longestRunningMs());
  }

  /**
   * Before any batch has finished there is no service time to go by: the batch that has run longest has taken at
   * least this long, so its age stands in (a first request stuck in a slow run otherwise made every `Retry-After` 1 s,
   * and the wait past the deadline never refused anything).
   */
  #longestRunningMs(): number {
    let oldest = Infinity;
    for (const started of this.#runningSince.values()) if (started < oldest) oldest = started;
    return oldest === Infinity ? 0 : performance.now() - oldest;
  }

  /**
   * The refusal of an answer larger than `maxAnswerBytes` (its body and its tensors' data), if it is: no client is sent
   * an answer of gigabytes that a handler built by mistake, and the message says what to change. An isolate sends an
   * HTTP thread straight only answers within the limit (`src/isolate/main.ts`); the rest come here. A stream's items
   * are counted as they come ({@link FunctionPool.#dispatch}).
   */
  #tooLarge(result: Extract<JobResult, { ok: true }>): IsolaneError | undefined {
    return this.#overLimit(answerBytes(result));
  }

  /** The `answer_too_large` refusal of an answer of `bytes` (a whole one, or a stream's items so far), if it is one. */
  #overLimit(bytes: number): IsolaneError | undefined {
    const limit = this.spec.options.maxAnswerBytes;
    if (bytes <= limit) return undefined;
    return new IsolaneError(
      "answer_too_large",
      `Function '${this.spec.name}' answered ${bytes} bytes, more than its maxAnswerBytes of ${limit}; ` +
        "return less (fewer rows a request, a smaller output) or raise maxAnswerBytes in its definition",
    );
  }

  /**
   * Answers 429 now to each queued request that cannot finish by its deadline even at the pace of the fastest of the
   * last batches, rather than 504 once the deadline has passed. Called as each batch finishes, before the next leaves:
   * a burst that arrived before any batch had finished (a cold or freshly loaded function, with no service time to go
   * by) was admitted whole, and all but the first few waited out `timeoutMs` for a 504. Each request is counted behind
   * only the requests kept before it, so a refusal ahead of it can make room for it; those an idle isolate takes now
   * are kept whatever their deadline (the pool knows a run's length only from the runs before it). Only requests
   * taken before any batch had finished are refused here: one that `refusal` took by a known service time stays,
   * since a run's length may depend on its input (a 5 ms request behind a 400 ms one, with a 1000 ms limit, was
   * refused by the 400 ms of the last 8 runs though it would have finished 10 ms later).
   */
  #shedLate(): void {
    const queue = this.#queue;
    if (queue.length === 0 || this.#recentMs.length === 0) return;
    let fastest = Infinity;
    for (const ms of this.#recentMs) if (ms < fastest) fastest = ms;
    const lanes = this.#lanes();
    const perBatch = this.spec.options.dynamicBatching?.maxBatchSize ?? 1;
    // The requests an idle isolate takes now are never refused: their run may well be shorter than the last ones.
    let startingNow = 0;
    for (const slot of this.#supervisor.slots) if (slot.host?.alive && slot.batches === 0) startingNow += perBatch;
    const now = performance.now();
    let kept = 0;
    let late: Request[] | undefined;
    for (let i = 0; i < queue.length; i++) {
      const request = queue[i];
      if (
        request.unchecked && kept >= startingNow &&
        now + (Math.ceil((kept + 1) / perBatch) / lanes) * fastest > request.deadlineAt
      ) {
        (late ??= []).push(request);
      } else queue[kept++] = request;
    }
    if (!late) return;
    queue.length = kept;
    const { timeoutMs } = this.spec.options;
    const error = this.#busy(
      `would not finish this queued request within its ${timeoutMs} ms limit at its recent pace`,
    );
    for (const request of late) {
      this.#finish(request);
      this.#answer(request, error, undefined);
    }
  }

  /**
   * Runs one request body through the function. Resolves with the response
   * body; rejects with an `IsolaneError` (refused, timeout, crash, ...).
   */
  invoke(body: ArrayBuffer, options: InvokeOptions = {}): Promise<ArrayBuffer> {
    // One promise, settled with the body: an async wrapper over `#submit` added a promise and a turn of microtasks to
    // every answer on the main thread.
    return new Promise<ArrayBuffer>((resolve, reject) => {
      this.#enqueue(
        body,
        undefined,
        options.contentType || undefined,
        options,
        undefined,
        options.rows ?? 1,
        (error, output) => error ? reject(error) : resolve(output!.body),
      );
    });
  }

  /**
   * Runs decoded input tensors (KServe v2) through a function with a tensor
   * signature. Resolves with its output tensors; rejects like {@link invoke}.
   * The tensors' buffers are transferred to the isolate. `rows` defaults to
   * the first dimension of the first tensor.
   */
  async infer(tensors: WireTensor[], options: InvokeOptions = {}): Promise<WireTensor[]> {
    const rows = options.rows ?? Math.max(1, tensors[0]?.shape[0] ?? 1);
    return (await this.#submit({ body: noBody, tensors }, options, rows)).tensors ?? [];
  }

  /**
   * Runs input tensors an HTTP thread left in its arena, like {@link infer}, and calls `source.answered` once with
   * `request` (a callback, not a promise: this runs for every request of every thread on the main thread). On a
   * Worker host the isolate copies them from the arena and answers the thread itself: the answer has `replied`. On a
   * process host they are copied here and cross as usual: the answer has the output `tensors`. A refusal is answered
   * at once. Rows are the first dimension of the first tensor. Returns the request's cancel function (as
   * `options.onCancel` gets it; `undefined` when it was refused), which does nothing once the request has settled.
   */
  inferShared<R extends SharedRequest>(source: SharedSource<R>, request: R): (() => void) | undefined {
    const rows = Math.max(1, request.shared[0]?.shape[0] ?? 1);
    return this.#enqueue(noBody, undefined, undefined, request, source as SharedSource, rows, undefined);
  }

  /** Answers a request, through its source (shared requests) or its `settle`. */
  #answer(request: Request, error: IsolaneError | undefined, output: Output | undefined): void {
    if (request.source) request.source.answered(request.shared!, error, output);
    else request.settle!(error, output);
  }

  /**
   * Requests from HTTP threads answered so far: `direct`, their tensors and answers went between the thread and a
   * Worker isolate without crossing the main thread; `relayed`, the main thread carried them (process hosts).
   */
  get sharedAnswers(): { direct: number; relayed: number } {
    return { ...this.#sharedAnswers };
  }

  /** The job of a request as `host` takes it: one with shared inputs names its link, or carries copies. */
  #jobFor(request: Request, host: IsolateHost): Job {
    const { shared, source, job } = request;
    if (!shared || !source) return job;
    const link = source.linkFor(host);
    if (link !== undefined) {
      // The job of a shared request has only an id, a body and maybe a request id: set here, not spread.
      job.shared = shared.shared;
      job.reply = { link, id: shared.id };
      return job;
    }
    const tensors = shared.shared.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      data: new Uint8Array(source.arena, t.offset, t.bytes).slice().buffer,
    }));
    return { ...job, tensors };
  }

  /** Queues a request; `rows` overrides `options.rows` (per request on the main thread: no options object copied). */
  #submit(
    payload: Pick<Job, "body" | "tensors" | "contentType">,
    options: InvokeOptions,
    rows = options.rows ?? 1,
  ): Promise<Output> {
    return new Promise<Output>((resolve, reject) => {
      this.#enqueue(
        payload.body,
        payload.tensors,
        payload.contentType,
        options,
        undefined,
        rows,
        (error, output) => error ? reject(error) : resolve(output!),
      );
    });
  }

  /**
   * Queues a request that settles by `settle`, or through `source` when it is shared (`given` is then the shared
   * request, else the options); at once when it is refused. Returns its cancel function, `undefined` when refused. Per request on
   * the main thread: no payload object, one closure (the cancel).
   */
  #enqueue(
    body: ArrayBuffer,
    tensors: WireTensor[] | undefined,
    contentType: string | undefined,
    given: InvokeOptions | SharedRequest,
    source: SharedSource | undefined,
    rows: number,
    settle: Settle | undefined,
  ): (() => void) | undefined {
    const shared = source ? given as SharedRequest : undefined;
    const { signal, onItem, onCancel } = shared ? noOptions : given as InvokeOptions;
    const requestId = shared ? shared.requestId : (given as InvokeOptions).requestId;
    const refused = this.refusal();
    if (refused) {
      if (source) source.answered(shared!, refused, undefined);
      else settle!(refused, undefined);
      return;
    }
    const { options } = this.spec;
    const job: Job = { id: nextJobId++, body };
    if (tensors) job.tensors = tensors;
    if (contentType !== undefined) job.contentType = contentType;
    if (requestId) job.requestId = requestId;
    const arrived = performance.now();
    const request: Request = {
      job,
      shared,
      source,
      rows,
      arrived,
      state: "queued",
      slot: undefined,
      deadlineAt: arrived + options.timeoutMs,
      unchecked: this.#serviceMs === 0,
      signal,
      onAbort: () => this.#fail(request, new IsolaneError("timeout", "The client went away")),
      settle,
      onItem,
      // Set here, so that every request has one shape (it is set at dispatch).
      batch: undefined,
      older: this.#newest,
      newer: undefined,
    };
    // One deadline per request, armed once: it covers the wait and the run.
    if (this.#newest) this.#newest.newer = request;
    else this.#oldest = request;
    this.#newest = request;
    if (this.#deadlineTimer === undefined) this.#armDeadline(options.timeoutMs);
    signal?.addEventListener("abort", request.onAbort, { once: true });
    onCancel?.(request.onAbort);
    this.#queue.push(request);
    if (held) held.add(this);
    else if (options.dynamicBatching) this.#pumpAfterArrivals();
    else this.#pump();
    return request.onAbort;
  }

  #armDeadline(ms: number): void {
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      const now = performance.now();
      const { name, options } = this.spec;
      for (let request = this.#oldest, last: Request | undefined; request && request !== last; request = this.#oldest) {
        if (request.deadlineAt > now) return this.#armDeadline(request.deadlineAt - now);
        last = request;
        // Answered and taken off the list here, so the loop goes on with the next oldest.
        this.#fail(
          request,
          request.state === "queued"
            ? new IsolaneError("timeout", `Function '${name}' had no free isolate within ${options.timeoutMs} ms`)
            : new IsolaneError("timeout", `Function '${name}' did not finish within ${options.timeoutMs} ms`),
        );
      }
    }, Math.max(0, ms));
  }

  /** Answers a request with an error now; a running one is aborted in its isolate, and ended if it stays stuck. */
  #fail(request: Request, error: IsolaneError): void {
    if (request.state === "done") return;
    const wasRunning = request.state === "running";
    this.#finish(request);
    this.#answer(request, error, undefined);
    if (!wasRunning) {
      this.#queue.splice(this.#queue.indexOf(request), 1);
      return this.#pump();
    }
    const host = request.slot?.host;
    if (!host) return;
    host.abort(request.job.id);
    this.#endIfStuck(request, host);
  }

  /**
   * A handler that honours its signal answers within the grace; only a stuck one costs the isolate. A batch's run is
   * asked to stop only once every request in it has gone, so the grace counts from then: ending the isolate sooner
   * would fail the requests still waiting for that run.
   */
  #endIfStuck(request: Request, host: IsolateHost): void {
    setTimeout(() => {
      if (!host.alive || !host.holds(request.job.id)) return;
      if (request.batch?.some((r) => r.state !== "done")) return this.#endIfStuck(request, host);
      host.terminate(
        new IsolaneError(
          "timeout",
          `A request was still running ${this.spec.options.abortGraceMs} ms after its ${this.spec.options.timeoutMs} ms deadline`,
        ),
      );
    }, this.spec.options.abortGraceMs);
  }

  #finish(request: Request): void {
    request.state = "done";
    const { older, newer } = request;
    if (older) older.newer = newer;
    else if (this.#oldest === request) this.#oldest = newer;
    if (newer) newer.older = older;
    else if (this.#newest === request) this.#newest = older;
    request.older = request.newer = undefined;
    if (request.signal) request.signal.removeEventListener("abort", request.onAbort);
  }

  /**
   * Stops taking new work, lets queued and running requests finish, then
   * ends the isolates (each releases its sessions). Used when a new version
   * replaces this one, or the function is removed.
   */
  drain(): Promise<void> {
    this.#closing = true;
    const done = new Promise<void>((resolve) => (this.#drained = resolve));
    this.#pump();
    return done;
  }

  /**
   * Ends everything now; queued and running requests get 503, with `reason` when one is given (the runtime's
   * shutdown), else saying the function was unloaded. Resolves once every isolate has ended.
   */
  close(reason?: string): Promise<void> {
    this.#closing = true;
    for (const request of this.#queue.splice(0)) {
      this.#finish(request);
      this.#answer(
        request,
        new IsolaneError("function_unavailable", reason ?? `Function '${this.spec.name}' was unloaded`),
        undefined,
      );
    }
    return this.#closeAll(reason);
  }

  async #closeAll(reason?: string): Promise<void> {
    if (this.#allBusyNow) {
      this.#allBusyNow = false;
      FunctionPool.onBusy?.(this, false);
    }
    clearTimeout(this.#batchTimer);
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    await this.#supervisor.closeAll(reason);
    // Its isolates log no more: lines they dropped within the last second are said now, not after (or never, at exit).
    flushFunctionLogDrops(this.spec.name);
    this.#drained?.();
  }

  /** A host came or went. */
  #changed(): void {
    if (this.unhealthy) {
      const error = this.#supervisor.unhealthyError();
      for (const request of this.#queue.splice(0)) {
        this.#finish(request);
        this.#answer(request, error, undefined);
      }
    }
    this.#pump();
  }

  /**
   * The live slot with the fewest batches in flight, if it has room for one more; among idle ones, the one that
   * finished last. Its model's weights and its threads are still warm: at c=1 round robin over a CPU function's
   * isolates read each one's weights (32 MiB for the 8×1024 MLP, as much as this CPU's L3) from memory on every
   * request (README "Settings"). Slots never used yet go by fewest served.
   */
  #freeSlot(): Slot | undefined {
    const capacity = this.spec.options.dynamicBatching ? 2 : 1;
    let best: Slot | undefined;
    const slots = this.#supervisor.slots;
    // Indexed: this runs on every request (`refusal`, `#pump`).
    for (let s = 0; s < slots.length; s++) {
      const slot = slots[s];
      if (!slot.host?.alive || slot.batches >= capacity) continue;
      if (!best || slot.batches < best.batches) best = slot;
      else if (slot.batches === best.batches) {
        const idle = this.#idleSince.get(slot) ?? 0;
        const bestIdle = this.#idleSince.get(best) ?? 0;
        if (idle > bestIdle || (idle === bestIdle && slot.host.served < best.host!.served)) best = slot;
      }
    }
    return best;
  }

  #pumpDue = false;

  /**
   * Pumps once the event loop has taken every request that arrived with this one (Node's `setImmediate`: after the
   * I/O of this turn, about 5 µs later when nothing else is ready). Requests whose bodies are read in one turn then
   * leave as one batch; a pump per request sent the first alone to an idle isolate and held the rest until that
   * batch came back (the `mlp` example at c=32: a mean batch of 4–8 requests against 13; docs/cpu-mlp.md).
   */
  #pumpAfterArrivals(): void {
    if (this.#pumpDue) return;
    this.#pumpDue = true;
    arriving.push(this);
    if (arriving.length === 1) setImmediate(FunctionPool.#pumpArrived);
  }

  static #pumpArrived(): void {
    for (const pool of arriving.splice(0)) {
      pool.#pumpDue = false;
      pool.#pump();
    }
  }

  #pump(): void {
    const batching = this.spec.options.dynamicBatching;
    while (this.#queue.length > 0) {
      const slot = this.#freeSlot();
      if (!slot) break;
      // Every request is at least one row, so no batch takes more than maxBatchSize of them; one more tells the
      // batcher that the queue holds more than fits. The queue itself may hold thousands.
      // Filled in place: at c=32 this runs on every arrival, and a fresh array each time cost the main thread.
      const rows = this.#rows;
      rows.length = Math.min(this.#queue.length, (batching?.maxBatchSize ?? 1) + 1);
      for (let i = 0; i < rows.length; i++) rows[i] = this.#queue[i].rows;
      const decision = decideBatch(rows, performance.now() - this.#queue[0].arrived, batching);
      if ("waitMs" in decision) {
        if (this.#batchTimer === undefined && Number.isFinite(decision.waitMs)) {
          this.#batchTimer = setTimeout(() => {
            this.#batchTimer = undefined;
            this.#pump();
          }, decision.waitMs);
        }
        break;
      }
      // A second batch goes to a busy isolate only when it is full (it runs next, with no gap); a partial one
      // waits for a free isolate, so that requests arriving meanwhile join it.
      if (slot.batches > 0 && batching) {
        const batchRows = rows.slice(0, decision.send).reduce((n, r) => n + r, 0);
        if (batchRows < batching.maxBatchSize) break;
      }
      this.#dispatch(slot, this.#queue.splice(0, decision.send));
    }
    if (
      this.#closing && !this.#supervisor.closed && this.#queue.length === 0 &&
      this.#supervisor.slots.every((s) => !s.host || s.host.inflight === 0)
    ) {
      void this.#closeAll();
    }
    const busy = this.#allBusy();
    if (busy !== this.#allBusyNow) {
      this.#allBusyNow = busy;
      FunctionPool.onBusy?.(this, busy);
    }
  }

  /** Whether every slot has a live host running a batch (and the pool is open): no request could start now. */
  #allBusy(): boolean {
    if (this.#closing || this.#supervisor.closed) return false;
    const slots = this.#supervisor.slots;
    for (let i = 0; i < slots.length; i++) if (!slots[i].host?.alive || slots[i].batches === 0) return false;
    return slots.length > 0;
  }

  #dispatch(slot: Slot, batch: Request[]): void {
    const host = slot.host!;
    const started = performance.now();
    // Each job is in one batch at a time: its first job's id names the run.
    const runKey = batch[0].job.id;
    this.#runningSince.set(runKey, started);
    slot.batches++;
    this.spec.observer?.dispatched(this.spec.name, batch.reduce((n, r) => n + r.rows, 0));
    this.#batchSizes.push(batch.length);
    if (this.#batchSizes.length > 64) this.#batchSizes.shift();
    for (const request of batch) {
      request.state = "running";
      request.slot = slot;
      if (batch.length > 1) request.batch = batch;
    }
    const byId = batch.some((r) => r.onItem) ? new Map(batch.map((r) => [r.job.id, r])) : undefined;
    // Bytes each request has streamed: past maxAnswerBytes its stream ends with an `answer_too_large` item, and its
    // run is asked to stop (a generator that yields forever, say).
    const streamed = byId ? new Map<Request, number>() : undefined;
    const onItem = byId
      ? (id: number, body: ArrayBuffer) => {
        const request = byId.get(id);
        if (request?.state !== "running") return;
        const bytes = (streamed!.get(request) ?? 0) + body.byteLength;
        streamed!.set(request, bytes);
        const tooLarge = this.#overLimit(bytes);
        if (tooLarge) this.#fail(request, tooLarge);
        else request.onItem?.(body);
      }
      : undefined;
    let left = batch.length;
    let answered = false;
    const jobs: Job[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) jobs[i] = this.#jobFor(batch[i], host);
    // One listener for the batch, called as each job is answered: no promise per request.
    host.runEach(jobs, (result: JobResult, i: number) => {
      const request = batch[i];
      if (result.ok) {
        slot.failures = 0;
        answered = true;
      }
      if (request.state !== "done") {
        this.#finish(request);
        if (result.ok && request.shared) {
          if (result.replied) this.#sharedAnswers.direct++;
          else this.#sharedAnswers.relayed++;
        }
        const tooLarge = result.ok ? this.#tooLarge(result) : undefined;
        if (tooLarge) this.#answer(request, tooLarge, undefined);
        else if (result.ok) this.#answer(request, undefined, result);
        else this.#answer(request, IsolaneError.from(result.error), undefined);
      }
      if (--left === 0) {
        if (slot.host === host) slot.batches--;
        // An isolate whose batch failed whole is not the warm one: it would take every request that came alone.
        if (answered) this.#idleSince.set(slot, ++this.#finishedBatches);
        else this.#idleSince.delete(slot);
        this.#runningSince.delete(runKey);
        const ms = performance.now() - started;
        // A batch that failed whole (timed out, its isolate ended) is no run time of the function: the call queued
        // behind a run that hung for `timeoutMs` was refused by it, though the respawned isolate answers it at once;
        // and one such run made every Retry-After say about `timeoutMs`.
        if (answered) {
          this.#serviceMs = this.#serviceMs === 0 ? ms : this.#serviceMs * 0.8 + ms * 0.2;
          this.#recentMs.push(ms);
          if (this.#recentMs.length > recentBatches) this.#recentMs.shift();
        }
        this.#shedLate();
        // Requests that waited unannounced while every isolate was busy join the queue before the next batch leaves.
        if (this.#allBusyNow) FunctionPool.takeArrivals?.(this);
        this.#pump();
      }
    }, onItem);
  }
}
