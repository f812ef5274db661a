/**
 * What every isolate runs, whichever host holds it (a Deno Worker, or a child
 * process's main thread): it binds the lane, loads ONNX Runtime while it still
 * may, drops the ffi permission, and only then imports the user's module, so
 * user code can never load native code. The host is reached through a
 * {@link IsolatePort}; `worker_entry.ts` and `process_entry.ts` provide one.
 * @module
 */
import {
  answerBytes,
  type HostMessage,
  type InitMessage,
  type IsolateMessage,
  type Job,
  type JobResult,
  type LinkReply,
  type ModelInfo,
  noBody,
  type SharedTensor,
  type SharedWeights,
  transferablesOf,
} from "../protocol.ts";
import { unpackJobs } from "../packed.ts";
import { Doorbell, RingReader, RingWriter } from "../op_ring.ts";
import { AnswerRingWriter, isAnswerRingOffer } from "../answer_ring.ts";
import { IsolaneError } from "../errors.ts";
import { IdTable } from "../id_table.ts";
import { loadOrt } from "../inference/ort.ts";
import { describeSession, modelRoot } from "../inference/session.ts";
import {
  closeUnusedNativeOrt,
  createCpuSession,
  createLaneSession,
  freeWeights,
  laneRunError,
  type LaneSession,
  mapStaging,
  openNativeOrt,
  preopenNativeOrt,
  uploadWeights,
} from "../inference/native.ts";
import { allowModelsOnce, reserveModels } from "../inference/model_access.ts";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { InferenceSession } from "onnxruntime-common";
import { manifestOf, modelHandlerOf } from "./inspect.ts";
import { graphBatchSizes, oneRunAtATime, type StagedModel, stagedModel } from "./staged_model.ts";
import { type CheckedOutput, pinFloat16AsUint16, type ViewedWireTensor } from "./tensor_input.ts";
import { datatypes, isDatatype } from "../tensors.ts";
import { type LoadedFunction, loadFunctionModule, messageOf } from "./load_module.ts";
import { runBatch, type RunContext, runJob, runJsonBatch } from "./run_job.ts";
import { guardExit } from "./exit_guard.ts";
import { giveScratch, takeScratch } from "./scratch.ts";
import { captureConsole } from "./console_capture.ts";
import { type OpenedLane, openGpuLane } from "./gpu_lane.ts";

/** How an isolate talks to its host. */
export interface IsolatePort {
  /** Sends a message; `transfer` lists buffers the isolate gives up. */
  post(message: IsolateMessage, transfer?: ArrayBuffer[]): void;
  /** Ends the isolate (after a planned shutdown). */
  exit(): void;
}

let port: IsolatePort;
let serving:
  | { loaded: LoadedFunction; run: RunContext; sessions: { release(): Promise<void> }[]; arena?: { close(): void } }
  | undefined;
let gpuLane: OpenedLane | undefined;
const aborts = new IdTable<AbortController>();
/**
 * Direct links to HTTP threads (Worker hosts): where a job's inputs lie and where its answer goes (the thread's
 * answer ring once it offered one, else the port).
 */
const links = new Map<number, { port: MessagePort; arena: SharedArrayBuffer; answers?: AnswerRingWriter }>();
/** Where the ids of a batch answered wholly on links go to the host, with no message (see `LinkMessage.rings`). */
let done: RingWriter | undefined;
/** Where the host writes runs of jobs answered on links, read when it rings (see `LinkMessage.rings`). */
let jobRing: RingReader | undefined;
/**
 * Runs from the ring that name a link whose message has not come yet: the host posts a link before the first job
 * that names it, but the ring can be read before the message arrives. They run once it has.
 */
let awaitingLink: Job[][] = [];
/** Links dropped (link ids are never reused). */
const unlinked = new Set<number>();
const jobSink = {
  jobs(jobs: Job[]): void {
    // A link dropped already (its thread died) never comes: such a job runs, and fails for want of its inputs.
    if (jobs.some((job) => !links.has(job.reply!.link) && !unlinked.has(job.reply!.link))) {
      return void awaitingLink.push(jobs);
    }
    void runJobs(jobs, takeShared(jobs));
  },
};

