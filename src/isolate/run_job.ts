/**
 * Runs jobs: JSON in, input validation, the handler, output validation,
 * JSON out; tensor functions go through {@link runTensorJob} instead. A batch
 * of jobs for a tensor function with dynamic batching runs as one handler call
 * over the jobs' rows combined along the first dimension, and the outputs are
 * split back by rows (Triton's dynamic batcher). One job's bad input never
 * fails the others.
 * @module
 */
import {
  type AnyFunctionDefinition,
  type FunctionContext,
  type FunctionDefinition,
  InputError,
  type RawBody,
  type TensorFunctionDefinition,
} from "../sdk.ts";
import type { Job, JobResult, WireTensor } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { messageOf } from "./load_module.ts";
import {
  type CheckedOutput,
  checkOutputs,
  cutRows,
  giveRows,
  runModelJob,
  runModelRows,
  runTensorJob,
  tensorsFromWire,
  wireOf,
} from "./tensor_input.ts";
import { outputsToJsonBody, wireFromJsonBody } from "../tensors.ts";
import { concatRows } from "./rows.ts";
import type { Tensor } from "onnxruntime-common";
import type { StagedModel } from "./staged_model.ts";
import { withRunScope } from "../inference/run_scope.ts";

// Fatal: a body that is not UTF-8 is refused, not read with U+FFFD in place of its bytes.
const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** What every job of an isolate shares. */
export type BaseContext = Omit<FunctionContext, "signal"> & { state: unknown };

/**
 * How the isolate runs a function's jobs besides its definition: the context
 * handlers get (less the signal), and, for a {@link runModel} handler of a
 * tensor function without BYTES tensors, its model in staged form: the
 * runtime then runs the model itself ({@link runModelRows}) instead of
 * calling the handler.
 */
export interface RunContext {
  base: BaseContext;
  model?: StagedModel;
}

function issuesOf(error: { issues: readonly { path: PropertyKey[]; message: string; code: string }[] }) {
  return error.issues.map((issue) => ({
    path: issue.path.map((p) => (typeof p === "symbol" ? p.toString() : p)),
    message: issue.message,
    code: issue.code,
  }));
}

type Handler = (input: never, ctx: FunctionContext & { state: unknown }) => unknown;

/** What a handler's throw (or rejection) is answered with. */
function handlerError(error: unknown, ctx: FunctionContext): IsolaneError {
  if (ctx.signal.aborted) return new IsolaneError("timeout", "The function was aborted");
  if (error instanceof InputError) return new IsolaneError("invalid_input", error.message);
  return new IsolaneError("handler_error", `Function '${ctx.name}' threw: ${messageOf(error)}`);
}

async function callHandler(
  handler: Handler,
  input: unknown,
  ctx: FunctionContext & { state: unknown },
): Promise<unknown> {
  try {
    return await (handler as (input: unknown, ctx: FunctionContext & { state: unknown }) => unknown)(input, ctx);
  } catch (error) {
    throw handlerError(error, ctx);
  }
}

/**
 * {@link callHandler} without its turns of microtasks for a handler that answers at once (the echo's, a Zod-checked
 * transform): that value as it is, or else a promise of it, its rejection answered as `callHandler` answers it. A
 * lone request's child answers sooner, so the runtime's main thread, woken when the child reads the request (the
 * socket's write space), often reads the answer before it sleeps again (docs/hop.md, "Ninth round").
 */
function callHandlerNow(handler: Handler, input: unknown, ctx: FunctionContext & { state: unknown }): unknown {
  let value: unknown;
  try {
    value = (handler as (input: unknown, ctx: FunctionContext & { state: unknown }) => unknown)(input, ctx);
    // A `then` getter is the handler's code too: its throw is the handler's, as `await` would have it.
    if (!isThenable(value)) return value;
  } catch (error) {
    throw handlerError(error, ctx);
  }
  return (async () => {
    try {
      return await value;
    } catch (error) {
      throw handlerError(error, ctx);
    }
  })();
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}

/** Zod's parse, where a stack overflow on a deeply nested body is the body's fault (400), not a 500. */
function safeParse(schema: FunctionDefinition["input"], value: unknown, what: "input" | "output") {
  try {
    return schema.safeParse(value);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new IsolaneError(
        what === "input" ? "invalid_input" : "invalid_output",
        `The ${what} is nested too deeply to validate`,
      );
    }
    throw error;
  }
}

