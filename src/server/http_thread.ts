/**
 * One HTTP thread (a Worker of the runtime's own code, not an isolate): it
 * accepts connections on the runtime's port beside its siblings
 * (`SO_REUSEPORT`), parses HTTP, reads bodies, decodes v2 tensors and writes
 * answers, so that the main thread keeps only the queues, the batcher and the
 * isolates. Invocations of a function that needs no auth and no CORS go to
 * the main thread's pool as one small operation; every other request goes
 * there whole and its answer comes back as chunks. The two routes that carry
 * the load (a tensor function's `/v1` JSON and v2 `infer`) are served ahead
 * of the thread's Hono app when every check before the body passes
 * ({@link hotRequest}).
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { getConnInfo } from "hono/deno";
import { IsolaneError } from "../errors.ts";
import { IdTable } from "../id_table.ts";
import { bufferLogs, flushLogs, log, logDeferred, setLogLevel } from "../log.ts";
import type { LinkReply, SharedTensor, WireTensor } from "../protocol.ts";
import { outputsToJsonBody, outputsToJsonBytes, wireFromJsonBody } from "../tensors.ts";
import { BodyLimits, guardBodyRead, isJson } from "./body_guard.ts";
import { errorResponse, errorResponseOf, v2ErrorResponse } from "./error_response.ts";
import { type FunctionProfile, Outbox, type ToMain, type ToThread, type WholeLimits } from "./http_bridge.ts";
import { invokeFunction } from "./invoke_route.ts";
import { type ArenaBlock, TensorArena } from "./tensor_arena.ts";
import { Packer } from "../packed.ts";
import { Doorbell, RingWriter } from "../op_ring.ts";
import { type AnswerRingOffer, AnswerRingReader } from "../answer_ring.ts";
import { serveInfer } from "./kserve_routes.ts";
import { givenRequestId, hotPath, plainBodyWithin, takesInferType } from "./hot_route.ts";
import { answerInferRequest, inferenceHeaderLength, inferResponseHeaders } from "./kserve.ts";
import type { TensorSignature } from "../sdk.ts";

type Pending = {
  resolve: (value: { body?: ArrayBuffer; tensors?: WireTensor[] }) => void;
  reject: (error: Error) => void;
  onItem?: (body: ArrayBuffer) => void;
  /** The request's signal and what it tells the main thread on abort, until the answer comes. */
  signal?: AbortSignal;
  onAbort?: () => void;
};
type PendingWhole = {
  resolve: (response: Response) => void;
  reject: (error: Error) => void;
  controller?: ReadableStreamDefaultController<Uint8Array>;
  method: string;
};

/** The main thread answered that the function now needs its request whole (auth or CORS). */
class SendWhole extends Error {}

const scope = self as unknown as {
  postMessage(ops: ToMain[], transfer: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToThread[]>) => void) | null;
};
const outbox = new Outbox<ToMain>((ops, transfer) => {
  infers = undefined;
  if (records) {
    ops.push(records);
    records = undefined;
  }
  scope.postMessage(ops, transfer);
});
/** The packed infer requests of the outbox's next message (see `ToMain` "infers"), if it has any. */
let infers: Packer | undefined;

/**
 * Queues an operation for the main thread; infer requests with shared tensors are packed, those of one turn in one
 * message. Requests are not held back to fill a message: holding each until the thread's next answer (at most 2 ms,
 * 32 requests) cut the main thread's CPU per answer on the 2-core VM, but on the 16-core GPU host it cost the
 * 8×1024 MLP at c=64 a quarter of its throughput (19,284 → 14,704 rps; KServe v2 binary 26,559 → 19,054;
 * docs/gpu-results.md).
 */