/** Runs the jobs the host wrote in the ring so far. */
function drainJobs(): void {
  jobRing?.drain(jobSink);
}

/**
 * Copies the inputs of jobs an HTTP thread left in its arena into their own buffers, at once: the thread reuses its
 * arena once the request is answered, which an abort or deadline may do before the run starts.
 */
function takeShared(jobs: Job[]): Uint8Array<ArrayBuffer> | undefined {
  // A runModel handler's inputs reach no user code: the run's fixed-size tensors share one buffer kept for reuse (no
  // allocation per tensor, nor per run once warm), each job's a view of its region (ViewedWireTensor). The buffer is
  // returned for runJobs to give back once the jobs are done.
  const pooled = serving?.run.model ? pooledBytes(jobs) : 0;
  const pool = pooled > 0 ? takeScratch(pooled) : undefined;
  let at = 0;
  for (const job of jobs) {
    if (!job.shared || !job.reply) continue;
    const arena = links.get(job.reply.link)?.arena;
    if (!arena) job.tensors = [];
    else if (!pool) {
      job.tensors = job.shared.map((t) => ({
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
        data: new Uint8Array(arena, t.offset, t.bytes).slice().buffer,
      }));
    } else {
      const tensors: ViewedWireTensor[] = new Array(job.shared.length);
      for (let i = 0; i < tensors.length; i++) {
        const t = job.shared[i];
        const source = new Uint8Array(arena, t.offset, t.bytes);
        if (!poolable(t)) {
          tensors[i] = { name: t.name, datatype: t.datatype, shape: t.shape, data: source.slice().buffer };
          continue;
        }
        pool.set(source, at);
        tensors[i] = {
          name: t.name,
          datatype: t.datatype,
          shape: t.shape,
          data: noBody,
          view: pool.subarray(at, at + t.bytes),
        };
        at += (t.bytes + 7) & ~7;
      }
      job.tensors = tensors;
    }
    delete job.shared;
  }
  return pool;
}

/** Whether a tensor can be a view of a shared buffer: a fixed-size datatype, whole elements. */
function poolable(t: SharedTensor): boolean {
  const size = isDatatype(t.datatype) && datatypes[t.datatype].array ? datatypes[t.datatype].byteSize : 0;
  return size > 0 && t.bytes % size === 0;
}

/** Bytes of the buffer that {@link takeShared} copies `jobs`' poolable tensors into, each at a multiple of 8. */
function pooledBytes(jobs: readonly Job[]): number {
  let bytes = 0;
  for (const job of jobs) {
    if (!job.shared) continue;
    for (const t of job.shared) if (poolable(t)) bytes += (t.bytes + 7) & ~7;
  }
  return bytes;
}

/**
 * Sends the output tensors of jobs answered by link to their threads: into the link's answer ring when the thread
 * offered one and they fit (no structured clone, one wake per run at most), else in one message per link. The host
 * gets the rest as results, and the ids of those answered by link. `results` are in the order of `jobs`.
 */