/** Turns each item a streaming handler yields into a validated JSON item for the host. */
export type EmitItem = (body: ArrayBuffer) => void;

function validated(definition: FunctionDefinition, name: string, value: unknown): ArrayBuffer {
  const output = safeParse(definition.output, value, "output");
  if (!output.success) {
    throw new IsolaneError(
      "invalid_output",
      `Function '${name}' returned a value that does not match its output schema`,
      issuesOf(output.error),
    );
  }
  let json: string;
  try {
    json = JSON.stringify(output.data);
  } catch (error) {
    // A schema such as z.any() lets through what JSON cannot carry (BigInt, cycles, a toJSON that throws).
    throw new IsolaneError(
      "invalid_output",
      `Function '${name}' returned a value that cannot be written as JSON: ${messageOf(error)}`,
    );
  }
  return encoder.encode(json).buffer as ArrayBuffer;
}

function isStream(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

/** A `function*`'s result, which its output schema would otherwise refuse with no word of why. */
function isSyncGenerator(value: unknown): boolean {
  return Object.prototype.toString.call(value) === "[object Generator]";
}

/** Media type without parameters, lower case. */
function mediaType(contentType: string): string {
  return contentType.split(";")[0].trim().toLowerCase();
}

/** A raw body as the handler gets it; a multipart form is parsed by the platform's own parser. */
async function rawBodyOf(job: Job): Promise<RawBody> {
  const contentType = mediaType(job.contentType!);
  const bytes = new Uint8Array(job.body);
  const raw: RawBody = { contentType, bytes, fields: {}, files: [] };
  if (contentType !== "multipart/form-data") return raw;
  let form: FormData;
  try {
    form = await new Request("http://body/", {
      method: "POST",
      headers: { "content-type": job.contentType! },
      body: bytes,
    })
      .formData();
  } catch (error) {
    throw new IsolaneError("invalid_input", `Request body is not a valid multipart form: ${messageOf(error)}`);
  }
  for (const [field, value] of form) {
    if (typeof value === "string") raw.fields[field] = value;
    else {raw.files.push({
        field,
        name: value.name,
        type: value.type,
        bytes: new Uint8Array(await value.arrayBuffer()),
      });}
  }
  return raw;
}

/** A JSON job's body, parsed and validated against the input schema. */
function jsonInput(definition: FunctionDefinition, job: Job): unknown {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(job.body));
  } catch (error) {
    throw new IsolaneError("invalid_json", `Request body is not valid JSON: ${messageOf(error)}`);
  }
  const input = safeParse(definition.input, json, "input");
  if (!input.success) {
    throw new IsolaneError(
      "invalid_input",
      "Request body does not match the function's input schema",
      issuesOf(input.error),
    );
  }
  return input.data;
}

async function run(
  definition: AnyFunctionDefinition,
  job: Job,
  ctx: FunctionContext & { state: unknown },
  { emit, model }: { emit: EmitItem | undefined; model: StagedModel | undefined },
): Promise<{ body: ArrayBuffer; tensors?: WireTensor[]; streamed?: true }> {
  if (definition.signature && model) {
    const staged = await runModelJob(definition, job, { name: ctx.name, model });
    if (staged) return staged;
  }
  if (definition.signature) {
    return await runTensorJob(definition, job, {
      name: ctx.name,
      call: (inputs) => callHandler(definition.handler, inputs, ctx),
    });
  }
  let value: unknown;
  if (job.contentType !== undefined) {
    if (!definition.raw) throw new IsolaneError("unsupported_media_type", "This function takes JSON bodies only");
    value = await callHandler(definition.raw.handler, await rawBodyOf(job), ctx);
  } else {
    value = callHandlerNow(definition.handler, jsonInput(definition, job), ctx);
    // Its own promise, or no thenable (a value's `then` getter is not run twice).
    if (value instanceof Promise) value = await value;
  }
  if (isSyncGenerator(value)) {
    throw new IsolaneError(
      "invalid_output",
      `Function '${ctx.name}' returned a synchronous generator: a handler streams as an async generator ` +
        "(async *handler), or returns one value",
    );
  }
  if (!isStream(value)) return { body: validated(definition, ctx.name, value) };
  if (!emit) throw new IsolaneError("internal", `Function '${ctx.name}' streamed where it cannot`);
  try {
    for await (const item of value) {
      if (ctx.signal.aborted) break;
      emit(validated(definition, ctx.name, item));
    }
  } catch (error) {
    if (error instanceof IsolaneError) throw error;
    if (ctx.signal.aborted) throw new IsolaneError("timeout", "The function was aborted");
    throw new IsolaneError("handler_error", `Function '${ctx.name}' threw while streaming: ${messageOf(error)}`);
  }
  return { body: new ArrayBuffer(0), streamed: true };
}

