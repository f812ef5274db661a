/**
 * Who may call a function, and from which web origins. A function's `auth`
 * option picks the check: none, a bearer key made through the admin API
 * (stored hashed), or a JWT verified with `jose` against the configured HS256
 * secret or JWKS. Checks run before the body is read. Under `deno task dev`
 * (`--dev-admin`) folder functions are called without auth. A function's
 * `cors` option applies Hono's `cors` middleware to its invocation routes.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import * as jose from "jose";
import { IsolaneError } from "../errors.ts";
import { log } from "../log.ts";
import type { InvocationKeys } from "../registry/invocation_keys.ts";
import type { Registry } from "../registry/registry.ts";
import type { FunctionOptions } from "../sdk.ts";

/** Where JWTs are verified against; at least one of `secret` and `jwksUrl`. */
export interface JwtSettings {
  /** HS256 secret. */
  secret?: string;
  /** JWKS URL (asymmetric keys: RS256, ES256, EdDSA…). */
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
}

/** Options of {@link InvocationAuth}. */
export interface InvocationAuthOptions {
  keys: InvocationKeys;
  jwt: JwtSettings;
  /** Development (`--dev-admin`): folder functions are called without auth. */
  devMode: boolean;
}

const challenge = 'Bearer realm="isolane"';

/**
 * The refusal of a request admitted under one version's `auth` (`admitted`) whose body, once whole, would go to a
 * version that swapped in meanwhile (a redeploy while the body arrived) with another `auth` (`serving`): that
 * version's check never ran on this request. 503 `function_unavailable` with `retry-after: 1`, so that the retry is
 * checked against the version that serves; `undefined` when both take the same auth.
 */
export function authSwapped(
  name: string,
  admitted: FunctionOptions["auth"] | undefined,
  serving: FunctionOptions["auth"] | undefined,
): IsolaneError | undefined {
  if ((admitted ?? "none") === (serving ?? "none")) return undefined;
  return new IsolaneError(
    "function_unavailable",
    `Function '${name}' was redeployed with another invocation auth ('${admitted ?? "none"}', now '${
      serving ?? "none"
    }') while the request body arrived; retry the request`,
    undefined,
    { "retry-after": "1" },
  );
}

function unauthorized(message: string, invalidToken: boolean): IsolaneError {
  return new IsolaneError("unauthorized", message, undefined, {
    "www-authenticate": invalidToken ? `${challenge}, error="invalid_token"` : challenge,
  });
}

/** Checks callers of functions that ask for a key or a JWT. */
export class InvocationAuth {
  readonly #keys: InvocationKeys;
  readonly #jwt: JwtSettings;
  readonly #devMode: boolean;
  readonly #secret: Uint8Array | undefined;
  readonly #jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined;

  /** Creates the checker; the JWKS, if any, is fetched on first use and cached by jose. */
  constructor({ keys, jwt, devMode }: InvocationAuthOptions) {
    this.#keys = keys;
    this.#jwt = jwt;
    this.#devMode = devMode;
    this.#secret = jwt.secret ? new TextEncoder().encode(jwt.secret) : undefined;
    this.#jwks = jwt.jwksUrl ? jose.createRemoteJWKSet(new URL(jwt.jwksUrl)) : undefined;
  }

  /**
   * Middleware for an invocation route with a `:name` parameter: lets the
   * request through, or throws `unauthorized` (401, `WWW-Authenticate: Bearer`).
   * Throws `not_found`/`function_unavailable` as `registry.serving` does.
   */
  middleware(registry: Registry): MiddlewareHandler {
    const check = this.check.bind(this);
    return async function invocationAuth(c, next) {
      const name = c.req.param("name")!;
      const entry = registry.require(name);
      const fn = registry.serving(name);
      await check(c, { name, auth: fn.manifest.options.auth, source: entry.source });
      await next();
    };
  }

  /** Throws unless the request may call the function. */
  async check(
    c: Context,
    { name, auth, source }: { name: string; auth: FunctionOptions["auth"]; source: "folder" | "deployed" },
  ): Promise<void> {
    if (auth === "none" || (this.#devMode && source === "folder")) return;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    const token = match?.[1];
    if (auth === "key") {
      if (!token) {
        throw unauthorized(
          `Function '${name}' needs an invocation key: send 'Authorization: Bearer <key>' (POST /v1/functions/${name}/keys makes one)`,
          false,
        );
      }
      if (await this.#keys.verify(name, token) === null) {
        throw unauthorized(`The key is not a valid invocation key of function '${name}'`, true);
      }
      return;
    }
    if (!this.#secret && !this.#jwks) {
      throw new IsolaneError(
        "function_unavailable",
        `Function '${name}' needs JWTs verified, but the runtime has neither ISOLANE_JWT_SECRET nor ISOLANE_JWKS_URL`,
      );
    }
    if (!token) {
      throw unauthorized(`Function '${name}' needs a JWT: send 'Authorization: Bearer <token>'`, false);
    }
    await this.#verifyJwt(name, token);
  }

  async #verifyJwt(name: string, token: string): Promise<void> {
    const secret = this.#secret;
    const jwks = this.#jwks;
    const key: jose.JWTVerifyGetKey = (header, jws) => {
      if (header.alg === "HS256" && secret) return secret;
      if (jwks && !header.alg?.startsWith("HS")) return jwks(header, jws);
      throw new jose.errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value ${header.alg} not allowed`);
    };
    try {
      await jose.jwtVerify(token, key, {
        ...(this.#jwt.issuer ? { issuer: this.#jwt.issuer } : {}),
        ...(this.#jwt.audience ? { audience: this.#jwt.audience } : {}),
      });
    } catch (error) {
      // The key set could not be fetched: not the caller's fault.
      if (
        error instanceof jose.errors.JWKSTimeout || error instanceof jose.errors.JWKSInvalid ||
        !(error instanceof jose.errors.JOSEError)
      ) {
        log("error", "JWKS unavailable", { function: name, url: this.#jwt.jwksUrl, reason: String(error) });
        throw new IsolaneError(
          "function_unavailable",
          `Cannot verify JWTs for function '${name}' now: the key set at ISOLANE_JWKS_URL is unavailable`,
          undefined,
          { "retry-after": "5" },
        );
      }
      throw unauthorized(`The JWT was refused: ${error.message}`, true);
    }
  }
}

/**
 * Middleware applying a function's `cors` option with Hono's `cors`
 * middleware (made once per loaded version); without the option, no CORS
 * headers are sent. An `OPTIONS` preflight is answered here (204).
 */
export function functionCors(registry: Registry): MiddlewareHandler {
  const made = new WeakMap<object, MiddlewareHandler>();
  return async function functionCors(c, next) {
    const options = registry.get(c.req.param("name")!)?.current?.manifest.options;
    if (!options?.cors) return await next();
    let middleware = made.get(options);
    if (!middleware) {
      const { origins, methods, headers, exposeHeaders, credentials, maxAge } = options.cors;
      middleware = cors({
        origin: origins,
        allowMethods: methods,
        ...(headers ? { allowHeaders: headers } : {}),
        ...(exposeHeaders ? { exposeHeaders } : {}),
        credentials,
        ...(maxAge !== undefined ? { maxAge } : {}),
      });
      made.set(options, middleware);
    }
    return await middleware(c, next);
  };
}