function replyByLink(jobs: Job[], results: JobResult[]): { results: JobResult[]; replied?: number[] } {
  let byLink: Map<number, { replies: LinkReply; transfer: ArrayBuffer[] }> | undefined;
  let rest: JobResult[] | undefined;
  let replied: number[] | undefined;
  let rung: Set<AnswerRingWriter> | undefined;
  for (let i = 0; i < jobs.length; i++) {
    const reply = jobs[i].reply;
    const result = results[i];
    const link = reply && links.get(reply.link);
    if (link?.answers && result.ok && result.replied) {
      // Written into the ring by runBatch's `reply` (replyInRing): published below.
      (rung ??= new Set()).add(link.answers);
      (replied ??= []).push(result.id);
      continue;
    }
    // An answer past maxAnswerBytes goes to the host, whose pool refuses it (answer_too_large) as for any answer.
    if (!link || !result.ok || !result.tensors || answerBytes(result) > answerLimit()) {
      (rest ??= []).push(result);
      continue;
    }
    if (link.answers?.answer(reply.id, result.tensors)) {
      (rung ??= new Set()).add(link.answers);
      (replied ??= []).push(result.id);
      continue;
    }
    byLink ??= new Map();
    let group = byLink.get(reply.link);
    if (!group) byLink.set(reply.link, group = { replies: [], transfer: [] });
    group.replies.push({ id: reply.id, tensors: result.tensors });
    for (const t of result.tensors) group.transfer.push(t.data);
    (replied ??= []).push(result.id);
  }
  // Published before the host hears of them (the caller's `done` or results message): it never answers them again.
  if (rung) { for (const ring of rung) ring.publish(); }
  if (!replied) return { results };
  if (byLink) {
    for (const [link, { replies, transfer }] of byLink) {
      links.get(link)!.port.postMessage(replies, transfer);
    }
  }
  return { results: rest ?? [], replied };
}

/**
 * Writes a batched job's outputs into its link's answer ring (unpublished: `replyByLink` publishes them); whether it
 * did. runBatch's `reply`: no per-job copy of the outputs, they go from the batch's into the ring.
 */
function replyInRing(job: Job, outputs: readonly CheckedOutput[]): boolean {
  const reply = job.reply;
  const answers = reply && links.get(reply.link)?.answers;
  if (answers === undefined) return false;
  // Past maxAnswerBytes: not written, so that it reaches the host as a result and is refused there.
  let bytes = 0;
  for (const o of outputs) bytes += o.bytes.byteLength;
  return bytes <= answerLimit() && answers.answer(reply!.id, outputs);
}

/** The serving function's `maxAnswerBytes`: what an answer sent straight to an HTTP thread may carry. */
function answerLimit(): number {
  return serving?.loaded.options.maxAnswerBytes ?? Infinity;
}

/** A module a spare imported to inspect it, kept for the serve init that may follow (CPU lanes only). */
let held: { loaded: LoadedFunction; allowModels: (paths: readonly string[]) => void } | undefined;

/**
 * Inspects the module in a spare (`src/pool/spare.ts`; the bare inspecting Worker is `inspect_entry.ts`), readied
 * to serve it as `serve` readies an isolate before it imports user code: ONNX Runtime loaded, the model list sealed
 * (to be filled by the serve init, by this isolate's code only), ffi dropped. The module stays loaded: a serve init
 * then goes on from there, and if the host has no use for it, it ends this isolate.
 */
async function inspect(init: InitMessage): Promise<void> {
  const ort = await loadOrt();
  pinFloat16AsUint16(ort.Tensor);
  openNativeOrt({ open: true });
  const allowModels = reserveModels();
  await Deno.permissions.revoke({ name: "ffi" });
  const loaded = await loadFunctionModule(init.name, init.moduleUrl);
  held = { loaded, allowModels };
  port.post({ type: "manifest", manifest: manifestOf(loaded) });
}

