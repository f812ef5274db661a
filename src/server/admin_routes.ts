/**
 * The admin API: deploy a function as a bundle, list its versions, roll back,
 * delete. Deploys swap atomically: a version serves only once all its
 * isolates are ready; one that fails answers 422 and the old one keeps serving.
 * Deploy, rollback and delete of one name are serialised (across instances
 * with a shared store), so two deploys get two versions and none is lost.
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { IsolaneError } from "../errors.ts";
import type { StoreSync } from "../store/sync.ts";
import type { InvocationKeys } from "../registry/invocation_keys.ts";
import { functionNamePattern, type Registry } from "../registry/registry.ts";
import { adminAuth, type AdminMode } from "./admin_auth.ts";
import { guardBodyRead } from "./body_guard.ts";

/** A rollback body is `{"version": n}` or empty: more than this is no rollback body. */
const maxRollbackBytes = 4096;

const bundleType = /^application\/(gzip|x-gzip|x-tar\+gzip|octet-stream)\s*(;|$)/i;

function checkName(name: string): string {
  if (!functionNamePattern.test(name)) {
    throw new IsolaneError(
      "invalid_input",
      `'${name}' is not a function name: use letters, digits, '-' and '_' (at most 64)`,
    );
  }
  return name;
}

/** Options of {@link adminRoutes}. */
export interface AdminOptions {
  registry: Registry;
  /** Deploys, rolls back and deletes through the function store. */
  sync: StoreSync;
  mode: AdminMode;
  maxBundleBytes: number;
  /** How long an admin request's body may take to arrive (`ISOLANE_UPLOAD_TIMEOUT_MS`); past it, 408. */
  uploadTimeoutMs: number;
  /** Invocation keys, forgotten with the function. */
  keys?: InvocationKeys;
}

/** Routes under `/v1/functions/:name` for deploying and managing versions. */
export function adminRoutes(
  { registry, sync, mode, maxBundleBytes, uploadTimeoutMs, keys }: AdminOptions,
): Hono {
  const app = new Hono();
  const admin = adminAuth(mode);
  const limit = bodyLimit({
    maxSize: maxBundleBytes,
    onError: () => {
      throw new IsolaneError(
        "body_too_large",
        `The bundle is larger than ${maxBundleBytes} bytes (ISOLANE_MAX_BUNDLE_BYTES)`,
      );
    },
  });
  const rollbackLimit = bodyLimit({
    maxSize: maxRollbackBytes,
    onError: () => {
      throw new IsolaneError(
        "body_too_large",
        `The rollback body is larger than ${maxRollbackBytes} bytes; send it empty or as {"version": 2}`,
      );
    },
  });

  /**
   * The request's body, read within `limit` (which reads a chunked body whole itself) and by
   * `ISOLANE_UPLOAD_TIMEOUT_MS`: cut short 400, stalled 408, too large 413.
   */
  async function readAdminBody(c: Context, limit: MiddlewareHandler): Promise<ArrayBuffer> {
    let body: ArrayBuffer | undefined;
    await guardBodyRead(
      () =>
        limit(c, async () => {
          body = await c.req.arrayBuffer();
        }),
      uploadTimeoutMs,
      { deadlineName: "ISOLANE_UPLOAD_TIMEOUT_MS" },
    );
    return body!;
  }

  app.put(
    "/v1/functions/:name",
    admin,
    async (c) => {
      const name = checkName(c.req.param("name"));
      if (!bundleType.test(c.req.header("content-type") ?? "")) {
        throw new IsolaneError(
          "unsupported_media_type",
          "Send the bundle as a .tar.gz with 'content-type: application/gzip'",
        );
      }
      if (registry.get(name)?.source === "folder") {
        throw new IsolaneError(
          "conflict",
          `Function '${name}' comes from the functions folder; deploy under another name`,
        );
      }
      // Read whole before anything is written: an upload cut short or stalled deploys nothing.
      const bundle = new Uint8Array(await readAdminBody(c, limit));
      const version = await sync.deploy(name, bundle);
      const isolates = registry.get(name)?.current?.pool.isolates().length ?? 0;
      return c.json({ name, version, status: "ready", isolates }, 201);
    },
  );

  app.get("/v1/functions/:name/versions", async (c) => {
    const name = checkName(c.req.param("name"));
    const entry = registry.get(name);
    if (entry?.source === "folder") {
      return c.json({ name, source: "folder", current: entry.current?.version ?? null, versions: [] });
    }
    const stored = await sync.store.versions(name);
    if (!entry && stored.versions.length === 0) throw new IsolaneError("not_found", `No function named '${name}'`);
    return c.json({ name, source: "deployed", ...stored });
  });

  app.post("/v1/functions/:name/rollback", admin, async (c) => {
    const name = checkName(c.req.param("name"));
    if (registry.get(name)?.source === "folder") {
      throw new IsolaneError(
        "conflict",
        `Function '${name}' comes from the functions folder; it has no deployed versions`,
      );
    }
    const text = new TextDecoder().decode(await readAdminBody(c, rollbackLimit));
    let body: unknown;
    try {
      body = text.trim() === "" ? {} : JSON.parse(text);
    } catch {
      throw new IsolaneError("invalid_json", 'The rollback body must be empty or JSON like {"version": 2}');
    }
    // Anything else (`[]`, a typo such as {"verison": 2}) rolled back to the version before, unasked.
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new IsolaneError("invalid_input", 'The rollback body must be empty or a JSON object like {"version": 2}');
    }
    const unknown = Object.keys(body).filter((key) => key !== "version");
    if (unknown.length > 0) {
      throw new IsolaneError(
        "invalid_input",
        `The rollback body has ${
          unknown.map((key) => `'${key}'`).join(", ")
        }; its only key is 'version', as in {"version": 2}`,
      );
    }
    const asked = (body as { version?: unknown }).version;
    // A safe integer: 9007199254740993 parses as ...992 and would name another version than the one asked for.
    if (asked !== undefined && !(typeof asked === "number" && Number.isSafeInteger(asked))) {
      throw new IsolaneError("invalid_input", 'The rollback version must be an integer, as in {"version": 2}');
    }
    const { version: target, previous } = await sync.rollback(name, asked);
    return c.json({ name, version: target, previous });
  });

  app.delete("/v1/functions/:name", admin, async (c) => {
    const name = checkName(c.req.param("name"));
    const entry = registry.get(name);
    if (entry?.source === "folder") {
      throw new IsolaneError(
        "conflict",
        `Function '${name}' comes from the functions folder; remove the folder instead`,
      );
    }
    if (!(await sync.remove(name))) throw new IsolaneError("not_found", `No function named '${name}'`);
    await keys?.removeAll(name);
    return c.json({ name, deleted: true });
  });

  return app;
}
