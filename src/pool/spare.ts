/**
 * Spare isolates: a host started before the function it will serve has
 * booted, so that importing the isolate runtime (and, on CPU lanes, loading
 * ONNX Runtime's addon) is done by the time its init arrives, as Supabase's
 * edge-runtime keeps workers warm. A spare has run no user code, holds no
 * GPU lane and no session, and still holds the ffi permission, which it
 * drops at boot like any isolate.
 *
 * A Deno Worker's permissions and a child process's flags are fixed when it
 * is created, so a spare is made with the limits of the isolate it will
 * become, and used only where those are the same ({@link fits}); otherwise it
 * is discarded and the isolate starts as usual. Two kinds:
 * - a function's **respawn spare** (`supervisor.ts`): made with the limits of
 *   its lanes once they serve (on process hosts only after its first
 *   respawn), taken when an isolate is respawned (after a timeout, a crash),
 *   then made again;
 * - a **load spare** (`load_function.ts`): made when a version's folder is
 *   known, with the limits a function that declares nothing gets, while its
 *   module is inspected in a bare Worker; it serves the first lane when the
 *   manifest asks for no more than that.
 * @module
 */
import type { LanePlan } from "../protocol.ts";
import { log } from "../log.ts";
import type { FunctionLimits } from "./limits.ts";
import { ProcessHost } from "./process_host.ts";
import { WorkerHost } from "./worker_host.ts";

/** A host started ahead of its function, with the limits it was created with. */
export interface Spare {
  readonly host: WorkerHost | ProcessHost;
  readonly limits: FunctionLimits;
  /** The kind of lane it was made for: only a CPU spare loads ONNX Runtime before its init. */
  readonly lane: LanePlan["kind"];
}

/**
 * Starts a spare host for function `name` with `limits`, for a lane of kind `lane`; `models` (default true): the
 * function has models, or may have. `purpose` is logged ("spare isolate started", debug).
 */
export function prepareSpare(
  name: string,
  { limits, lane, purpose, models = true }: {
    limits: FunctionLimits;
    lane: LanePlan["kind"];
    purpose: "ready" | "load" | "respawn";
    models?: boolean;
  },
): Spare {
  const options = { warm: lane === "cpu" && (models ? "models" as const : true) };
  const host = limits.isolation === "process"
    ? ProcessHost.prepare(name, limits, options)
    : WorkerHost.prepare(name, limits, options);
  log("debug", "spare isolate started", {
    function: name,
    isolate: host.id,
    isolation: host.isolation,
    ...(host.pid ? { pid: host.pid } : {}),
    purpose,
  });
  return { host, limits, lane };
}

/**
 * Whether `spare` can become an isolate with `limits` on a lane of kind `lane`: alive, the same host kind and lane
 * kind, the same grants (paths under a granted folder add nothing), and for a process its heap and CPU limits.
 */
export function fits(spare: Spare, limits: FunctionLimits, lane: LanePlan["kind"]): boolean {
  const a = spare.limits;
  if (!spare.host.alive || spare.lane !== lane || a.isolation !== limits.isolation) return false;
  if (a.isolation === "process" && (a.memoryMb !== limits.memoryMb || a.cpuTimeMs !== limits.cpuTimeMs)) return false;
  return grantKey(a.permissions) === grantKey(limits.permissions);
}

const kinds = ["read", "write", "net", "env", "ffi", "run", "sys", "import"] as const;

/** A canonical form of a permission set: path lists sorted, and paths under another listed path dropped. */
function grantKey(permissions: Deno.PermissionOptionsObject): string {
  const canonical = kinds.map((kind) => {
    const value = permissions[kind] ?? false;
    if (!Array.isArray(value)) return [kind, value];
    const list = [...new Set(value.map(String))];
    const paths = kind === "read" || kind === "write";
    const kept = paths
      ? list.filter((p) => !list.some((q) => q !== p && p.startsWith(q.endsWith("/") ? q : `${q}/`)))
      : list;
    return [kind, kept.sort()];
  });
  return JSON.stringify(canonical);
}