async function serve(init: InitMessage): Promise<void> {
  // A spare that inspected its module has readied everything before it (see inspect): only the models are left.
  const inspected = held;
  held = undefined;
  if (inspected && init.lane.kind !== "cpu") throw new Error("A spare that inspected its module serves CPU lanes only");
  // The lane is bound on this thread before ONNX Runtime or anything else touches the GPU.
  if (init.lane.kind === "cuda") {
    gpuLane = await openGpuLane(init.name, init.lane.device, init.kernelsPtxPath!, init.lane.schedule);
  }
  const ort = await loadOrt();
  if (!inspected) {
    pinFloat16AsUint16(ort.Tensor);
    // Models run through ORT's C API (CUDA lanes on the lane's stream; CPU lanes off the isolate's thread, so a run
    // can be stopped): its library is opened while ffi is held, and sealed.
    openNativeOrt({ open: gpuLane !== undefined || Object.keys(init.modelPaths).length > 0 });
  }
  // Pinned staging that JS reads and writes in place can only be mapped while ffi is held.
  let arena = gpuLane && init.staging ? mapStaging(gpuLane.lane, init.staging) : undefined;
  const sessions: { release(): Promise<void> }[] = [];
  // Weights this lane uploaded: its own until the host has them (the ready message), freed here if it never does.
  const uploaded: SharedWeights[] = [];
  try {
    if (inspected) {
      inspected.allowModels(Object.values(init.modelPaths));
      if (Object.keys(init.modelPaths).length === 0) closeUnusedNativeOrt();
    } else {
      // The only models this isolate may ever open; sealed before any user code runs.
      allowModelsOnce(Object.values(init.modelPaths));
      // Existing native handles keep working; new dlopen calls are refused from here on.
      await Deno.permissions.revoke({ name: "ffi" });
    }
    const loaded = inspected?.loaded ?? await loadFunctionModule(init.name, init.moduleUrl);
    const modelHandler = modelHandlerOf(loaded.definition);
    if (arena && !modelHandler) {
      arena.close();
      arena = undefined;
    }
    if (Object.keys(init.modelPaths).length > 0) port.post({ type: "phase", phase: "models" });
    const models: Record<string, InferenceSession> = {};
    const info: Record<string, Partial<ModelInfo>> = {};
    const laneSessions: Record<string, LaneSession> = {};
    const apis: Record<string, "c" | "onnxruntime-node"> = {};
    const published: Record<string, SharedWeights> = {};
    let staged: StagedModel | undefined;
    const functionDir = dirname(fileURLToPath(init.moduleUrl));
    const { options } = loaded;
    for (const [name, path] of Object.entries(init.modelPaths)) {
      // By path: ORT resolves external data in the model's folder, after checkModelFiles kept it there.
      const where = { threads: init.ortThreads, root: modelRoot(functionDir, path), fn: init.name, model: name };
      if (gpuLane && init.lane.kind === "cuda") {
        const plan = init.weights;
        let weights = plan?.mode === "attach" ? plan.models[name] : undefined;
        let unshared = plan?.mode === "off" ? plan.reason : undefined;
        if (plan?.mode === "publish") {
          weights = await uploadWeights(path, { ...where, bound: gpuLane.lane });
          if (weights) uploaded.push(weights);
          else unshared = "the model has no initializer of 64 KiB or more";
        } else if (plan?.mode === "attach" && !weights) {
          unshared = "the lane that loaded first shares no weights of this model";
        }
        const lane = await createLaneSession(path, {
          ...where,
          lane: init.lane,
          bound: gpuLane.lane,
          gpuMemoryMb: options.gpuMemoryLimitMb,
          tf32: options.tf32,
          cudaGraph: options.cudaGraph === true ||
            (Array.isArray(options.cudaGraph) && options.cudaGraph.includes(name)),
          // A runModel handler stages in the one session's pinned memory: it keeps one session.
          ...(name === modelHandler ? { arena } : { shapeSessions: options.shapeSessions }),
          // Sessions per shape made after the isolate is ready tell the host where they run.
          onShapeSession: (now) => {
            if (serving) port.post({ type: "placement", model: name, ...now });
          },
          ...(weights ? { weights } : {}),
        });
        sessions.push(lane);
        laneSessions[name] = lane;
        if (plan?.mode === "publish" && weights && lane.weights?.shared) published[name] = weights;
        info[name] = {
          ...(lane.weights ? { weights: lane.weights } : plan ? { weights: { shared: false, reason: unshared } } : {}),
        };
        models[name] = lane.facade;
        apis[name] = "c";
        if (name === modelHandler) {
          const batching = options.dynamicBatching;
          const model = stagedModel(lane.session, batching ? graphBatchSizes(batching) : undefined);
          const where = { fn: init.name, model: name, gpuMemoryMb: options.gpuMemoryLimitMb };
          staged = {
            ...model,
            run: (request) =>
              model.run(request).catch((error) => {
                throw laneRunError(error, where);
              }),
          };
        }
      } else {
        const cpu = await createCpuSession(ort, path, {
          ...where,
          lane: init.lane,
          onTerminated: ({ model, jobs, requests, ms }) =>
            port.post({ type: "run-terminated", model, jobs: [...jobs], requests: [...requests], ms }),
        });
        sessions.push(cpu.session);
        models[name] = cpu.model;
        apis[name] = cpu.api;
        if (name === modelHandler) staged = oneRunAtATime(stagedModel(cpu.model));
      }
    }
    // Uploads ORT would not take from the block are no one's: freed now.
    const kept = Object.values(published);
    for (const weights of uploaded.filter((w) => !kept.includes(w))) freeWeights(weights, gpuLane!.lane);
    uploaded.splice(0, uploaded.length, ...kept);
    const base: RunContext["base"] = {
      name: init.name,
      models,
      assets: init.assetPaths,
      gpu: gpuLane?.gpu ?? null,
      state: undefined,
    };
    if (loaded.definition.setup) {
      port.post({ type: "phase", phase: "setup" });
      try {
        base.state = await loaded.definition.setup(base);
      } catch (error) {
        throw new IsolaneError(
          "function_unavailable",
          `Cannot load function '${init.name}': setup threw: ${messageOf(error)}`,
        );
      }
    }
    // Placement as of now: the sessions per shape that setup's runs made are the ones that serve.
    for (const [name, lane] of Object.entries(laneSessions)) {
      const { placement, shapes } = lane.placement();
      if (placement) Object.assign(info[name], { providers: Object.keys(placement), placement });
      if (shapes) info[name].shapes = shapes;
    }
    serving = { loaded, run: { base, ...(staged ? { model: staged } : {}) }, sessions, arena };
    // From here the host holds the published blocks and frees them when the function version is unloaded.
    port.post({
      type: "ready",
      models: Object.entries(models).map(([name, session]) => ({
        ...describeSession(name, session, { lane: init.lane, api: apis[name] }),
        ...info[name],
      })),
      lane: gpuLane?.info ?? null,
      ...(kept.length > 0 ? { weights: published } : {}),
    });
    uploaded.length = 0;
  } catch (error) {
    // Nothing of a failed load outlives it: its sessions, then what it uploaded, then its staging.
    for (const session of sessions) await session.release().catch(() => {});
    for (const weights of uploaded) freeWeights(weights, gpuLane!.lane);
    arena?.close();
    throw error;
  }
}

