/**
 * Who may use the admin API (deploy, rollback, delete): the holder of
 * `ISOLANE_ADMIN_TOKEN` (compared in constant time), or, in development
 * without a token, loopback clients only. Without either the API is off.
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
