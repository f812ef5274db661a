/**
 * The admin API of invocation keys (functions with `auth: "key"`): make a key
 * (shown once), list keys by id, revoke one.
 * @module
 */
import { Hono } from "hono";
import { IsolaneError } from "../errors.ts";
import { log } from "../log.ts";
import type { InvocationKeys } from "../registry/invocation_keys.ts";
import type { Registry } from "../registry/registry.ts";
import { adminAuth, type AdminMode } from "./admin_auth.ts";

/** Options of {@link keyRoutes}. */
export interface KeyRoutesOptions {
  registry: Registry;
  keys: InvocationKeys;
  mode: AdminMode;
}

/**
 * `POST /v1/functions/:name/keys` (201, `{id, key, createdAt}`; 409 `conflict`
 * with `details: {auth}` when the serving version takes no key: `auth` is
 * `"none"` or `"jwt"`, so the key would never be checked),
 * `GET /v1/functions/:name/keys` (`{keys: [{id, createdAt}]}`),
 * `DELETE /v1/functions/:name/keys/:id`; all behind the admin token.
 */
export function keyRoutes({ registry, keys, mode }: KeyRoutesOptions): Hono {
  const app = new Hono();
  const admin = adminAuth(mode);
  app.post("/v1/functions/:name/keys", admin, async (c) => {
    const entry = registry.require(c.req.param("name"));
    const name = entry.name;
    const auth = entry.current?.manifest.options.auth;
    // A function that serves no version yet (loading, failed) may be getting keys for the version on its way.
    if (auth !== undefined && auth !== "key") {
      throw new IsolaneError(
        "conflict",
        `Function '${name}' takes no invocation key: its auth is "${auth}", so a key would never be checked; ` +
          `deploy a version with auth: "key" first, then make its keys`,
        { auth },
      );
    }
    const created = await keys.create(name);
    log("info", "invocation key created", { function: name, id: created.id });
    return c.json({ name, ...created }, 201);
  });
  app.get("/v1/functions/:name/keys", admin, async (c) => {
    const name = registry.require(c.req.param("name")).name;
    return c.json({ name, keys: await keys.list(name) });
  });
  app.delete("/v1/functions/:name/keys/:id", admin, async (c) => {
    const name = c.req.param("name");
    const id = c.req.param("id");
    if (!await keys.revoke(name, id)) {
      throw new IsolaneError(
        "not_found",
        `Function '${name}' has no key '${id}'; GET /v1/functions/${name}/keys lists them`,
      );
    }
    log("info", "invocation key revoked", { function: name, id });
    return c.json({ name, id, revoked: true });
  });
  return app;
}