/** Runs jobs to their answers; `pool`: the buffer their inputs lie in (takeShared), given back once they are done. */
async function runJobs(jobs: Job[], pool?: Uint8Array<ArrayBuffer>): Promise<void> {
  try {
    await runJobsIn(jobs);
  } finally {
    if (pool) giveScratch(pool);
  }
}

async function runJobsIn(jobs: Job[]): Promise<void> {
  if (!serving) throw new Error("Isolate received jobs before it was ready");
  const { loaded, run } = serving;
  for (const job of jobs) aborts.set(job.id, new AbortController());
  const { definition } = loaded;
  const runOne = (job: Job) =>
    runJob(definition, job, {
      ...run,
      signal: aborts.get(job.id)!.signal,
      emit: (body) => port.post({ type: "item", id: job.id, body }, [body]),
    });
  let results: JobResult[];
  try {
    if (jobs.length > 1 && definition.dynamicBatching && definition.signature) {
      const signals = new Map(jobs.map((job) => [job.id, aborts.get(job.id)!.signal]));
      results = await runBatch(definition, jobs, { ...run, signals, reply: replyInRing });
    } else if (jobs.length > 1 && definition.dynamicBatching && definition.batchHandler) {
      const signals = new Map(jobs.map((job) => [job.id, aborts.get(job.id)!.signal]));
      const emitFor = (job: Job) => (body: ArrayBuffer) => port.post({ type: "item", id: job.id, body }, [body]);
      results = await runJsonBatch(definition, jobs, { ...run, signals, emitFor });
    } else {
      // One job (every sequential request): no list of promises to wait on.
      results = jobs.length === 1 ? [await runOne(jobs[0])] : await Promise.all(jobs.map(runOne));
    }
  } finally {
    for (const job of jobs) aborts.delete(job.id);
  }
  const answered = links.size > 0 ? replyByLink(jobs, results) : { results };
  if (answered.results.length === 0 && answered.replied && done?.ids(answered.replied)) return;
  const transfer: ArrayBuffer[] = [];
  for (const r of answered.results) if (r.ok) transfer.push(...transferablesOf(r));
  port.post({ type: "results", ...answered }, transfer);
}

