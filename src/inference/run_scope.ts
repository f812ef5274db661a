/**
 * Which request a model run belongs to. The isolate runs each job (and each
 * batched handler call) inside a scope that holds the request's signal and
 * its jobs; a CPU session's run reads the scope, so handlers pass nothing and
 * the run still stops when that request aborts. Kept across awaits by
 * AsyncLocalStorage, as the request id of console lines is.
 *
 * @example
 * ```ts
 * await withRunScope({ signal, jobs: [7], requests: ["req-1"] }, () => handler(input, ctx));
 * ```
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** The request (or the batch of requests) a run serves. */
export interface RunScope {
  /** Aborts on the request's deadline or when its client goes away; a batch's when all of its requests have. */
  signal: AbortSignal;
  /** The job ids (one, or a batch's). */
  jobs: readonly number[];
  /** Their request ids, where the host gave them. */
  requests: readonly string[];
}

const scopes = new AsyncLocalStorage<RunScope>();

/** Runs `fn` with `scope` as the request of every model run it starts, across awaits. */
export function withRunScope<T>(scope: RunScope, fn: () => T): T {
  return scopes.run(scope, fn);
}

/** The scope of the code running now; `undefined` outside a job (in `setup`, say). */
export function currentRunScope(): RunScope | undefined {
  return scopes.getStore();
}