function failure(job: Job, name: string, error: unknown): JobResult {
  const e = error instanceof IsolaneError
    ? error
    : new IsolaneError("internal", `Function '${name}' failed: ${messageOf(error)}`);
  return { id: job.id, ok: false, error: e.toBody() };
}

/**
 * Runs a job to a result; never throws. `emit` sends the items of a handler that streams. Model runs it starts stop
 * when `signal` aborts.
 */
export async function runJob(
  definition: AnyFunctionDefinition,
  job: Job,
  { base, model, signal, emit }: RunContext & { signal: AbortSignal; emit?: EmitItem },
): Promise<JobResult> {
  try {
    const scope = { signal, jobs: [job.id], requests: job.requestId ? [job.requestId] : [] };
    const { body, tensors, streamed } = await withRunScope(
      scope,
      () => run(definition, job, { ...base, signal }, { emit, model }),
    );
    if (streamed) return { id: job.id, ok: true, body, streamed };
    return tensors ? { id: job.id, ok: true, body, tensors } : { id: job.id, ok: true, body };
  } catch (error) {
    return failure(job, base.name, error);
  }
}

/** A signal that aborts once every one of `signals` has. */
function allAborted(signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  let left = signals.length;
  for (const s of signals) {
    const onAbort = () => --left === 0 && controller.abort(s.reason);
    if (s.aborted) onAbort();
    else s.addEventListener("abort", onAbort, { once: true });
  }
  return controller.signal;
}

/**
 * The run scope of one call over `jobs`: a signal that aborts once every job's has, and the jobs' ids and request
 * ids (what the isolate logs of a run that ORT stopped).
 */
function batchScope(jobs: readonly Job[], signals: Map<number, AbortSignal>) {
  return {
    signal: allAborted(jobs.map((job) => signals.get(job.id)!)),
    jobs: jobs.map((job) => job.id),
    requests: jobs.flatMap((job) => (job.requestId ? [job.requestId] : [])),
  };
}

/**
 * Runs a batch of jobs of a tensor function as few handler calls (or model
 * runs, for a {@link RunContext.model}) as `maxBatchSize` allows; never
 * throws. A job whose input fails is answered alone; a handler call that
 * fails, or returns outputs whose rows do not add up (or BYTES outputs, whose
 * rows have no fixed size), is run again job by job so that each gets its own
 * answer. Each job's outputs are cut from one copy of the batch's. `reply`
 * may answer a job of a batch that ran itself (a job that came with tensors;
 * its output tensors are views valid during the call): the isolate writes
 * them into the job's HTTP thread's answer ring, and the job's result is
 * then `replied`, without tensors.
 */
