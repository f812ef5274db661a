/**
 * Runs jobs: JSON in, input validation, the handler, output validation, JSON
 * out. A batch of jobs for a function with a tensor signature and dynamic
 * batching runs as one handler call over the jobs' rows combined along the
 * first dimension, and the output is split back by rows (Triton's dynamic
 * batcher). One job's bad input never fails the others.
 * @module
 */
import { type FunctionContext, type FunctionDefinition, InputError } from "../sdk.ts";
import type { Job, JobResult } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { messageOf } from "./load_module.ts";
import { concatRows, rowsOf, sliceRows } from "./rows.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** What every job of an isolate shares. */
export type BaseContext = Omit<FunctionContext, "signal"> & { state: unknown };

function issuesOf(error: { issues: readonly { path: PropertyKey[]; message: string; code: string }[] }) {
  return error.issues.map((issue) => ({
    path: issue.path.map((p) => (typeof p === "symbol" ? p.toString() : p)),
    message: issue.message,
    code: issue.code,
  }));
}

/** Parses and validates a job's body; throws `invalid_json` or `invalid_input`. */
function parseInput(definition: FunctionDefinition, job: Job): unknown {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(job.body));
  } catch (error) {
    throw new IsolaneError("invalid_json", `Request body is not valid UTF-8 JSON: ${messageOf(error)}`);
  }
  const input = definition.input.safeParse(json);
  if (!input.success) {
    throw new IsolaneError(
      "invalid_input",
      "Request body does not match the function's input schema",
      issuesOf(input.error),
    );
  }
  return input.data;
}

async function callHandler(
  definition: FunctionDefinition,
  input: unknown,
  ctx: FunctionContext & { state: unknown },
): Promise<unknown> {
  try {
    return await definition.handler(input, ctx);
  } catch (error) {
    if (ctx.signal.aborted) throw new IsolaneError("timeout", "The function was aborted");
    if (error instanceof InputError) throw new IsolaneError("invalid_input", error.message);
    throw new IsolaneError("handler_error", `Function '${ctx.name}' threw: ${messageOf(error)}`);
  }
}

function encodeOutput(definition: FunctionDefinition, name: string, value: unknown): ArrayBuffer {
  const output = definition.output.safeParse(value);
  if (!output.success) {
    throw new IsolaneError(
      "invalid_output",
      `Function '${name}' returned a value that does not match its output schema`,
      issuesOf(output.error),
    );
  }
  return encoder.encode(JSON.stringify(output.data)).buffer as ArrayBuffer;
}

function failure(job: Job, name: string, error: unknown): JobResult {
  const e = error instanceof IsolaneError
    ? error
    : new IsolaneError("internal", `Function '${name}' failed: ${messageOf(error)}`);
  return { id: job.id, ok: false, error: e.toBody() };
}

/** Runs a job to a result; never throws. */
export async function runJob(
  definition: FunctionDefinition,
  job: Job,
  base: BaseContext,
  signal: AbortSignal,
): Promise<JobResult> {
  try {
    const value = await callHandler(definition, parseInput(definition, job), { ...base, signal });
    return { id: job.id, ok: true, body: encodeOutput(definition, base.name, value) };
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
 * Runs a batch of jobs as few handler calls as `maxBatchSize` allows, for a
 * function with a tensor signature; never throws. Jobs whose input fails
 * are answered alone; a handler call that fails, or returns outputs whose
 * rows do not add up, is retried job by job so each gets its own answer.
 */
export async function runBatch(
  definition: FunctionDefinition,
  jobs: Job[],
  base: BaseContext,
  signals: Map<number, AbortSignal>,
): Promise<JobResult[]> {
  const results = new Map<number, JobResult>();
  const inputs: { job: Job; input: Record<string, unknown>; rows: number }[] = [];
  const inputNames = definition.signature!.inputs.map((s) => s.name);
  const outputNames = definition.signature!.outputs.map((s) => s.name);
  for (const job of jobs) {
    try {
      const input = parseInput(definition, job) as Record<string, unknown>;
      inputs.push({ job, input, rows: rowsOf(input[inputNames[0]]) });
    } catch (error) {
      results.set(job.id, failure(job, base.name, error));
    }
  }
  const maxRows = definition.dynamicBatching?.maxBatchSize ?? Infinity;
  const groups: (typeof inputs)[] = [];
  let rows = Infinity;
  for (const item of inputs) {
    if (rows + item.rows > maxRows || groups.length === 0) {
      groups.push([]);
      rows = 0;
    }
    groups.at(-1)!.push(item);
    rows += item.rows;
  }
  for (const group of groups) {
    const alone = async (item: (typeof inputs)[number]) => {
      const signal = signals.get(item.job.id)!;
      try {
        const value = await callHandler(definition, item.input, { ...base, signal });
        results.set(item.job.id, { id: item.job.id, ok: true, body: encodeOutput(definition, base.name, value) });
      } catch (error) {
        results.set(item.job.id, failure(item.job, base.name, error));
      }
    };
    if (group.length === 1) {
      await alone(group[0]);
      continue;
    }
    const merged = Object.fromEntries(inputNames.map((n) => [n, concatRows(group.map((g) => g.input[n]))]));
    const signal = allAborted(group.map((g) => signals.get(g.job.id)!));
    let output: Record<string, unknown> | undefined;
    try {
      output = await callHandler(definition, merged, { ...base, signal }) as Record<string, unknown>;
      const total = group.reduce((n, g) => n + g.rows, 0);
      if (outputNames.some((n) => rowsOf(output![n]) !== total)) output = undefined;
    } catch {
      output = undefined;
    }
    if (!output) {
      for (const item of group) await alone(item);
      continue;
    }
    let start = 0;
    for (const item of group) {
      const end = start + item.rows;
      const value = Object.fromEntries(outputNames.map((n) => [n, sliceRows(output![n], start, end)]));
      start = end;
      try {
        results.set(item.job.id, { id: item.job.id, ok: true, body: encodeOutput(definition, base.name, value) });
      } catch (error) {
        results.set(item.job.id, failure(item.job, base.name, error));
      }
    }
  }
  return jobs.map((job) => results.get(job.id)!);
}
