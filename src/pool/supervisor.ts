/**
 * The supervisor of one function version's isolates: one host per lane,
 * started with the function's limits, respawned with back-off when it ends
 * unplanned, and the health that follows from that.
 * @module
 */
import type { LanePlan, ModelInfo, StagingLayout, WeightsPlan } from "../protocol.ts";
import type { FunctionOptions } from "../sdk.ts";
import { IsolaneError } from "../errors.ts";
import { log } from "../log.ts";
import { backoffDelay } from "./backoff.ts";
import type { HostSpec, IsolateHost } from "./host.ts";
import { isolationFor, limitsFor } from "./limits.ts";
import { SharedWeightStore, type WeightMemory } from "./shared_weights.ts";
import { WorkerHost } from "./worker_host.ts";
import { ProcessHost } from "./process_host.ts";
import type { PoolObserver } from "./observer.ts";
import { fits, prepareSpare, type Spare } from "./spare.ts";

/** Everything a pool needs to start its isolates. */
export interface PoolSpec {
  name: string;
  /** The function's folder (absolute). */
  dir: string;
  moduleUrl: string;
  options: FunctionOptions;
  /** Absolute model paths by name. */
  modelPaths: Record<string, string>;
  /** Absolute asset paths by name. */
  assetPaths: Record<string, string>;
  /** One isolate per lane. */
  lanes: LanePlan[];
  ortThreads: number;
  /** The kernels' PTX, read by isolates on CUDA lanes. */
  kernelsPtxPath: string;
  /** Pinned staging that CUDA lanes map for a `runModel` handler's model (see `InitMessage.staging`). */
  staging?: StagingLayout;
  /** Holds device memory for the version's shared weights (`shared_weights.ts`); absent without CUDA. */
  weightMemory?: WeightMemory;
  bootTimeoutMs?: number;
  /** Where isolates live when the function leaves `isolation` at "auto". */
  defaultIsolation?: "auto" | "worker" | "process";
  /** Told of dispatches and restarts (metrics). */
  observer?: PoolObserver;
  /**
   * A spare started while the version loaded (`spare.ts`): the first lane boots in it where it fits, else it is
   * discarded. The supervisor owns it from its constructor on.
   */
  spare?: Spare;
  /** Keep a respawn spare per function (`ISOLANE_SPARE_ISOLATES`); default true. */
  spares?: boolean;
  /**
   * Process hosts too: a respawn spare once the function has been respawned (`ISOLANE_SPARE_ISOLATES=all`); default
   * false (Worker hosts only).
   */
  processSpares?: boolean;
}

/** A lane and the host that currently serves it. */
export interface Slot {
  index: number;
  lane: LanePlan;
  host: IsolateHost | undefined;
  /** Batches posted to the host and not yet fully answered. */
  batches: number;
  /** Crashes and failed starts since the last successful job. */
  failures: number;
  restarts: number;
  lastError: string | undefined;
  respawnTimer: ReturnType<typeof setTimeout> | undefined;
}

/** Failures in a row after which a lane counts as down. */
const unhealthyAfter = 3;

/** The init message and limits of an isolate of `spec` on `lane`; `weights` says how a CUDA lane gets its weights. */
export function hostSpecFor(spec: PoolSpec, lane: LanePlan, weights?: WeightsPlan): HostSpec {
  const kernels = lane.kind === "cuda" ? [spec.kernelsPtxPath] : [];
  const limits = limitsFor(spec.options, {
    dir: spec.dir,
    files: [...Object.values(spec.modelPaths), ...Object.values(spec.assetPaths), ...kernels],
    lane,
    defaultIsolation: spec.defaultIsolation,
  });
  const hostSpec: HostSpec = {
    init: {
      mode: "serve",
      name: spec.name,
      moduleUrl: spec.moduleUrl,
      modelPaths: spec.modelPaths,
      assetPaths: spec.assetPaths,
      kernelsPtxPath: lane.kind === "cuda" ? spec.kernelsPtxPath : null,
      lane,
      ortThreads: spec.ortThreads,
      ...(lane.kind === "cuda" && spec.staging ? { staging: spec.staging } : {}),
      ...(weights ? { weights } : {}),
    },
    limits,
    bootTimeoutMs: spec.bootTimeoutMs ?? 120_000,
  };
  return hostSpec;
}

/**
 * Starts a host for one lane of a function, with its limits; `weights` says how a CUDA lane gets its weights. It
 * boots in `spare` where that fits the lane's limits; a spare that does not is discarded.
 */
