/**
 * The one error family of isolane. Every error carries a stable `code`; the
 * HTTP status is derived from the code in one place ({@link statusOf}).
 *
 * @example
 * ```ts
 * throw new IsolaneError("not_found", "Function 'ocr2' is not deployed");
 * ```
 * @module
 */

/** Stable error codes and the HTTP status each maps to. */
export const errorStatus = {
  invalid_json: 400,
  invalid_input: 400,
  unauthorized: 401,
  admin_disabled: 403,
  untrusted_origin: 403,
  not_found: 404,
  conflict: 409,
  request_timeout: 408,
  body_too_large: 413,
  gpu_memory_limit: 413,
  unsupported_media_type: 415,
  invalid_bundle: 422,
  queue_full: 429,
  handler_error: 500,
  invalid_output: 500,
  answer_too_large: 500,
  isolate_crashed: 500,
  internal: 500,
  function_unavailable: 503,
  store_unavailable: 503,
  timeout: 504,
} as const;

/** A stable error code. */
export type ErrorCode = keyof typeof errorStatus;

/** The JSON body of every error response: `{"error": {...}}`. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

/**
 * An error a user can act on: a code, a sentence-case message, optional
 * details. Only `internal` errors capture a stack: the others are answers
 * (a 429 under overload among them), and capturing one costs microseconds.
 */
export class IsolaneError extends Error {
  /** Creates an error with a stable code and optional details (Zod issues, a reason). */
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** Extra response headers, such as `Retry-After`. */
    readonly headers?: Record<string, string>,
  ) {
    const limit = Error.stackTraceLimit;
    if (code !== "internal") Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }

  override get name(): string {
    return "IsolaneError";
  }

  /** The JSON body for this error. */
  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  /** Rebuilds an error that crossed a message boundary. */
  static from(body: ErrorBody): IsolaneError {
    return new IsolaneError(body.code, body.message, body.details);
  }
}

/** The HTTP status of an error code. */
export function statusOf(code: ErrorCode): number {
  return errorStatus[code];
}