function post(op: ToMain, transfer: Transferable[]): void {
  if (op.k !== "infer" || !op.shared) return outbox.send(op, transfer);
  // The ring costs the main thread no message; a request it has no room for goes as before.
  if (ring?.infer(op as typeof op & { shared: SharedTensor[] })) return;
  if (!infers) {
    infers = new Packer();
    outbox.send({ k: "infers", nums: infers.nums, strings: infers.strings });
  }
  pack(infers, op);
}

function pack(packer: Packer, op: Extract<ToMain, { k: "infer" }>): void {
  packer.nums.push(op.id, op.version, packer.string(op.name), packer.unique(op.requestId));
  packer.shared(op.shared!);
}

/** Metrics records not sent yet: they ride with the thread's next message, or go alone within {@link recordsMs}. */
let records: Extract<ToMain, { k: "records" }> | undefined;
let recordsTimer: ReturnType<typeof setTimeout> | undefined;
/**
 * How long a record waits for a message to ride with. A message of its own after each answer cost the main thread
 * one more message per request; a scrape of `/metrics` asks for the records first (`flush`), so it misses none.
 */
const recordsMs = 25;

/** Counts an invocation answered here in the main thread's metrics. */
function record(fn: string, status: number, ms: number): void {
  if (!records) {
    records = { k: "records", fn: [], status: [], ms: [] };
    recordsTimer ??= setTimeout(sendRecords, recordsMs);
  }
  records.fn.push(fn);
  records.status.push(status);
  records.ms.push(ms);
}

/** Sends the records kept, if any, with the outbox's next message. */
function sendRecords(): void {
  clearTimeout(recordsTimer);
  recordsTimer = undefined;
  if (!records) return;
  const op = records;
  records = undefined;
  outbox.send(op);
}
let profiles = new Map<string, FunctionProfile>();
/** Requests in flight by id (an {@link IdTable}: a long-lived `Map`'s old tables would keep them through scavenges). */
const pending = new IdTable<Pending>();
/** Requests sent whole, by id (an {@link IdTable}, as `pending`). */
const whole = new IdTable<PendingWhole>();
let nextId = 1;
let server: Deno.HttpServer<Deno.NetAddr> | undefined;
let threadIndex = 0;
let admission: Int32Array | undefined;
let maxWholeBytes = 256 * 1024 * 1024;
let wholeTimeoutMs = 300_000;
/** The limits of functions whose invocations go whole (auth or CORS). */
let wholeFunctions = new Map<string, WholeLimits>();
const wholeLimits = new BodyLimits();
/** The limit of a body sent whole that is no invocation (a bundle, say): `maxWholeBytes`, as the admin API's. */
let wholeLimit = wholeLimitOf(maxWholeBytes);

function wholeLimitOf(size: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: size,
    onError: () => {
      throw new IsolaneError(
        "body_too_large",
        `Request body is larger than ${size} bytes, the most the runtime reads of one (ISOLANE_MAX_BUNDLE_BYTES)`,
      );
    },
  });
}
let arena: TensorArena | undefined;
/** Where infer requests of the arena go to the main thread (`op_ring.ts`). */
let ring: RingWriter | undefined;
/** Direct links to isolates: their answers to infer operations whose tensors lie in the arena. */
const links = new Map<number, MessagePort>();
/** Each link's answer ring (`answer_ring.ts`), which its isolate writes instead of posting on the port. */
const answerRings = new Map<number, AnswerRingReader>();
/** Rung by isolates that published answers in a ring of this thread while no drain was due. */
let answerBell: Doorbell | undefined;

function settle(id: number, value: { tensors: WireTensor[] }): void {
  take(id)?.resolve(value);
}

function settleAnswer(id: number, tensors: WireTensor[]): void {
  take(id)?.resolve({ tensors });
}

/** Takes the answers isolates published in this thread's answer rings. */
function drainAnswers(): void {
  for (const ring of answerRings.values()) ring.drain(settleAnswer);
}

/**
 * Places tensors in the arena, so that the isolate reads them there; `undefined` (nothing kept) when one does not
 * fit, and they then cross to the main thread as usual.
 */