export function startHost(
  spec: PoolSpec,
  lane: LanePlan,
  { weights, spare }: { weights?: WeightsPlan; spare?: Spare } = {},
): Promise<IsolateHost> {
  const hostSpec = hostSpecFor(spec, lane, weights);
  if (spare) {
    if (fits(spare, hostSpec.limits, lane.kind)) return spare.host.launch(hostSpec);
    log("debug", "spare isolate discarded", {
      function: spec.name,
      isolate: spare.host.id,
      reason: spare.host.alive ? "its limits differ from the lane's" : "it ended",
    });
    spare.host.discard();
  }
  const { limits } = hostSpec;
  return limits.isolation === "process" ? ProcessHost.start(hostSpec) : WorkerHost.start(hostSpec);
}

/**
 * How long after a version starts (Worker hosts), and after each respawn, the function's next respawn spare is started:
 * after a start it waits out the first requests and the deploys that often follow, so that its imports do not compete
 * with them for the cores; after a respawn a short wait, so that timeouts in a row each find one.
 */
const spareDelayMs = { started: 250, respawned: 50 };

/** Keeps one host running per lane. */
export class Supervisor {
  readonly slots: Slot[];
  #models: ModelInfo[] = [];
  readonly #weights: SharedWeightStore;
  #closed = false;
  /** The load spare until the first lane has used or discarded it. */
  #loadSpare: Spare | undefined;
  /** The respawn spare, and the timer that will start it. */
  #spare: Spare | undefined;
  #spareTimer: ReturnType<typeof setTimeout> | undefined;

