/**
 * The runtime's ready spare: one isolate started before any function asks
 * for it (`src/pool/spare.ts`), with the limits of a function that declares
 * nothing, whose only readable folder is an empty one of its own under
 * `ISOLANE_DATA` (`spares/<pid>/<uuid>`). A deployed version (whose folder
 * never changes) takes it by hard-linking its files into that folder, and
 * serves from there: so a deploy does not wait for an isolate to import the
 * runtime.
 *
 * Why a folder of its own: a Deno Worker's permissions (a child process's
 * flags) are fixed when it is created, and cannot be narrowed to a path
 * later (revoking a path revokes the whole grant that holds it). A spare made
 * before a function is known can therefore read only a folder that nothing
 * else lives in. Hard links put the version's files there without a copy;
 * where they cannot be made (another filesystem, a symbolic link in the
 * folder), the version loads as before and the spare is replaced.
 *
 * @example
 * ```ts
 * const ready = new ReadySpare(".isolane/spares", { defaultIsolation: "auto" });
 * await ready.start();
 * const taken = await ready.take("mlp", "/srv/functions/mlp"); // { spare, dir: ".isolane/spares/<pid>/<uuid>" }
 * ```
 * @module
 */
import { join, resolve } from "node:path";
import { log } from "../log.ts";
import { exists } from "../_exists.ts";
import { type FunctionLimits, limitsFor } from "../pool/limits.ts";
import { prepareSpare, type Spare } from "../pool/spare.ts";
import { functionOptionsSchema } from "../sdk.ts";

/**
 * The limits of an isolate of a function that declares nothing but files in its folder `dir`: what a spare made
 * before the manifest is known is started with.
 */
export function undeclaredLimits(dir: string, defaultIsolation?: "auto" | "worker" | "process"): FunctionLimits {
  const options = functionOptionsSchema.parse({ description: "-" });
  return limitsFor(options, { dir, files: [], lane: { kind: "cpu" }, defaultIsolation });
}

/** Hard-links every file under `from` into `to` (which exists), folders made as they come. */
async function linkTree(from: string, to: string): Promise<void> {
  for await (const item of Deno.readDir(from)) {
    const source = join(from, item.name);
    const target = join(to, item.name);
    if (item.isDirectory) {
      await Deno.mkdir(target);
      await linkTree(source, target);
    } else if (item.isFile) {
      await Deno.link(source, target);
    } else {
      throw new Error(`${source} is not a plain file or folder`);
    }
  }
}

/** One ready spare at a time, replaced after each load that takes it. */
export class ReadySpare {
  readonly #root: string;
  readonly #defaultIsolation: "auto" | "worker" | "process" | undefined;
  #current: { spare: Spare; dir: string } | undefined;
  #closed = false;

  readonly #parent: string;

  /**
   * `parent` holds a folder per runtime process (instances may share `ISOLANE_DATA`), in which each spare gets its
   * own folder.
   */
  constructor(parent: string, { defaultIsolation }: { defaultIsolation?: "auto" | "worker" | "process" } = {}) {
    this.#parent = resolve(parent);
    this.#root = join(this.#parent, String(Deno.pid));
    this.#defaultIsolation = defaultIsolation;
  }

  /** Removes what runtimes that are gone left (Linux: no `/proc/<pid>`), and starts the first spare. */
  async start(): Promise<void> {
    await Deno.mkdir(this.#parent, { recursive: true });
    for await (const item of Deno.readDir(this.#parent)) {
      const gone = item.name === String(Deno.pid) ||
        (Deno.build.os === "linux" && /^\d+$/.test(item.name) && !(await exists(`/proc/${item.name}`)));
      if (gone) await removeFolder(join(this.#parent, item.name));
    }
    await Deno.mkdir(this.#root, { recursive: true });
    this.replenish();
  }

  /**
   * Starts a spare unless one is waiting (call after a load has taken one, once it is done). Worker hosts only: a
   * process spare would hold some 80 MB resident while no deploy comes, and deploys with one raised the runtime's own
   * resident memory in `tests/containment_test.ts` by some 100 MB (cause not found), where Worker spares did not.
   */
  replenish(): void {
    if (this.#closed || this.#current?.spare.host.alive) return;
    const dir = join(this.#root, crypto.randomUUID());
    const limits = undeclaredLimits(dir, this.#defaultIsolation);
    if (limits.isolation !== "worker") return;
    Deno.mkdirSync(dir);
    const spare = prepareSpare("(ready spare)", { limits, lane: "cpu", purpose: "ready" });
    this.#current = { spare, dir };
  }

  /**
   * Hands the spare to function `name`, whose version is in `dir`: its files are hard-linked into the spare's
   * folder, returned as `dir`, from which the version must then be served (and which it must remove with
   * {@link removeFolder} once it has ended). `undefined` when there is no live spare or the files cannot be linked.
   */
  async take(name: string, dir: string): Promise<{ spare: Spare; dir: string } | undefined> {
    const current = this.#current;
    this.#current = undefined;
    if (!current) return undefined;
    try {
      if (!current.spare.host.alive) throw new Error("the spare ended");
      await linkTree(dir, current.dir);
      return current;
    } catch (error) {
      log("debug", "spare isolate discarded", {
        function: name,
        isolate: current.spare.host.id,
        reason: `its folder cannot hold the version's files: ${error instanceof Error ? error.message : error}`,
      });
      current.spare.host.discard();
      await removeFolder(current.dir);
      return undefined;
    }
  }

  /** Ends the waiting spare and removes its folder. */
  async close(): Promise<void> {
    this.#closed = true;
    const current = this.#current;
    this.#current = undefined;
    current?.spare.host.discard();
    if (current) await removeFolder(current.dir);
    await Deno.remove(this.#root).catch(() => {});
  }
}

/** Removes a folder a version served from (hard links: the stored version keeps its files). */
export async function removeFolder(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