function placeAll(tensors: WireTensor[]): { shared: SharedTensor[]; blocks: ArenaBlock[] } | undefined {
  if (!arena) return undefined;
  const shared: SharedTensor[] = [];
  const blocks: ArenaBlock[] = [];
  for (const t of tensors) {
    const block = arena.place(t.data);
    if (!block) {
      for (const b of blocks) arena.free(b);
      return undefined;
    }
    blocks.push(block);
    shared.push({ name: t.name, datatype: t.datatype, shape: t.shape, offset: block.offset, bytes: t.data.byteLength });
  }
  return { shared, blocks };
}

/** Sends one invocation or infer operation and waits for its answer; aborts travel too. */
function call(
  make: (id: number) => { op: ToMain; transfer: Transferable[] },
  signal: AbortSignal | undefined,
  onItem?: (body: ArrayBuffer) => void,
): Promise<{ body?: ArrayBuffer; tensors?: WireTensor[] }> {
  const id = nextId++;
  const { op, transfer } = make(id);
  return new Promise((resolve, reject) => {
    const p: Pending = { resolve, reject };
    if (onItem) p.onItem = onItem;
    if (signal) {
      p.signal = signal;
      p.onAbort = abortOf(id);
      signal.addEventListener("abort", p.onAbort);
    }
    pending.set(id, p);
    post(op, transfer);
  });
}

/**
 * The listener that sends the abort of request `id` to the main thread. Made here, not inline in {@link call}: an
 * inline one's context is `call`'s (the operation with its tensors, the signal, `onItem`), which the request's signal
 * then keeps; with it, an HTTP thread's heap grew about 1 MB a scavenge under load (docs/hop.md, eighth round).
 */
function abortOf(id: number): () => void {
  return () => outbox.send({ k: "abort", id });
}

/** The request waiting for answer `id`, no longer waiting (its abort listener removed); `undefined` if none. */
function take(id: number): Pending | undefined {
  const p = pending.get(id);
  if (!p) return undefined;
  pending.delete(id);
  if (p.onAbort) p.signal!.removeEventListener("abort", p.onAbort);
  return p;
}

/**
 * Whether the main thread admits a request to `name` now: its refusal (the pool's own, reason and `Retry-After` as
 * Hono's route gives them), or `undefined`. Asked only when the board refuses, before the body is read, so a 429
 * still costs no body and a board that lags a drained queue refuses nothing.
 */
async function admit(name: string): Promise<IsolaneError | undefined> {
  try {
    await call((id) => ({ op: { k: "admit", id, name }, transfer: [] }), undefined);
    return undefined;
  } catch (error) {
    if (!(error instanceof IsolaneError)) throw error;
    return error;
  }
}

/**
 * Sends one infer request for `name` at `version` to the main thread and waits for its output tensors: its tensors
 * placed in the arena when they fit (the main thread then gets where they lie, not their bytes), else transferred.
 */
async function inferOn(
  name: string,
  version: number,
  tensors: WireTensor[],
  signal: AbortSignal | undefined,
  requestId: string,
): Promise<WireTensor[]> {
  const placed = placeAll(tensors);
  if (placed) {
    // The blocks are free again once answered.
    try {
      const answer = await call((id) => ({
        op: { k: "infer", id, name, version, shared: placed.shared, requestId },
        transfer: [],
      }), signal);
      return answer.tensors ?? [];
    } finally {
      for (const b of placed.blocks) arena!.free(b);
    }
  }
  const answer = await call((id) => ({
    op: { k: "infer", id, name, version, tensors, requestId },
    transfer: tensors.map((t) => t.data),
  }), signal);
  return answer.tensors ?? [];
}

/**
 * A pool on the main thread, as the routes see it. Where the admission board shows no refusal, a request goes on at
 * once; where it shows one, the main thread, which holds the queue, decides before the body is read ({@link admit}).
 */
