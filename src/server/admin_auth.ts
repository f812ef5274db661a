/**
 * Who may use the admin API (deploy, rollback, delete): the holder of
 * `ISOLANE_ADMIN_TOKEN` (compared in constant time), or, in development
 * without a token, loopback clients only. Without either the API is off.
 *
 * In development a web page open in the developer's browser is a loopback
 * client too: a no-body `POST` is a "simple" cross-origin request sent without
 * a preflight, and DNS rebinding reaches 127.0.0.1 under another name. So
 * that mode also refuses a `Host` that is not a loopback name and an `Origin`
 * that is not a loopback origin.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import { timingSafeEqual } from "hono/utils/buffer";
import { IsolaneError } from "../errors.ts";

/** How the admin API is guarded. */
export type AdminMode = { kind: "token"; token: string } | { kind: "loopback" } | { kind: "off" };

/** The mode from the configuration. */
export function adminMode(config: { adminToken?: string; devAdmin: boolean }): AdminMode {
  if (config.adminToken) return { kind: "token", token: config.adminToken };
  return config.devAdmin ? { kind: "loopback" } : { kind: "off" };
}

const loopback = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** `localhost`, `127.0.0.1` or `[::1]`, with any port: the names a loopback listener is reached by. */
const loopbackHost = /^(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/i;

/** Whether a `Host` header names the loopback interface. */
export function isLoopbackHost(host: string): boolean {
  return loopbackHost.test(host);
}

/** Whether an `Origin` header is a page served from loopback (`http://localhost:5173`, say); `null` is not. */
export function isLoopbackOrigin(origin: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  return (url.protocol === "http:" || url.protocol === "https:") && isLoopbackHost(url.host);
}

/** Middleware that lets admin requests through or answers 401/403. */
export function adminAuth(mode: AdminMode): MiddlewareHandler {
  return async function adminAuth(c, next) {
    if (mode.kind === "off") {
      throw new IsolaneError("admin_disabled", "The admin API is off; start the runtime with ISOLANE_ADMIN_TOKEN set");
    }
    if (mode.kind === "loopback") {
      const address = getConnInfo(c).remote.address ?? "";
      if (!loopback.test(address)) {
        throw new IsolaneError(
          "admin_disabled",
          "Without ISOLANE_ADMIN_TOKEN the admin API serves loopback clients only",
        );
      }
      const host = c.req.header("host") ?? new URL(c.req.url).host;
      if (!isLoopbackHost(host)) {
        throw new IsolaneError(
          "untrusted_origin",
          `Without ISOLANE_ADMIN_TOKEN the admin API answers only requests addressed to localhost, 127.0.0.1 or [::1], not to '${host}' (a DNS rebinding guard)`,
        );
      }
      const origin = c.req.header("origin");
      if (origin !== undefined && !isLoopbackOrigin(origin)) {
        throw new IsolaneError(
          "untrusted_origin",
          `Without ISOLANE_ADMIN_TOKEN the admin API refuses cross-site requests from web pages (Origin '${origin}'); use the CLI or set ISOLANE_ADMIN_TOKEN`,
        );
      }
      return await next();
    }
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match || !(await timingSafeEqual(match[1], mode.token))) {
      throw new IsolaneError(
        "unauthorized",
        "Send the admin token as 'Authorization: Bearer <ISOLANE_ADMIN_TOKEN>'",
        undefined,
        {
          "www-authenticate": 'Bearer realm="isolane"',
        },
      );
    }
    await next();
  };
}
