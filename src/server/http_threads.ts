/**
 * HTTP threads: the main thread's side. With `ISOLANE_HTTP_THREADS` above 0
 * the runtime's port is served by that many Workers of the runtime's own code
 * (`http_thread.ts`), each listening on it with `SO_REUSEPORT`, so that
 * parsing, body reads, v2 tensor decoding and answers spread over cores. The
 * main thread keeps one queue per function (so the dynamic batcher sees every
 * request), the isolates, the registry and the app; it takes the threads'
 * operations here.
 * @module
 */
import { IsolaneError } from "../errors.ts";
import { IdTable } from "../id_table.ts";
import { log, type LogLevel } from "../log.ts";
import type { FunctionEntry, Registry } from "../registry/registry.ts";
import type { FunctionVersion } from "../registry/load_function.ts";
import type { IsolateHost } from "../pool/host.ts";
import { FunctionPool, type SharedAnswer, type SharedSource } from "../pool/function_pool.ts";
import {
  admissionSlots,
  type FunctionProfile,
  Outbox,
  type ToMain,
  type ToThread,
  type WholeLimits,
} from "./http_bridge.ts";
import type { Metrics } from "./metrics.ts";
import { Unpacker } from "../packed.ts";
import { mainDoorbell, ringBytes, RingReader } from "../op_ring.ts";

const entry = new URL("./http_thread.ts", import.meta.url);

/** Each thread's tensor arena, in bytes: pages are used as first written, so the rest costs nothing. */
const arenaBytes = 64 * 2 ** 20;
let nextLink = 1;
/**
 * The longest a request waits in its thread's ring unannounced while its function's isolates are all busy
 * ({@link HttpThreads} `#onBusy`): its deadline starts, and the queue (the API, admission) shows it, at most this late.
 */
const quietMs = 5;
/**
 * The longest a deploy or reload waits for the HTTP threads to serve by its new version's signature before it answers
 * (a thread that does not answer by then is dying, and is replaced).
 */
const profilesAckMs = 1000;
/** Empty polls in a row after which the admission board stops polling: 100 ms at one poll per 5 ms. */
const idlePollsToStop = 20;

/** Options of {@link HttpThreads.start}. */
export interface HttpThreadsOptions {
  /** How many threads (at least 1). */
  count: number;
  host: string;
  /** The port; 0 picks a free one (the first thread's, which the others share). */
  port: number;
  registry: Registry;
  metrics: Pick<Metrics, "record" | "addSource">;
  /** The app, for requests sent whole (everything but direct invocations). */
  fetch: (request: Request, env: { remoteAddr: Deno.NetAddr }) => Response | Promise<Response>;
  logLevel: LogLevel;
  /** The most a thread reads of a request it sends whole: the largest bundle the admin API takes. */
  maxWholeBytes: number;
  /** How long a thread waits for the body of a request it sends whole, unless the function's `timeoutMs` applies. */
  wholeTimeoutMs: number;
  /** Development: folder functions are called without auth, so they are invoked directly too. */
  devMode: boolean;
}

/** Whether an HTTP thread may invoke this version directly: it needs no auth and no CORS. */
function direct(entry: FunctionEntry, fn: FunctionVersion, devMode: boolean): boolean {
  const { auth, cors } = fn.manifest.options;
  return !cors && (auth === "none" || (devMode && entry.source === "folder"));
}

/**
 * The functions a thread serves directly, by name, and the limits of every other one that serves (with auth or CORS:
 * its invocations go whole).
 */
function profilesOf(
  registry: Registry,
  devMode: boolean,
  slotOf: (name: string) => number,
): { profiles: Record<string, FunctionProfile>; wholeFunctions: Map<string, WholeLimits> } {
  const profiles: Record<string, FunctionProfile> = {};
  const wholeFunctions = new Map<string, WholeLimits>();
  for (const e of registry.list()) {
    const fn = e.current;
    if (!fn) continue;
    const { maxBodyBytes, raw, signature, timeoutMs } = fn.manifest.options;
    if (!direct(e, fn, devMode)) {
      wholeFunctions.set(e.name, { timeoutMs, maxBodyBytes });
      continue;
    }
    profiles[e.name] = {
      version: fn.version,
      maxBodyBytes,
      timeoutMs,
      slot: slotOf(e.name),
      accepts: raw?.accepts ?? [],
      ...(signature ? { signature } : {}),
    };
  }
  return { profiles, wholeFunctions };
}

