/**
 * Runs one job: JSON in, input validation, the handler, output validation, JSON out.
 * @module
 */
import { type FunctionContext, type FunctionDefinition, InputError } from "../sdk.ts";
import type { Job, JobResult } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { messageOf } from "./load_module.ts";

const decoder = new TextDecoder();
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

async function run(definition: FunctionDefinition, job: Job, ctx: FunctionContext & { state: unknown }) {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(job.body));
  } catch (error) {
    throw new IsolaneError("invalid_json", `Request body is not valid JSON: ${messageOf(error)}`);
  }
  const input = definition.input.safeParse(json);
  if (!input.success) {
    throw new IsolaneError(
      "invalid_input",
      "Request body does not match the function's input schema",
      issuesOf(input.error),
    );
  }
  let value: unknown;
  try {
    value = await definition.handler(input.data, ctx);
  } catch (error) {
    if (ctx.signal.aborted) throw new IsolaneError("timeout", "The function was aborted");
    if (error instanceof InputError) throw new IsolaneError("invalid_input", error.message);
    throw new IsolaneError("handler_error", `Function '${ctx.name}' threw: ${messageOf(error)}`);
  }
  const output = definition.output.safeParse(value);
  if (!output.success) {
    throw new IsolaneError(
      "invalid_output",
      `Function '${ctx.name}' returned a value that does not match its output schema`,
      issuesOf(output.error),
    );
  }
  return encoder.encode(JSON.stringify(output.data)).buffer as ArrayBuffer;
}

/** Runs a job to a result; never throws. */
export async function runJob(
  definition: FunctionDefinition,
  job: Job,
  base: BaseContext,
  signal: AbortSignal,
): Promise<JobResult> {
  try {
    const body = await run(definition, job, { ...base, signal });
    return { id: job.id, ok: true, body };
  } catch (error) {
    const e = error instanceof IsolaneError
      ? error
      : new IsolaneError("internal", `Function '${base.name}' failed: ${messageOf(error)}`);
    return { id: job.id, ok: false, error: e.toBody() };
  }
}
