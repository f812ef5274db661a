/**
 * Runs one job: JSON in, input validation, the handler, output validation,
 * JSON out; tensor functions go through {@link runTensorJob} instead.
 * @module
 */
import { type AnyFunctionDefinition, type FunctionContext, type FunctionDefinition, InputError } from "../sdk.ts";
import type { Job, JobResult, WireTensor } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { messageOf } from "./load_module.ts";
import { runTensorJob } from "./tensor_input.ts";

// Fatal: a body that is not UTF-8 is refused, not read with U+FFFD in place of its bytes.
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

async function callHandler(
  handler: (input: never, ctx: FunctionContext & { state: unknown }) => unknown,
  input: unknown,
  ctx: FunctionContext & { state: unknown },
): Promise<unknown> {
  try {
    return await (handler as (input: unknown, ctx: FunctionContext & { state: unknown }) => unknown)(input, ctx);
  } catch (error) {
    if (ctx.signal.aborted) throw new IsolaneError("timeout", "The function was aborted");
    if (error instanceof InputError) throw new IsolaneError("invalid_input", error.message);
    throw new IsolaneError("handler_error", `Function '${ctx.name}' threw: ${messageOf(error)}`);
  }
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

async function run(
  definition: AnyFunctionDefinition,
  job: Job,
  ctx: FunctionContext & { state: unknown },
): Promise<{ body: ArrayBuffer; tensors?: WireTensor[] }> {
  if (definition.signature) {
    return await runTensorJob(definition, job, {
      name: ctx.name,
      call: (inputs) => callHandler(definition.handler, inputs, ctx),
    });
  }
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
  const value = await callHandler(definition.handler, input.data, ctx);
  const output = safeParse(definition.output, value, "output");
  if (!output.success) {
    throw new IsolaneError(
      "invalid_output",
      `Function '${ctx.name}' returned a value that does not match its output schema`,
      issuesOf(output.error),
    );
  }
  return { body: encoder.encode(JSON.stringify(output.data)).buffer as ArrayBuffer };
}

/** Runs a job to a result; never throws. */
export async function runJob(
  definition: AnyFunctionDefinition,
  job: Job,
  base: BaseContext,
  signal: AbortSignal,
): Promise<JobResult> {
  try {
    const { body, tensors } = await run(definition, job, { ...base, signal });
    return tensors ? { id: job.id, ok: true, body, tensors } : { id: job.id, ok: true, body };
  } catch (error) {
    const e = error instanceof IsolaneError
      ? error
      : new IsolaneError("internal", `Function '${base.name}' failed: ${messageOf(error)}`);
    return { id: job.id, ok: false, error: e.toBody() };
  }
}