function remotePool(name: string, slot = -1) {
  return {
    refusal: (): Promise<IsolaneError | undefined> | undefined => {
      const seconds = slot >= 0 && admission ? Atomics.load(admission, slot) : 0;
      return seconds > 0 ? admit(name) : undefined;
    },
    async invoke(
      body: ArrayBuffer,
      options: { signal?: AbortSignal; requestId?: string; contentType?: string; onItem?: (b: ArrayBuffer) => void },
    ): Promise<ArrayBuffer> {
      const answer = await call(
        (id) => ({
          op: {
            k: "invoke",
            id,
            name,
            body,
            requestId: options.requestId ?? "",
            ...(options.contentType ? { contentType: options.contentType } : {}),
          },
          // Copied, not transferred: Hono keeps the body it read, and a request sent whole after all needs it.
          transfer: [],
        }),
        options.signal,
        options.onItem,
      );
      return answer.body!;
    },
    infer(
      tensors: WireTensor[],
      options: { signal?: AbortSignal; requestId?: string },
      version = 0,
    ): Promise<WireTensor[]> {
      return inferOn(name, version, tensors, options.signal, options.requestId ?? "");
    },
  };
}

/** What a thread's routes keep on a request: whether it was sent whole (the main thread logs and counts those). */
type ThreadEnv = { Variables: { whole: boolean } };

/** Sends the request whole to the main thread's app; resolves with its answer (streamed if the app streams). */
async function sendWhole(c: Context<ThreadEnv>): Promise<Response> {
  const request = c.req.raw;
  // The app reads a body only on POST (invocations, rollbacks) and PUT (deploys): one sent with an OPTIONS or a DELETE
  // is not waited for here either (a preflight whose body stalls was answered 408 at the upload deadline, not 204).
  const hasBody = request.method === "POST" || request.method === "PUT";
  let body: ArrayBuffer | undefined;
  if (hasBody) {
    // The app limits each route's body; this bounds what a thread holds before the app sees it, and how long it waits
    // for it: an invocation's body by its function's limits, as the app would, any other by the admin API's.
    // The name as the route decoded it, as the app's route will (`/v1/functions/k%65yed` is `keyed`); none on `*`.
    const name = request.method === "POST" ? c.req.param("name") : undefined;
    const fn = name !== undefined ? wholeFunctions.get(name) ?? profiles.get(name) : undefined;
    await guardBodyRead(
      () =>
        (fn ? wholeLimits.for(fn.maxBodyBytes) : wholeLimit)(c, async () => {
          body = await c.req.arrayBuffer();
        }),
      fn?.timeoutMs ?? wholeTimeoutMs,
      fn ? {} : { deadlineName: "ISOLANE_UPLOAD_TIMEOUT_MS" },
    );
  }
  // From here the main thread logs and counts it; a body that failed to arrive is this thread's to log.
  c.set("whole", true);
  const remote = getConnInfo(c).remote;
  return await forward(request, { hostname: remote.address ?? "", port: remote.port ?? 0 }, body);
}

/** Sends `request` (its body read already, if any) to the main thread's app; resolves with its answer. */
function forward(request: Request, remote: { hostname: string; port: number }, body?: ArrayBuffer): Promise<Response> {
  const id = nextId++;
  return new Promise<Response>((resolve, reject) => {
    whole.set(id, { resolve, reject, method: request.method });
    request.signal.addEventListener("abort", () => outbox.send({ k: "abort", id }), { once: true });
    outbox.send({
      k: "request",
      id,
      method: request.method,
      url: request.url,
      headers: [...request.headers],
      ...(body ? { body } : {}),
      remote,
    }, body ? [body] : undefined);
  });
}

/** A request of a hot route whose checks before the body all passed: what serving it needs. */
interface HotRequest {
  name: string;
  path: string;
  profile: FunctionProfile & { signature: TensorSignature };
  /** `POST /v2/models/:name[/versions/:version]/infer`, else `POST /v1/functions/:name`. */
  v2: boolean;
}