/** An infer request of a thread whose tensors lie in its arena (from its ring, or its messages). */
type SharedInfer = Extract<ToMain, { k: "infer" }> & { shared: NonNullable<Extract<ToMain, { k: "infer" }>["shared"]> };

/** One thread and the requests it has on this side; the source of its shared requests for the pools. */
class Thread implements SharedSource<SharedInfer> {
  readonly outbox: Outbox<ToThread>;
  /** What stops each request in flight when its client goes away. */
  readonly aborts = new IdTable<() => void>();
  closed: (() => void) | undefined;
  /** Callers waiting for the thread's metrics records (`flush`). */
  readonly flushed: (() => void)[] = [];
  /** The last `profiles` the thread said it serves by (their `seq`). */
  profiled = 0;
  stopped!: () => void;
  /** Settles once the thread has answered its requests in flight after a stop. */
  readonly drained = new Promise<void>((resolve) => (this.stopped = resolve));
  /** Where the thread leaves input tensors (`tensor_arena.ts`). */
  readonly arena = new SharedArrayBuffer(arenaBytes);
  /** Where it writes its infer requests of the arena (`op_ring.ts`), read here. */
  readonly ring = new SharedArrayBuffer(ringBytes);
  readonly reader = new RingReader(this.ring);
  /** Its direct links to Worker isolates, by host. */
  readonly links = new Map<IsolateHost, number>();

  /** The link from this thread to `host` (made on first use; see `HttpThreads`). */
  linkFor!: (host: IsolateHost) => number | undefined;
  /** Sends a shared request's answer (see `HttpThreads`). */
  answered!: (request: SharedInfer, error: IsolaneError | undefined, answer: SharedAnswer | undefined) => void;

  constructor(readonly worker: Worker) {
    this.outbox = new Outbox((ops, transfer) => worker.postMessage(ops, transfer));
  }
}

/** The running HTTP threads. */
export class HttpThreads {
  #threads: Thread[] = [];
  #profiles = "";
  #stopping = false;
  /** The admission board the threads read before a body (see `ToThread` "init"). */
  #board = new SharedArrayBuffer(admissionSlots * 4);
  #admission = new Int32Array(this.#board);
  #slots = new Map<string, number>();
  /** Posts the board every 5 ms, only while a direct function has requests waiting ({@link #watchAdmission}). */
  #admissionTimer: ReturnType<typeof setInterval> | undefined;
  #admissionPolls = 0;
  /**
   * Board slots of functions whose isolates are all busy and whose requests the threads write unannounced: -1 on the
   * board while nothing refuses ({@link #onBusy}); since when the rings were last drained for them, and the timer
   * that lifts the ask {@link quietMs} after that.
   */
  #quiet = new Map<number, { since: number; timer: ReturnType<typeof setTimeout> }>();
  /** Polls in a row that found no direct function with requests waiting ({@link #postAdmission}). */
  #idlePolls = 0;
  /** Pools that took requests in this turn, looked at once it ends ({@link #watchQueues}). */
  #invoked = new Set<FunctionPool>();
  /** Rung by a thread that published requests in its ring while no drain was due. */
  #drainAll = (): void => {
    FunctionPool.arrivals(() => {
      for (const t of this.#threads) this.#drain(t);
    });
  };

  private constructor(readonly options: HttpThreadsOptions) {}

  /** The port they listen on. */
  port = 0;

