/**
 * One copy of a function version's weights per device (issue 15). Every
 * Worker-hosted CUDA lane of a device shares the device's primary context,
 * so device memory that one lane allocates is valid in the others: the first
 * lane of a device to load uploads each model's weights into one block and
 * reports it (`publish`); the pool holds the blocks and starts the device's
 * other lanes, and any lane respawned later, with their addresses
 * (`attach`); each session then takes its initializers from the block
 * (`AddInitializer`) instead of a copy of its own. The blocks are freed when
 * the version is unloaded, after every lane has released its sessions;
 * never when a lane crashes, so the others (and its respawn) keep computing
 * from them.
 *
 * Process-hosted lanes have a CUDA context of their own, where no other
 * lane's pointer is valid: they load their own copy, and so do TensorRT
 * lanes (TensorRT builds engines with weights of its own) and a device's
 * only lane.
 * @module
 */
import type { LanePlan, ModelInfo, SharedWeights, WeightsPlan } from "../protocol.ts";
import type { Isolation } from "./host.ts";

/**
 * Takes over device memory that a lane allocated, for the runtime's main
 * thread (the composition root gives one over the CUDA driver: `DeviceMemoryHolder`).
 */
export interface WeightMemory {
  /**
   * Holds the block at `address` on `device`; the returned function frees it.
   * @throws when the device's context cannot be held (the block is then not shared).
   */
  hold(device: number, address: bigint): () => void;
}

type DeviceState =
  | { kind: "unpublished" }
  | { kind: "published"; models: Record<string, SharedWeights> }
  | { kind: "off"; reason: string };

/** A lane as the store plans for it. */
export interface WeightLane {
  lane: LanePlan;
  isolation: Isolation;
}

/** The shared weights of one function version, by device. */
export class SharedWeightStore {
  readonly #memory: WeightMemory | undefined;
  readonly #devices = new Map<number, DeviceState>();
  readonly #frees: (() => void)[] = [];
  /** Worker-hosted CUDA lanes of each device. */
  readonly #lanes = new Map<number, number>();
  #closed = false;

  /** `memory` is absent where the runtime has no CUDA driver; `lanes` are all the version's lanes. */
  constructor(memory: WeightMemory | undefined, lanes: readonly WeightLane[]) {
    this.#memory = memory;
    for (const { lane, isolation } of lanes) {
      if (lane.kind === "cuda" && isolation === "worker") {
        this.#lanes.set(lane.device, (this.#lanes.get(lane.device) ?? 0) + 1);
      }
    }
  }

  /** How a lane gets its weights: `undefined` on the CPU. */
  planFor({ lane, isolation }: WeightLane): WeightsPlan | undefined {
    if (lane.kind !== "cuda") return undefined;
    const off = (reason: string): WeightsPlan => ({ mode: "off", reason });
    if (isolation === "process") {
      return off("a process-hosted lane has a CUDA context of its own, where no other lane's pointer is valid");
    }
    if (lane.provider === "tensorrt") return off("TensorRT builds its engines with weights of its own");
    if (!this.#memory) return off("shared weights are off (ISOLANE_SHARED_WEIGHTS=off)");
    if ((this.#lanes.get(lane.device) ?? 0) < 2) return off(`the only lane on cuda:${lane.device}: nothing to share`);
    const state = this.#devices.get(lane.device) ?? { kind: "unpublished" };
    if (state.kind === "unpublished") return { mode: "publish" };
    if (state.kind === "off") return off(state.reason);
    return { mode: "attach", models: state.models };
  }

  /**
   * A `publish` lane on `device` is ready with these blocks (`published`) and
   * models: the store holds the blocks from now on. Without blocks, the
   * device's other lanes load their own copies, for the reason its models give.
   */
  published(device: number, published: Record<string, SharedWeights>, models: readonly ModelInfo[]): void {
    const held: Record<string, SharedWeights> = {};
    for (const [name, block] of Object.entries(published)) {
      if (this.#closed || !this.#memory) break;
      try {
        this.#frees.push(this.#memory.hold(device, BigInt(block.address)));
        held[name] = block;
      } catch {
        // Not held: the block stays with the context, and no other lane is told of it.
      }
    }
    if (Object.keys(held).length > 0) {
      this.#devices.set(device, { kind: "published", models: held });
      return;
    }
    const reason = models.map((m) => m.weights?.reason).find((r) => r) ?? "the first lane shares no weights";
    this.#devices.set(device, { kind: "off", reason });
  }

  /**
   * Frees every block. Call once every lane of the version has ended (after
   * a planned unload each has released its sessions); later plans load their
   * own copies.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const free of this.#frees.splice(0)) {
      try {
        free();
      } catch {
        // The context went away with its memory.
      }
    }
    this.#devices.clear();
  }

  /**
   * The API's view of each model's weights across `hosts` (live lanes):
   * shared when every CUDA lane computes from its device's copy, with the
   * lanes that do and the copies (devices) they share.
   */
  summarise(models: readonly ModelInfo[], hosts: readonly { models: readonly ModelInfo[] }[]): ModelInfo[] {
    return models.map((model) => {
      const reports = hosts.map((h) => h.models.find((m) => m.name === model.name)?.weights).filter((w) => w);
      if (reports.length === 0) return model;
      const shared = reports.filter((w) => w!.shared);
      const copies = [...this.#devices.values()].filter((s) => s.kind === "published" && s.models[model.name]).length;
      return {
        ...model,
        weights: {
          shared: shared.length === reports.length,
          ...(shared[0] ? { tensors: shared[0].tensors, bytes: shared[0].bytes } : {}),
          lanes: shared.length,
          copies,
          ...(shared.length < reports.length ? { reason: reports.find((w) => !w!.shared)!.reason } : {}),
        },
      };
    });
  }
}