  /** `changed` is called whenever a host comes or goes, so the pool can dispatch or fail waiting requests. */
  constructor(readonly spec: PoolSpec, private readonly changed: () => void) {
    this.slots = spec.lanes.map((lane, index) => ({
      index,
      lane,
      host: undefined,
      batches: 0,
      failures: 0,
      restarts: 0,
      lastError: undefined,
      respawnTimer: undefined,
    }));
    this.#weights = new SharedWeightStore(
      spec.weightMemory,
      spec.lanes.map((lane) => ({ lane, isolation: isolationFor(spec.options, lane, spec.defaultIsolation) })),
    );
    this.#loadSpare = spec.spare;
  }

  /** Models as the first ready isolate reports them, with the weights' sharing across the live lanes. */
  get models(): ModelInfo[] {
    const hosts = this.slots.flatMap((s) => (s.host ? [s.host] : []));
    // The first ready isolate's, as it reports them now (placement changes as sessions per shape are made).
    return this.#weights.summarise(hosts.find((h) => h.models.length > 0)?.models ?? this.#models, hosts);
  }

  /**
   * Starts every host; rejects with the first start failure, leaving nothing
   * running. A lane that uploads its device's shared weights starts first, so
   * that the device's other lanes start with their addresses.
   */
  async start(): Promise<void> {
    // The first lane of each device whose plan is to publish.
    const first: Slot[] = [];
    const devices = new Set<number>();
    for (const slot of this.slots) {
      if (slot.lane.kind !== "cuda" || devices.has(slot.lane.device) || this.#plan(slot)?.mode !== "publish") continue;
      devices.add(slot.lane.device);
      first.push(slot);
    }
    const hosts = new Map<Slot, IsolateHost>();
    for (const phase of [first, this.slots.filter((s) => !first.includes(s))]) {
      const started = await Promise.allSettled(
        phase.map((slot) =>
          this.#startHost(slot, this.#plan(slot), slot.index === 0 ? this.#takeLoadSpare() : undefined)
        ),
      );
      started.forEach((s, i) => s.status === "fulfilled" && hosts.set(phase[i], s.value));
      const failed = started.find((s) => s.status === "rejected");
      if (failed) {
        this.#takeLoadSpare()?.host.discard();
        await Promise.all([...hosts.values()].map((host) => host.close()));
        this.#closed = true;
        this.#weights.close();
        throw (failed as PromiseRejectedResult).reason;
      }
    }
    this.#models = hosts.get(this.slots[0])?.models ?? [];
    for (const slot of this.slots) this.#attach(slot, hosts.get(slot)!);
    this.#replenish("started");
  }

  #takeLoadSpare(): Spare | undefined {
    const spare = this.#loadSpare;
    this.#loadSpare = undefined;
    return spare;
  }

  /** Starts the function's respawn spare soon, unless it has one, spares are off, or it is closed. */
  #replenish(after: keyof typeof spareDelayMs): void {
    // A respawn does not wait out the longer delay of a start.
    if (after === "respawned") {
      clearTimeout(this.#spareTimer);
      this.#spareTimer = undefined;
    }
    if (this.#closed || this.spec.spares === false || this.#spare || this.#spareTimer) return;
    // Process hosts only where asked for, and once the function has been respawned: an idle spare process costs some
    // 85 MB resident, which a function that never times out or crashes should not pay; one that has is likely to again.
    const isolation = isolationFor(this.spec.options, this.slots[0].lane, this.spec.defaultIsolation);
    if (isolation !== "worker" && (!this.spec.processSpares || after !== "respawned")) return;
    this.#spareTimer = setTimeout(() => {
      this.#spareTimer = undefined;
      if (this.#closed || this.#spare) return;
      // Every lane of a function has the same limits but for the lane itself: the first lane's stand for all.
      const lane = this.slots[0].lane;
      const { limits } = hostSpecFor(this.spec, lane);
      this.#spare = prepareSpare(this.spec.name, {
        limits,
        lane: lane.kind,
        purpose: "respawn",
        models: Object.keys(this.spec.modelPaths).length > 0,
      });
    }, spareDelayMs[after]);
  }

  /** The respawn spare, if it is alive; the next one is started after the lane it serves is up. */
  #takeSpare(): Spare | undefined {
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare && !spare.host.alive) return undefined;
    return spare;
  }

  #plan(slot: Slot): WeightsPlan | undefined {
    const isolation = isolationFor(this.spec.options, slot.lane, this.spec.defaultIsolation);
    return this.#weights.planFor({ lane: slot.lane, isolation });
  }

  /** Starts a lane's host (in `spare` where it fits); a lane that published shared weights hands their blocks to the store. */
  async #startHost(slot: Slot, plan: WeightsPlan | undefined, spare?: Spare): Promise<IsolateHost> {
    const host = await startHost(this.spec, slot.lane, { weights: plan, spare });
    if (plan?.mode === "publish" && slot.lane.kind === "cuda") {
      this.#weights.published(slot.lane.device, host.published, host.models);
    }
    return host;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether every lane is down and keeps failing. */
  get unhealthy(): boolean {
    // A loop, not `every` with a closure: the pool asks on every request (`refusal`).
    const slots = this.slots;
    for (let i = 0; i < slots.length; i++) if (slots[i].host || slots[i].failures < unhealthyAfter) return false;
    return true;
  }

  /** The error a request gets while the function is unhealthy. */
  unhealthyError(): IsolaneError {
    const last = this.slots.find((s) => s.lastError)?.lastError ?? "unknown";
    return new IsolaneError(
      "function_unavailable",
      `Function '${this.spec.name}' is unhealthy: its isolates keep failing (last error: ${last})`,
    );
  }

  /**
   * Ends every host (planned: each releases its sessions and lane first), then frees the shared weights; resolves
   * once all have ended.
   */
  /** Ends every isolate; their requests in flight are answered `function_unavailable` with `reason` (a default). */
  async closeAll(reason?: string): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#spareTimer);
    this.#spareTimer = undefined;
    this.#takeLoadSpare()?.host.discard();
    this.#spare?.host.discard();
    this.#spare = undefined;
    const closing: Promise<void>[] = [];
    for (const slot of this.slots) {
      clearTimeout(slot.respawnTimer);
      if (slot.host) closing.push(slot.host.close(undefined, reason));
      slot.host = undefined;
    }
    await Promise.all(closing);
    this.#weights.close();
  }

  #attach(slot: Slot, host: IsolateHost): void {
    slot.host = host;
    slot.batches = 0;
    host.onExit((error) => {
      if (slot.host === host) slot.host = undefined;
      slot.restarts++;
      slot.lastError = error.message;
      if (error.code !== "timeout") slot.failures++;
      this.spec.observer?.isolateStopped(this.spec.name, error.code);
      log("warn", "isolate stopped", {
        function: this.spec.name,
        isolate: host.id,
        isolation: host.isolation,
        code: error.code,
        reason: error.message,
      });
      this.#scheduleRespawn(slot);
    });
  }

  #scheduleRespawn(slot: Slot): void {
    if (this.#closed) return;
    this.changed();
    slot.respawnTimer = setTimeout(async () => {
      slot.respawnTimer = undefined;
      const started = performance.now();
      const spare = this.#takeSpare();
      try {
        const host = await this.#startHost(slot, this.#plan(slot), spare);
        if (this.#closed) return void host.close();
        this.#attach(slot, host);
        log("info", "isolate respawned", {
          function: this.spec.name,
          isolate: host.id,
          lane: slot.index,
          spare: spare?.host === host,
          ms: Math.round(performance.now() - started),
        });
        this.#replenish("respawned");
      } catch (error) {
        slot.failures++;
        slot.lastError = error instanceof Error ? error.message : String(error);
        log("error", "isolate respawn failed", { function: this.spec.name, lane: slot.index, reason: slot.lastError });
        this.#scheduleRespawn(slot);
      }
      this.changed();
    }, backoffDelay(slot.failures));
  }
}