  /**
   * Starts the threads and resolves once every one listens.
   * @throws {Error} when a thread cannot listen (the port is taken). More than one thread shares the port with
   * `SO_REUSEPORT`, which Deno gives only under `--unstable-net` (without it Deno ends the process, saying so).
   */
  static async start(options: HttpThreadsOptions): Promise<HttpThreads> {
    const threads = new HttpThreads(options);
    mainDoorbell().add(threads.#drainAll);
    FunctionPool.onBusy = threads.#onBusy;
    FunctionPool.takeArrivals = threads.#takeArrivals;
    try {
      let port = options.port;
      for (let i = 0; i < options.count; i++) {
        port = await threads.#spawn(i, port);
      }
      threads.port = port;
    } catch (error) {
      for (const t of threads.#threads) t.worker.terminate();
      mainDoorbell().delete(threads.#drainAll);
      throw error;
    }
    void threads.#pushProfiles();
    // A deploy's, reload's or removal's answer waits until the threads serve by the functions as they are now: a
    // client that calls the new signature the moment its deploy answered was refused by a thread's old copy for up to
    // 250 ms (a poll every 250 ms was all the threads had), and one that calls a function just deleted got that
    // copy's 400 rather than 404. Nothing else changes the profiles (a thread respawned is sent them as it starts).
    options.registry.onServe(() => threads.#pushProfiles());
    options.metrics.addSource(() => threads.#flushRecords());
    return threads;
  }

  #spawn(index: number, port: number): Promise<number> {
    const worker = new Worker(entry, { type: "module", name: `http-${index}` });
    const thread = new Thread(worker);
    thread.linkFor = (host) => this.#linkFor(thread, host);
    thread.answered = (op, error, answer) => {
      thread.aborts.delete(op.id);
      if (error) this.#fail(thread, op.id, error);
      // A direct answer went from the isolate to the thread: nothing to send.
      else if (!answer!.replied) thread.outbox.send({ k: "done", id: op.id, tensors: answer!.tensors ?? [] });
      this.#readmit(op.name);
    };
    this.#threads.push(thread);
    let listening = false;
    return new Promise<number>((resolve, reject) => {
      worker.onerror = (event) => {
        event.preventDefault();
        log("error", "HTTP thread failed", { thread: index, reason: event.message });
        if (!listening) return reject(new Error(`HTTP thread ${index} failed: ${event.message}`));
        void this.#replace(thread, index, port);
      };
      worker.onmessage = (event: MessageEvent<ToMain[]>) => {
        // What the thread wrote in its ring before this message comes first (an abort after its request, say).
        FunctionPool.arrivals(() => this.#drain(thread));
        for (const op of event.data) {
          if (op.k === "listening") {
            listening = true;
            resolve(op.port);
          } else if (op.k === "listen_failed") {
            reject(new Error(`HTTP thread ${index} cannot listen on ${this.options.host}:${port}: ${op.message}`));
          } else this.#receive(thread, op);
        }
      };
      thread.outbox.send({
        k: "init",
        index,
        host: this.options.host,
        port,
        reusePort: this.options.count > 1,
        logLevel: this.options.logLevel,
        maxWholeBytes: this.options.maxWholeBytes,
        wholeTimeoutMs: this.options.wholeTimeoutMs,
        board: this.#board,
        arena: thread.arena,
        ring: thread.ring,
        bell: mainDoorbell().buffer,
      });
    });
  }

  /** A thread died (its own handlers keep stray errors from ending it, so this is rare): its requests are gone. */
  async #replace(dead: Thread, index: number, port: number): Promise<void> {
    this.#threads = this.#threads.filter((t) => t !== dead);
    for (const abort of dead.aborts.values()) abort();
    for (const [host, link] of dead.links) host.unlink?.(link);
    dead.worker.terminate();
    if (this.#stopping) return;
    try {
      await this.#spawn(index, port);
      this.#profiles = "";
      void this.#pushProfiles();
      log("info", "HTTP thread respawned", { thread: index });
    } catch (error) {
      log("error", "HTTP thread could not be respawned", { thread: index, reason: String(error) });
    }
  }

  /** The board slot of a function name (kept for the name's lifetime in this runtime; -1 once the board is full). */
  #slotOf = (name: string): number => {
    let slot = this.#slots.get(name);
    if (slot === undefined) {
      slot = this.#slots.size < admissionSlots ? this.#slots.size : -1;
      this.#slots.set(name, slot);
    }
    return slot;
  };

  /**
   * Starts the board's polling at the end of this turn if `pool` then holds requests waiting (called on each direct
   * invocation: only those fill a queue the board shows). A request that went straight to an idle isolate starts no
   * timer, so requests one at a time cost the main thread no poll. At the end of the turn, because requests drained
   * from the rings are queued first and dispatched after (`FunctionPool.arrivals`).
   */
  #watchQueues(pool: FunctionPool): void {
    if (this.#admissionTimer !== undefined) return;
    if (this.#invoked.size === 0) queueMicrotask(this.#checkQueues);
    this.#invoked.add(pool);
  }

  #checkQueues = (): void => {
    let waiting = false;
    for (const pool of this.#invoked) if (pool.queued > 0) waiting = true;
    this.#invoked.clear();
    if (waiting) this.#watchAdmission();
  };

  /**
   * Has the board posted every 5 ms from now until no direct function has had requests waiting for 100 ms. An idle runtime, and
   * one whose requests find idle isolates, polls nothing. A full queue is on the board within a few milliseconds;
   * the main thread still refuses what slips through.
   */
  #watchAdmission(): void {
    if (this.#admissionTimer !== undefined || this.#stopping) return;
    const timer = setInterval(() => this.#postAdmission(), 5);
    Deno.unrefTimer(timer);
    this.#admissionTimer = timer;
    this.#admissionPolls = 0;
    this.#idlePolls = 0;
  }

  /**
   * Writes each direct function's admission state: its `Retry-After` while its queue refuses work, else 0; stops
   * polling once every queue has been empty for {@link idlePollsToStop} polls in a row (a refusal needs a waiting
   * request, so the board then reads 0 everywhere). Not at the first empty poll: under load a queue empties and
   * fills again many times a second, and each restart cost the main thread a timer made and a microtask per turn.
   */
  #postAdmission(): void {
    this.#admissionPolls++;
    let waiting = false;
    for (const [name, slot] of this.#slots) {
      if (slot >= 0 && this.#writeAdmission(name, slot) > 0) waiting = true;
    }
    if (waiting) this.#idlePolls = 0;
    if (waiting || ++this.#idlePolls < idlePollsToStop) return;
    clearInterval(this.#admissionTimer);
    this.#admissionTimer = undefined;
    log("debug", "admission board idle", { polls: this.#admissionPolls });
  }

  /** Writes one function's admission state on its board slot; returns how many requests its queue holds. */
  #writeAdmission(name: string, slot: number): number {
    const pool = this.options.registry.get(name)?.current?.pool;
    const refusal = pool?.refusal();
    const seconds = refusal?.code === "queue_full" ? Number(refusal.headers?.["retry-after"] ?? 1) : 0;
    const value = seconds > 0 ? seconds : this.#quiet.has(slot) ? -1 : 0;
    if (Atomics.load(this.#admission, slot) !== value) Atomics.store(this.#admission, slot, value);
    return pool?.queued ?? 0;
  }

  /**
   * Sends the threads the functions they serve directly, if they changed; resolves once every thread serves by them
   * (or by later ones), or after {@link profilesAckMs} should a thread not answer.
   */
  #pushProfiles(): Promise<void> {
    for (const t of this.#threads) this.#unlinkEnded(t);
    const { profiles, wholeFunctions } = profilesOf(this.options.registry, this.options.devMode, this.#slotOf);
    const text = JSON.stringify([profiles, [...wholeFunctions]]);
    if (text !== this.#profiles) {
      this.#profiles = text;
      const seq = ++this.#profileSeq;
      for (const t of this.#threads) t.outbox.send({ k: "profiles", profiles, wholeFunctions, seq });
    }
    return this.#profilesServed(this.#profileSeq);
  }

  #profileSeq = 0;
  /** Callers waiting until every thread serves by the `profiles` numbered `seq`. */
  #profileWaits: { seq: number; resolve: () => void }[] = [];

  #profilesServed(seq: number): Promise<void> {
    if (this.#stopping || this.#threads.every((t) => t.profiled >= seq)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, profilesAckMs);
      this.#profileWaits.push({ seq, resolve: done });
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  #settleProfileWaits(): void {
    const served = Math.min(...this.#threads.map((t) => t.profiled));
    this.#profileWaits = this.#profileWaits.filter((wait) => {
      if (wait.seq > served) return true;
      wait.resolve();
      return false;
    });
  }

  /** Takes the requests a thread wrote in its ring. */
  #drain(thread: Thread): void {
    thread.reader.drain({ infer: (op) => this.#invoke(thread, op) });
  }

  #receive(thread: Thread, op: ToMain): void {
    switch (op.k) {
      case "invoke":
      case "infer":
        return this.#invoke(thread, op);
      case "infers": {
        const r = new Unpacker(op);
        while (!r.done) {
          const id = r.num();
          const version = r.num();
          const name = r.string();
          const requestId = r.string();
          this.#invoke(thread, { k: "infer", id, name, version, shared: r.shared(), requestId });
        }
        return;
      }
      case "request":
        return void this.#whole(thread, op);
      case "abort":
        thread.aborts.get(op.id)?.();
        return;
      case "admit": {
        const refusal = this.options.registry.get(op.name)?.current?.pool.refusal();
        if (!refusal) return thread.outbox.send({ k: "done", id: op.id });
        return this.#fail(thread, op.id, refusal);
      }
      case "records": {
        const { fn, status, ms } = op;
        for (let i = 0; i < fn.length; i++) this.options.metrics.record(fn[i], status[i], ms[i]);
        return;
      }
      case "profiled":
        thread.profiled = op.seq;
        return this.#settleProfileWaits();
      case "flushed":
        for (const resolve of thread.flushed.splice(0)) resolve();
        return;
      case "closed":
        thread.closed?.();
        return;
      case "stopped":
        thread.stopped();
        return;
    }
  }

  /**
   * The link from `thread` to `host`, made on first use: one end goes to the isolate, the other to the thread (its
   * messages wait there until the thread listens). Links to isolates that ended are dropped on the way.
   */
  #linkFor(thread: Thread, host: IsolateHost): number | undefined {
    if (!host.link) return undefined;
    const known = thread.links.get(host);
    if (known !== undefined) return known;
    this.#unlinkEnded(thread);
    const link = nextLink++;
    const channel = new MessageChannel();
    host.link(link, channel.port1, thread.arena);
    thread.outbox.send({ k: "link", link, port: channel.port2 }, [channel.port2]);
    thread.links.set(host, link);
    return link;
  }

  /** Drops a thread's links to isolates that ended (their ports close on both sides). */
  #unlinkEnded(thread: Thread): void {
    for (const [host, link] of thread.links) {
      if (host.alive) continue;
      thread.links.delete(host);
      thread.outbox.send({ k: "unlink", link });
    }
  }

  /** Answers a thread's request `id` with an error. */
  #fail(thread: Thread, id: number, error: unknown): void {
    const e = error instanceof IsolaneError ? error : new IsolaneError("internal", String(error));
    thread.outbox.send({ k: "error", id, error: e.toBody(), ...(e.headers ? { headers: e.headers } : {}) });
  }

  /**
   * A direct invocation: checked against the serving version, then into its pool. Per request on the main thread:
   * an infer request from the ring (the bulk) takes no promise and no closure here (the thread is its source, which
   * sends the answer); the others one promise reaction and two closures (the cancel and the answer).
   */
  #invoke(thread: Thread, op: Extract<ToMain, { k: "invoke" | "infer" }>): void {
    const { registry, devMode } = this.options;
    const { id } = op;
    let fn: FunctionVersion;
    try {
      const entry = registry.require(op.name);
      fn = entry.current ?? registry.serving(op.name);
      if (!direct(entry, fn, devMode)) return thread.outbox.send({ k: "whole", id });
      if (op.k === "invoke" && op.body.byteLength > fn.manifest.options.maxBodyBytes) {
        throw new IsolaneError("body_too_large", "Request body is too large");
      }
      if (op.k === "infer" && op.version !== fn.version) {
        // The thread decoded against a version just replaced: let the app decode against the new one.
        return thread.outbox.send({ k: "whole", id });
      }
    } catch (error) {
      return this.#fail(thread, id, error);
    }
    this.#watchQueues(fn.pool);
    const name = op.name;
    if (op.k === "infer" && op.shared) {
      // The hot path: the op itself is the pool's request, answered through the thread (the pool returns the cancel).
      const cancel = fn.pool.inferShared(thread, op as SharedInfer);
      // `undefined`: refused, and answered already. A queued request is never answered before this returns.
      if (cancel) thread.aborts.set(id, cancel);
      return;
    }
    // No AbortController per request: the pool hands back a cancel function.
    const options = { onCancel: (cancel: () => void) => thread.aborts.set(id, cancel), requestId: op.requestId };
    const failed = (error: unknown) => {
      thread.aborts.delete(id);
      this.#fail(thread, id, error);
      this.#readmit(name);
    };
    if (op.k === "invoke") {
      fn.pool.invoke(op.body, {
        ...options,
        ...(op.contentType ? { contentType: op.contentType } : {}),
        onItem: (body) => thread.outbox.send({ k: "item", id, body }),
      }).then((body) => {
        thread.aborts.delete(id);
        thread.outbox.send({ k: "done", id, body });
        this.#readmit(name);
      }, failed);
    } else {
      fn.pool.infer(op.tensors ?? [], options).then((tensors) => {
        thread.aborts.delete(id);
        thread.outbox.send({ k: "done", id, tensors });
        this.#readmit(name);
      }, failed);
    }
  }

  /**
   * A pool's isolates became all busy, or one is free again (`FunctionPool.onBusy`). While all are busy a request
   * could only wait in the queue, so the board says -1 and the threads write its requests in their rings without
   * ringing: the main thread takes them when one of the pool's batches finishes ({@link #takeArrivals}), at any other
   * drain, or {@link quietMs} after the last such drain, when the ask is lifted until the next batch finishes. Under
   * load that spares it most wakes by arrivals. When an isolate is free again the ask is lifted and the rings are
   * drained: a thread publishes a request unannounced only if the board still said -1 after it published (both sides
   * use sequentially consistent atomics), so none is missed.
   */
  #onBusy = (pool: FunctionPool, busy: boolean): void => {
    const slot = this.#slots.get(pool.spec.name);
    if (slot === undefined || slot < 0) return;
    if (busy) return this.#hush(pool, slot);
    // Not from inside the pool's pump: at the end of this turn.
    if (this.#unhush(slot)) queueMicrotask(this.#drainAll);
  };

  /** A batch of a pool whose isolates were all busy finished: its requests in the rings join its queue now. */
  #takeArrivals = (pool: FunctionPool): void => {
    this.#drainAll();
    const slot = this.#slots.get(pool.spec.name);
    if (slot !== undefined && slot >= 0) this.#hush(pool, slot);
  };

  /** Asks the threads not to ring for `pool`'s requests, for {@link quietMs} from now. */
  #hush(pool: FunctionPool, slot: number): void {
    // A version being replaced answers its last requests: only the serving one speaks for the name.
    if (this.#stopping || this.options.registry.get(pool.spec.name)?.current?.pool !== pool) return;
    const quiet = this.#quiet.get(slot);
    if (quiet) {
      quiet.since = performance.now();
      return;
    }
    this.#quiet.set(slot, { since: performance.now(), timer: this.#quietTimer(slot, quietMs) });
    Atomics.compareExchange(this.#admission, slot, 0, -1);
    if (!this.#hushed.has(slot)) {
      this.#hushed.add(slot);
      log("debug", "requests wait in the HTTP threads' rings while every isolate is busy", {
        function: pool.spec.name,
        quietMs,
      });
    }
  }

  /** Slots whose function had its requests kept quiet once (logged the first time only). */
  #hushed = new Set<number>();

  #quietTimer(slot: number, ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => this.#quietOver(slot), ms);
    Deno.unrefTimer(timer);
    return timer;
  }

  /** Lifts the ask once {@link quietMs} passed since the rings were last drained for the slot's function. */
  #quietOver(slot: number): void {
    const quiet = this.#quiet.get(slot);
    if (!quiet) return;
    const left = quiet.since + quietMs - performance.now();
    if (left > 0) {
      quiet.timer = this.#quietTimer(slot, left);
      return;
    }
    this.#unhush(slot);
    this.#drainAll();
  }

  /** Has the threads ring for the slot's function again; whether they had been asked not to. */
  #unhush(slot: number): boolean {
    const quiet = this.#quiet.get(slot);
    if (!quiet) return false;
    clearTimeout(quiet.timer);
    this.#quiet.delete(slot);
    Atomics.compareExchange(this.#admission, slot, -1, 0);
    return true;
  }

  /**
   * Clears a function's refusal from the board as soon as an answer may have drained its queue, rather than at the
   * next 5 ms poll: a client that sends its next request the moment it has its answer (the bench's respawn probe
   * does) was otherwise refused by a board that still showed the queue of a moment before.
   */
  #readmit(name: string): void {
    const slot = this.#slots.get(name);
    if (slot === undefined || slot < 0 || Atomics.load(this.#admission, slot) <= 0) return;
    // After the pool is done with the answer (a shared one is answered from inside it): its queue has moved on then.
    queueMicrotask(() => this.#writeAdmission(name, slot));
  }

  /**
   * A request the app serves as it came. Its answer goes back whole when the app had it whole (so it keeps its
   * length), else as a head and chunks as the app streams them.
   */
  async #whole(thread: Thread, op: Extract<ToMain, { k: "request" }>): Promise<void> {
    const { id } = op;
    const controller = new AbortController();
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    thread.aborts.set(id, () => {
      controller.abort();
      reader?.cancel().catch(() => {});
    });
    try {
      const request = new Request(op.url, {
        method: op.method,
        headers: op.headers,
        ...(op.body ? { body: op.body } : {}),
        signal: controller.signal,
      });
      const response = await this.options.fetch(request, {
        remoteAddr: { transport: "tcp", hostname: op.remote.hostname, port: op.remote.port },
      });
      const head = { k: "head" as const, id, status: response.status, headers: [...response.headers] };
      reader = response.body?.getReader();
      if (!reader) return thread.outbox.send({ ...head, body: new Uint8Array(0) });
      const first = await reader.read();
      if (first.done) return thread.outbox.send({ ...head, body: new Uint8Array(0) });
      let next = reader.read();
      // A body the app had whole ends at once; a stream's next chunk waits for its producer.
      const soon = await Promise.race([
        next,
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 0)),
      ]);
      if (soon?.done) return thread.outbox.send({ ...head, body: first.value });
      thread.outbox.send(head);
      thread.outbox.send({ k: "chunk", id, chunk: first.value });
      for (let r = await next; !r.done; r = await next) {
        thread.outbox.send({ k: "chunk", id, chunk: r.value });
        next = reader.read();
      }
      thread.outbox.send({ k: "end", id });
    } catch (error) {
      thread.outbox.send({ k: "end", id, failed: error instanceof Error ? error.message : String(error) });
    } finally {
      thread.aborts.delete(id);
    }
  }

  /**
   * Has every thread send the metrics records it keeps (they ride with its messages otherwise, up to 25 ms later);
   * resolves once all are in, or after 1 s (a thread that does not answer is left out).
   */
  #flushRecords(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const all = Promise.all(this.#threads.map((t) =>
      new Promise<void>((resolve) => {
        t.flushed.push(resolve);
        t.outbox.send({ k: "flush" });
      })
    ));
    return Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]).then(() =>
      clearTimeout(timer)
    );
  }