/**
 * The hot routes of a tensor function that a thread invokes directly (`POST /v1/functions/:name` with a JSON body,
 * `POST /v2/models/:name[/versions/:version]/infer`, neither with a `Content-Encoding`), when every check before the body
 * passes: a path without escapes, a `Content-Length` within the function's limit and no `Transfer-Encoding`, a type
 * the route takes, and no refusal on the admission board. Anything else, and any answer those checks would give
 * (413, 415, 429, a request sent whole), is Hono's, which has read nothing of the body yet. These two routes are
 * the bulk of the load, and Hono's middleware, router and context cost a thread more than their own work.
 */
function hotRequest(request: Request): HotRequest | undefined {
  if (request.method !== "POST") return undefined;
  const hot = hotPath(request.url);
  if (!hot) return undefined;
  const { name, path, version, v2 } = hot;
  const profile = profiles.get(name);
  if (!profile?.signature) return undefined;
  if (version !== undefined && version !== String(profile.version)) return undefined;
  const headers = request.headers;
  if (!plainBodyWithin(headers, profile.maxBodyBytes)) return undefined;
  const type = headers.get("content-type");
  if (v2) {
    if (!takesInferType(type)) return undefined;
  } else if (type === null || !isJson(type)) return undefined;
  if (profile.slot >= 0 && admission && Atomics.load(admission, profile.slot) > 0) return undefined;
  return { name, path, profile: profile as HotRequest["profile"], v2 };
}

/**
 * Serves a {@link hotRequest} as Hono's routes would: the same request id, body deadline, decoding, answer,
 * error shapes, metrics record and log line; a function that now needs its request whole gets it sent whole.
 */
async function serveHot(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>, hot: HotRequest) {
  const started = performance.now();
  const requestId = givenRequestId(request.headers) ?? crypto.randomUUID();
  const { name, profile, v2 } = hot;
  let body: ArrayBuffer | undefined;
  let response: Response;
  try {
    body = await guardBodyRead(() => request.arrayBuffer(), profile.timeoutMs);
    const signal = request.signal;
    if (v2) {
      response = await answerInferRequest(
        profile.signature,
        new Uint8Array(body),
        request.headers.get(inferenceHeaderLength) ?? undefined,
        { name, version: profile.version },
        (inputs) => inferOn(name, profile.version, inputs, signal, requestId),
        (encoded) =>
          new Response(encoded.body as Uint8Array<ArrayBuffer>, { headers: inferResponseHeaders(encoded, requestId) }),
        { reuse: true },
      );
    } else {
      const outputs = await inferOn(
        name,
        profile.version,
        wireFromJsonBody(profile.signature, body),
        signal,
        requestId,
      );
      response = new Response(outputsToJsonBytes(outputs), {
        headers: [["x-request-id", requestId], ["content-type", "application/json"]],
      });
    }
  } catch (error) {
    if (error instanceof SendWhole) {
      // The main thread logs and counts it; a failure to relay it is answered as Hono's app would.
      try {
        return await forward(request, { hostname: info.remoteAddr.hostname, port: info.remoteAddr.port }, body);
      } catch (relayError) {
        return errorResponseOf(relayError, { path: hot.path, requestId, v2 });
      }
    }
    response = errorResponseOf(error, { path: hot.path, requestId, v2 });
  }
  const ms = performance.now() - started;
  record(name, response.status, ms);
  logDeferred("info", "request", {
    id: requestId,
    method: "POST",
    path: hot.path,
    status: response.status,
    ms: Math.round(ms * 10) / 10,
    thread: threadIndex,
  });
  return response;
}

