/**
 * The messages between the runtime's main thread and its HTTP threads
 * (`http_threads.ts`, `http_thread.ts`), and the outbox that coalesces them:
 * every message is a list of operations, so that all requests a thread
 * handles in one turn of its event loop cost one `postMessage`. Bodies and
 * tensors cross as transferable `ArrayBuffer`s, never as object trees.
 * @module
 */
import type { ErrorBody } from "../errors.ts";
import type { LogLevel } from "../log.ts";
import type { SharedTensor, WireTensor } from "../protocol.ts";
import type { TensorSignature } from "../sdk.ts";

/**
 * What an HTTP thread knows of a function it may invoke directly: one that
 * needs no invocation auth and no CORS. Any other function's requests go to
 * the main thread whole.
 */
export interface FunctionProfile {
  version: number;
  /** The function's body limit in bytes. */
  maxBodyBytes: number;
  /** The function's `timeoutMs`, which also bounds the body's arrival. */
  timeoutMs: number;
  /** Its slot on the admission board (see {@link admissionSlots}). */
  slot: number;
  /** Raw media types it takes besides JSON. */
  accepts: string[];
  /** Its tensor signature, if it is a v2 model. */
  signature?: TensorSignature;
}

/** The body limits of a function whose invocations an HTTP thread sends whole: its `timeoutMs` and `maxBodyBytes`. */
export interface WholeLimits {
  timeoutMs: number;
  maxBodyBytes: number;
}

/** Main thread to HTTP thread. */
export type ToThread =
  | {
    k: "init";
    index: number;
    host: string;
    port: number;
    reusePort: boolean;
    logLevel: LogLevel;
    /** The most a thread reads of a request it sends whole (the largest bundle the admin API takes). */
    maxWholeBytes: number;
    /**
     * How long a thread waits for the body of a request it sends whole, other than an invocation of a function in
     * `wholeFunctions` (`ISOLANE_UPLOAD_TIMEOUT_MS`, the admin API's); past it, 408.
     */
    wholeTimeoutMs: number;
    /**
     * The admission board: an `Int32Array` over this shared memory, one slot per function; a slot above 0 says the
     * function's queue refuses work now, and holds its `Retry-After` in seconds. Threads read it before a body.
     */
    board: SharedArrayBuffer;
    /** The thread's tensor arena (`tensor_arena.ts`), where it leaves the input tensors of infer operations. */
    arena: SharedArrayBuffer;
    /** The thread's operation ring and the doorbell all threads share (`op_ring.ts`): its arena infers go there. */
    ring: SharedArrayBuffer;
    bell: SharedArrayBuffer;
  }
  /** A direct link to an isolate (Worker hosts): it answers infer operations with `shared` tensors on `port`. */
  | { k: "link"; link: number; port: MessagePort }
  /** The link's isolate ended. */
  | { k: "unlink"; link: number }
  /** The functions the thread serves directly; it answers `profiled` with `seq` once it serves by them. */
  | {
    k: "profiles";
    profiles: Record<string, FunctionProfile>;
    /**
     * The limits of each other function that serves (one with auth or CORS, whose requests go whole): they bound an
     * invocation's body that the thread reads to send whole, as the main thread's route would (413, 408).
     */
    wholeFunctions: Map<string, WholeLimits>;
    seq: number;
  }
  /** An invocation's answer: a JSON body, or tensors of an infer request. */
  | { k: "done"; id: number; body?: ArrayBuffer; tensors?: WireTensor[] }
  /** One item of a handler that streams. */
  | { k: "item"; id: number; body: ArrayBuffer }
  | { k: "error"; id: number; error: ErrorBody; headers?: Record<string, string> }
  /** The function now needs auth or CORS: send the request whole. */
  | { k: "whole"; id: number }
  /** The head of the answer to a whole request, with its body if it was whole; else chunks follow. */
  | { k: "head"; id: number; status: number; headers: [string, string][]; body?: Uint8Array }
  | { k: "chunk"; id: number; chunk: Uint8Array }
  | { k: "end"; id: number; failed?: string }
  /** Send the metrics records kept now, then `flushed`. */
  | { k: "flush" }
  /** Stop accepting, finish what is in flight, then say `stopped`. */
  | { k: "stop" };

/** HTTP thread to main thread. */
export type ToMain =
  | { k: "listening"; port: number }
  | { k: "listen_failed"; message: string }
  | { k: "invoke"; id: number; name: string; body: ArrayBuffer; contentType?: string; requestId: string }
  /**
   * An infer request: its tensors, or (`shared`) where they lie in the thread's arena, without `tensors`. A shared
   * one is answered on a link when its isolate has one to the thread, else by `done`.
   */
  | {
    k: "infer";
    id: number;
    name: string;
    version: number;
    tensors?: WireTensor[];
    shared?: SharedTensor[];
    requestId: string;
  }
  /**
   * Infer requests whose tensors lie in the thread's arena, packed (`packed.ts`): for each, its id, version, function
   * name, request id (strings), then its shared tensors. As `infer` with `shared`, without an object per request.
   */
  | { k: "infers"; nums: number[]; strings: string[] }
  /** A request served by the main thread's app as it came. */
  | {
    k: "request";
    id: number;
    method: string;
    url: string;
    headers: [string, string][];
    body?: ArrayBuffer;
    remote: { hostname: string; port: number };
  }
  /** The client went away. */
  | { k: "abort"; id: number }
  /**
   * The admission board refuses `name`: may a request be admitted all the same? Answered `done` (yes) or `error`
   * (the main thread's refusal). The board can lag the queue: an isolate answers a thread before the main thread
   * hears that its batch is done.
   */
  | { k: "admit"; id: number; name: string }
  /**
   * Invocations answered by the thread since its last message, for the metrics: function, HTTP status and ms from
   * request to response of each, in three lists (cheaper to pass than an object each).
   */
  | { k: "records"; fn: string[]; status: number[]; ms: number[] }
  /** Its records are sent (they came before this): the answer to `flush`. */
  | { k: "flushed" }
  /** The thread serves by the `profiles` numbered `seq` (and every one before). */
  | { k: "profiled"; seq: number }
  /** It no longer accepts connections. */
  | { k: "closed" }
  /** Its requests in flight are answered. */
  | { k: "stopped" };

/** Functions the admission board has room for; functions past it are refused by the main thread alone. */
export const admissionSlots = 4096;

/**
 * Collects operations and posts them as one message at the end of the
 * current turn (a microtask), with their buffers transferred.
 */
export class Outbox<T> {
  #ops: T[] = [];
  #transfer: Transferable[] = [];
  #scheduled = false;

  /** `post` sends one message: the operations, and the buffers to transfer. */
  constructor(private readonly post: (ops: T[], transfer: Transferable[]) => void) {}

  /** Queues `op`; `transfer` lists buffers it hands over (they are detached once posted). */
  send(op: T, transfer?: Transferable[]): void {
    this.#ops.push(op);
    if (transfer) { for (const t of transfer) this.#transfer.push(t); }
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  #flush = (): void => {
    this.#scheduled = false;
    const ops = this.#ops;
    const transfer = this.#transfer;
    this.#ops = [];
    this.#transfer = [];
    this.post(ops, transfer);
  };
}