/** Installs the guards on this thread and returns the handler of the host's messages. */
export function startIsolate(isolatePort: IsolatePort): (message: HostMessage) => void {
  port = isolatePort;
  guardExit((message) => port.post(message));
  captureConsole((message) => port.post(message));
  return onHostMessage;
}

/** Releases every session, then the kernels and the lane (reverse order of creation). */
async function release(): Promise<number> {
  const sessions = serving?.sessions ?? [];
  const arena = serving?.arena;
  serving = undefined;
  for (const session of sessions) await session.release().catch(() => {});
  arena?.close();
  gpuLane?.kernels.close();
  gpuLane?.lane.close();
  gpuLane = undefined;
  return sessions.length;
}

function onHostMessage(message: HostMessage): void {
  // Runs the host wrote in the ring before this message come first (an abort after its job's run, say).
  drainJobs();
  switch (message.type) {
    case "init": {
      const boot = message.mode === "inspect" ? inspect(message) : serve(message);
      boot.catch((error) => {
        const e = error instanceof IsolaneError
          ? error
          : new IsolaneError("function_unavailable", `Cannot load function '${message.name}': ${messageOf(error)}`);
        port.post({ type: "failed", error: e.toBody() });
      });
      break;
    }
    case "run": {
      const jobs = message.packed ? message.jobs.concat(unpackJobs(message.packed)) : message.jobs;
      void runJobs(jobs, takeShared(jobs));
      break;
    }
    case "link": {
      const link: { port: MessagePort; arena: SharedArrayBuffer; answers?: AnswerRingWriter } = {
        port: message.port,
        arena: message.arena,
      };
      links.set(message.link, link);
      // The thread offers its answer ring on the port; answers go on the port itself until it has.
      message.port.onmessage = (event) => {
        if (isAnswerRingOffer(event.data)) link.answers = new AnswerRingWriter(event.data.ring, event.data.bell);
      };
      if (message.rings) {
        done = new RingWriter(message.rings.done, message.rings.mainBell);
        jobRing = new RingReader(message.rings.jobs);
        new Doorbell(message.rings.isolateBell).add(drainJobs);
      }
      if (awaitingLink.length > 0) {
        const waiting = awaitingLink;
        awaitingLink = [];
        for (const jobs of waiting) jobSink.jobs(jobs);
      }
      break;
    }
    case "unlink":
      links.get(message.link)?.port.close();
      links.delete(message.link);
      unlinked.add(message.link);
      break;
    case "shutdown":
      release().then(
        (sessions) => port.post({ type: "released", sessions }),
        () => {},
      ).finally(() => port.exit());
      break;
    case "abort":
      aborts.get(message.id)?.abort(new IsolaneError("timeout", "The request was aborted"));
      break;
    case "warm":
      // A failure here is the init's to report: serve loads ORT again and fails with the reason.
      loadOrt().then(() => message.models && preopenNativeOrt()).catch(() => {});
      break;
  }
}