function app(): Hono<ThreadEnv> {
  const limits = new BodyLimits();
  const app = new Hono<ThreadEnv>();
  app.use(requestId());
  app.use(async function threadLog(c, next) {
    const started = performance.now();
    await next();
    if (c.get("whole")) return; // the main thread logged and counted it
    const ms = performance.now() - started;
    const fn = c.req.param("name");
    // As the main thread counts it: a name no function has (a body sent whole that failed here) is "unknown".
    if (fn !== undefined) {
      record(profiles.has(fn) || wholeFunctions.has(fn) ? fn : "unknown", c.res.status, ms);
    }
    logDeferred("info", "request", {
      id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(ms * 10) / 10,
      thread: threadIndex,
    });
  });
  app.onError(errorResponse);
  app.post("/v1/functions/:name", async (c) => {
    const name = c.req.param("name");
    const profile = profiles.get(name);
    if (!profile) return await sendWhole(c);
    const remote = remotePool(name, profile.slot);
    const { signature } = profile;
    // A tensor function's JSON body is decoded here, as the isolate would, and its rows count for the batcher.
    const pool = signature
      ? {
        refusal: remote.refusal,
        invoke: async (body: ArrayBuffer, options: Parameters<typeof remote.invoke>[1]) => {
          if (options.contentType !== undefined) return await remote.invoke(body, options);
          const outputs = await remote.infer(wireFromJsonBody(signature, body), options, profile.version);
          return outputsToJsonBody(outputs);
        },
      }
      : remote;
    try {
      return await invokeFunction(c, { options: optionsOf(profile), pool }, limits);
    } catch (error) {
      if (error instanceof SendWhole) return await sendWhole(c);
      throw error;
    }
  });
  const infer = async (c: Context<ThreadEnv>) => {
    const name = c.req.param("name")!;
    const profile = profiles.get(name);
    const version = c.req.param("version");
    if (!profile?.signature || (version !== undefined && version !== String(profile.version))) {
      // What goes wrong here (the body, read here first) is answered in the protocol's shape, as the app would.
      return await sendWhole(c).catch((error) => v2ErrorResponse(error, c));
    }
    const pool = remotePool(name, profile.slot);
    try {
      return await serveInfer(c, {
        name,
        version: profile.version,
        signature: profile.signature,
        maxBodyBytes: profile.maxBodyBytes,
        timeoutMs: profile.timeoutMs,
        pool: {
          refusal: pool.refusal,
          infer: (tensors, options) => pool.infer(tensors, options ?? {}, profile.version),
        },
      }, limits);
    } catch (error) {
      if (error instanceof SendWhole) return await sendWhole(c).catch((e) => v2ErrorResponse(e, c));
      return v2ErrorResponse(error, c);
    }
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);
  app.all("*", sendWhole);
  return app;
}

function optionsOf(profile: FunctionProfile) {
  return {
    maxBodyBytes: profile.maxBodyBytes,
    timeoutMs: profile.timeoutMs,
    raw: profile.accepts.length ? { accepts: profile.accepts } : undefined,
  };
}

const noBody = new Set([101, 204, 205, 304]);