export async function runBatch(
  definition: TensorFunctionDefinition,
  jobs: Job[],
  { base, model, signals, reply }: RunContext & {
    signals: Map<number, AbortSignal>;
    reply?: (job: Job, outputs: readonly CheckedOutput[]) => boolean;
  },
): Promise<JobResult[]> {
  const { signature } = definition;
  const results = new Map<number, JobResult>();
  type Item = { job: Job; inputs: Record<string, Tensor>; rows: number };
  const items: Item[] = [];
  for (const job of jobs) {
    try {
      const inputs = tensorsFromWire(signature, job.tensors ?? wireFromJsonBody(signature, job.body));
      items.push({ job, inputs, rows: inputs[signature.inputs[0].name].dims[0] ?? 0 });
    } catch (error) {
      results.set(job.id, failure(job, base.name, error));
    }
  }
  const alone = async (item: Item) =>
    results.set(item.job.id, await runJob(definition, item.job, { base, model, signal: signals.get(item.job.id)! }));
  const maxRows = definition.dynamicBatching?.maxBatchSize ?? Infinity;
  const groups: Item[][] = [];
  let rows = 0;
  for (const item of items) {
    if (groups.length === 0 || rows + item.rows > maxRows) {
      groups.push([]);
      rows = 0;
    }
    groups.at(-1)!.push(item);
    rows += item.rows;
  }
  const splittable = signature.outputs.every((o) => o.datatype !== "BYTES");
  for (const group of groups) {
    if (group.length === 1 || !splittable) {
      for (const item of group) await alone(item);
      continue;
    }
    let split: CheckedOutput[][] | undefined;
    const scope = batchScope(group.map((g) => g.job), signals);
    const { signal } = scope;
    try {
      split = await withRunScope(
        scope,
        () =>
          model
            ? runModelRows(model, signature, group.map((g) => g.inputs), { name: base.name })
            : handlerRows(definition, group, { ...base, signal }),
      );
    } catch {
      split = undefined;
    }
    if (!split) {
      for (const item of group) await alone(item);
      continue;
    }
    for (let i = 0; i < group.length; i++) {
      const { job } = group[i];
      const outputs = split[i];
      if (!job.tensors) results.set(job.id, { id: job.id, ok: true, body: outputsToJsonBody(outputs.map(wireOf)) });
      else if (reply?.(job, outputs)) {
        results.set(job.id, { id: job.id, ok: true, body: new ArrayBuffer(0), replied: true });
      } else results.set(job.id, { id: job.id, ok: true, body: new ArrayBuffer(0), tensors: outputs.map(wireOf) });
    }
    // Every job's outputs are copied out of the batch's (answer ring, wire tensors, JSON) by now.
    giveRows(split);
  }
  return jobs.map((job) => results.get(job.id)!);
}

/**
 * Runs a batch of jobs of a JSON function with a `batchHandler` as one call
 * over their validated inputs; never throws. A job whose body fails, or that
 * is not JSON (a raw body), is answered alone; a call that fails, or returns a
 * list of another length or an output its schema refuses, is run again job by
 * job through `handler`, so that each gets its own answer.
 */
export async function runJsonBatch(
  definition: FunctionDefinition,
  jobs: Job[],
  { base, signals, emitFor }: RunContext & { signals: Map<number, AbortSignal>; emitFor?: (job: Job) => EmitItem },
): Promise<JobResult[]> {
  const results = new Map<number, JobResult>();
  const items: { job: Job; input: unknown }[] = [];
  const alone = async (job: Job) =>
    results.set(job.id, await runJob(definition, job, { base, signal: signals.get(job.id)!, emit: emitFor?.(job) }));
  for (const job of jobs) {
    if (job.contentType !== undefined) continue;
    try {
      items.push({ job, input: jsonInput(definition, job) });
    } catch (error) {
      results.set(job.id, failure(job, base.name, error));
    }
  }
  let bodies: ArrayBuffer[] | undefined;
  if (items.length > 1) {
    const scope = batchScope(items.map((i) => i.job), signals);
    const { signal } = scope;
    try {
      const value = await withRunScope(
        scope,
        () => callHandler(definition.batchHandler!, items.map((i) => i.input), { ...base, signal }),
      );
      if (Array.isArray(value) && value.length === items.length) {
        bodies = value.map((v) => validated(definition, base.name, v));
      }
    } catch {
      bodies = undefined;
    }
  }
  if (bodies) items.forEach(({ job }, i) => results.set(job.id, { id: job.id, ok: true, body: bodies![i] }));
  for (const job of jobs) if (!results.has(job.id)) await alone(job);
  return jobs.map((job) => results.get(job.id)!);
}

/**
 * One handler call over the requests' inputs combined along the first
 * dimension, its outputs checked and cut into each request's rows;
 * `undefined` when their rows do not add up.
 */
async function handlerRows(
  definition: TensorFunctionDefinition,
  group: { inputs: Record<string, Tensor>; rows: number }[],
  ctx: FunctionContext & { state: unknown },
): Promise<CheckedOutput[][] | undefined> {
  const { signature } = definition;
  const merged = Object.fromEntries(
    signature.inputs.map((s) => [s.name, concatRows(group.map((g) => g.inputs[s.name])) as Tensor]),
  );
  const total = group.reduce((n, g) => n + g.rows, 0);
  const value = await callHandler(definition.handler, merged, ctx);
  // Checked in place: the cut below is the one copy each request's outputs need.
  const outputs = checkOutputs(signature, value, { name: ctx.name });
  if (outputs.some((o) => o.shape[0] !== total)) return undefined;
  return cutRows(outputs, group.map((g) => g.rows));
}