  /** Has the threads ring for every request again (shutdown), and takes what they wrote quietly. */
  #quietNoMore(): void {
    for (const slot of [...this.#quiet.keys()]) this.#unhush(slot);
    queueMicrotask(this.#drainAll);
  }

  /** Stops accepting on every thread; resolves once none accepts new connections. */
  async stopAccepting(): Promise<void> {
    this.#stopping = true;
    this.#quietNoMore();
    clearInterval(this.#admissionTimer);
    this.#admissionTimer = undefined;
    await Promise.all(this.#threads.map((t) =>
      new Promise<void>((resolve) => {
        t.closed = resolve;
        t.outbox.send({ k: "stop" });
      })
    ));
  }

  /**
   * Waits for the requests in flight on every thread, at most `graceMs`. Call {@link stopAccepting} first, and
   * {@link end} after: requests still in flight when the grace is over are answered by the threads once the pools
   * fail them (the runtime's shutdown closes them in between).
   */
  async drain(graceMs: number): Promise<"drained" | "grace period over"> {
    return await this.#settled(graceMs);
  }

  /** Ends the threads, once they have sent the answers still owed (at most `graceMs` more). */
  async end(graceMs = 1000): Promise<void> {
    await this.#settled(graceMs);
    if (FunctionPool.onBusy === this.#onBusy) FunctionPool.onBusy = undefined;
    if (FunctionPool.takeArrivals === this.#takeArrivals) FunctionPool.takeArrivals = undefined;
    mainDoorbell().delete(this.#drainAll);
    for (const t of this.#threads) t.worker.terminate();
  }

  /** Resolves `"drained"` once every thread has answered all it took, or `"grace period over"` after `ms`. */
  async #settled(ms: number): Promise<"drained" | "grace period over"> {
    const drained = Promise.all(this.#threads.map((t) => t.drained)).then(() => "drained" as const);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      drained,
      new Promise<"grace period over">((resolve) => (timer = setTimeout(resolve, ms, "grace period over"))),
    ]);
    clearTimeout(timer);
    return outcome;
  }
}