function receive(op: ToThread): void {
  switch (op.k) {
    case "init": {
      setLogLevel(op.logLevel);
      bufferLogs();
      threadIndex = op.index;
      maxWholeBytes = op.maxWholeBytes;
      wholeLimit = wholeLimitOf(maxWholeBytes);
      wholeTimeoutMs = op.wholeTimeoutMs;
      admission = new Int32Array(op.board);
      arena = new TensorArena(op.arena);
      // A board value of -1: the function's isolates are all busy, so the main thread takes its requests when a batch
      // finishes rather than being rung for each (`HttpThreads`).
      ring = new RingWriter(op.ring, op.bell, {
        quiet(name) {
          const slot = profiles.get(name)?.slot ?? -1;
          return slot >= 0 && Atomics.load(admission!, slot) < 0;
        },
      });
      const handler = app().fetch;
      try {
        server = Deno.serve({
          hostname: op.host,
          port: op.port,
          reusePort: op.reusePort,
          onListen: () => {},
        }, (request, info) => {
          const hot = hotRequest(request);
          return hot ? serveHot(request, info, hot) : handler(request, info);
        });
        outbox.send({ k: "listening", port: (server.addr as Deno.NetAddr).port });
      } catch (error) {
        outbox.send({ k: "listen_failed", message: error instanceof Error ? error.message : String(error) });
      }
      return;
    }
    case "profiles":
      profiles = new Map(Object.entries(op.profiles));
      wholeFunctions = op.wholeFunctions;
      outbox.send({ k: "profiled", seq: op.seq });
      return;
    case "link": {
      links.set(op.link, op.port);
      op.port.onmessage = (event: MessageEvent<LinkReply>) => {
        for (const reply of event.data) settle(reply.id, reply);
      };
      const ring = new AnswerRingReader();
      answerRings.set(op.link, ring);
      if (!answerBell) {
        answerBell = new Doorbell();
        answerBell.add(drainAnswers);
      }
      const offer: AnswerRingOffer = { k: "answer-ring", ring: ring.ring, bell: answerBell.buffer };
      op.port.postMessage(offer);
      return;
    }
    case "unlink":
      answerRings.get(op.link)?.drain(settleAnswer);
      answerRings.delete(op.link);
      links.get(op.link)?.close();
      links.delete(op.link);
      return;
    case "done":
      take(op.id)?.resolve(op);
      return;
    case "item":
      pending.get(op.id)?.onItem?.(op.body);
      return;
    case "error":
      take(op.id)?.reject(new IsolaneError(op.error.code, op.error.message, op.error.details, op.headers));
      return;
    case "whole":
      take(op.id)?.reject(new SendWhole());
      return;
    case "head": {
      const w = whole.get(op.id);
      if (!w) return;
      const empty = noBody.has(op.status) || w.method === "HEAD";
      if (op.body !== undefined || empty) {
        // A body the app had whole: sent with its length, not chunked.
        whole.delete(op.id);
        w.resolve(
          new Response(empty ? null : op.body as Uint8Array<ArrayBuffer>, { status: op.status, headers: op.headers }),
        );
        return;
      }
      const id = op.id;
      const stream = new ReadableStream<Uint8Array>({
        start: (ctrl) => void (w.controller = ctrl),
        // The client went away: the main thread stops reading the app's stream.
        cancel: () => {
          if (whole.delete(id)) outbox.send({ k: "abort", id });
        },
      });
      w.resolve(new Response(stream, { status: op.status, headers: op.headers }));
      return;
    }
    case "chunk":
      try {
        whole.get(op.id)?.controller?.enqueue(op.chunk);
      } catch {
        // The stream was cancelled between the chunk's sending and its arrival.
      }
      return;
    case "end": {
      const w = whole.get(op.id);
      whole.delete(op.id);
      if (!w) return;
      try {
        if (op.failed) {
          if (w.controller) w.controller.error(new Error(op.failed));
          else w.reject(new Error(op.failed));
        } else w.controller?.close();
      } catch {
        // Cancelled already.
      }
      return;
    }
    case "flush":
      sendRecords();
      outbox.send({ k: "flushed" });
      return;
    case "stop": {
      // shutdown() stops accepting at once, then waits for the requests in flight.
      const drained = server?.shutdown();
      outbox.send({ k: "closed" });
      void drained?.then(() => {
        sendRecords();
        flushLogs();
        outbox.send({ k: "stopped" });
      });
      return;
    }
  }
}

// A bug met by one request must not end the thread, and with it every connection it holds.
self.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  log("error", "unexpected error", { thread: threadIndex, reason: String(event.reason) });
});
self.addEventListener("error", (event) => {
  event.preventDefault();
  log("error", "unexpected error", { thread: threadIndex, reason: event.message });
});

scope.onmessage = (event) => {
  // Answers an isolate published before the main thread wrote this come first (an isolate's failure after them, say).
  drainAnswers();
  for (const op of event.data) receive(op);
};
