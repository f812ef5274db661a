/**
 * Compact forms of the per-request messages of HTTP threads' infer requests, whose tensors lie in a thread's arena:
 * a list of numbers and a list of strings instead of an object per request. A Worker's `postMessage` writes every
 * object's property names and reads them back on the other side; on the main thread, which carries every request of
 * every thread, that cost about 1 µs a request each way (`bench/thread_cpu.ts`). Both sides of each hop import this
 * file, as they do `protocol.ts`.
 * @module
 */
import { type Job, noBody, type SharedTensor } from "./protocol.ts";

/** Numbers and the strings they index. */
export interface Packed {
  nums: number[];
  strings: string[];
}

/** Builds a {@link Packed}, each distinct string once. */
export class Packer implements Packed {
  readonly nums: number[] = [];
  readonly strings: string[] = [];
  #index = new Map<string, number>();

  /** The index of `s` in {@link strings}. */
  string(s: string): number {
    let i = this.#index.get(s);
    if (i === undefined) {
      i = this.strings.push(s) - 1;
      this.#index.set(s, i);
    }
    return i;
  }

  /** The index of `s` in {@link strings}, added without looking for it (a request id: each is new). */
  unique(s: string): number {
    return this.strings.push(s) - 1;
  }

  /** Adds where tensors lie: their count, then each one's name, datatype, rank, dimensions, offset and bytes. */
  shared(tensors: readonly SharedTensor[]): void {
    const nums = this.nums;
    nums.push(tensors.length);
    for (const t of tensors) {
      nums.push(this.string(t.name), this.string(t.datatype), t.shape.length);
      for (const d of t.shape) nums.push(d);
      nums.push(t.offset, t.bytes);
    }
  }
}

/** Reads a {@link Packed} in the order it was written. */
export class Unpacker {
  at = 0;
  constructor(readonly packed: Packed) {}

  get done(): boolean {
    return this.at >= this.packed.nums.length;
  }

  num(): number {
    return this.packed.nums[this.at++];
  }

  string(): string {
    return this.packed.strings[this.packed.nums[this.at++]];
  }

  /** Tensors written by {@link Packer.shared}. */
  shared(): SharedTensor[] {
    const count = this.num();
    const out: SharedTensor[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const name = this.string();
      const datatype = this.string();
      const shape: number[] = new Array(this.num());
      for (let d = 0; d < shape.length; d++) shape[d] = this.num();
      out[i] = { name, datatype, shape, offset: this.num(), bytes: this.num() };
    }
    return out;
  }
}

/** Whether a job is only where its inputs lie and whom to answer (what {@link packJobs} packs). */
export function packable(job: Job): boolean {
  return job.shared !== undefined && job.reply !== undefined && job.tensors === undefined &&
    job.contentType === undefined && job.body.byteLength === 0;
}

/**
 * The jobs of a run message: those that take their inputs from an HTTP thread's arena packed (id, link, the
 * thread's request id, request id, tensors), the rest as they are.
 */
export function packJobs(jobs: Job[]): { jobs: Job[]; packed?: Packed } {
  let rest: Job[] | undefined;
  let packer: Packer | undefined;
  for (const job of jobs) {
    if (!packable(job)) {
      (rest ??= []).push(job);
      continue;
    }
    packer ??= new Packer();
    packer.nums.push(job.id, job.reply!.link, job.reply!.id, job.requestId ? packer.unique(job.requestId) : -1);
    packer.shared(job.shared!);
  }
  if (!packer) return { jobs };
  return { jobs: rest ?? [], packed: { nums: packer.nums, strings: packer.strings } };
}

/** The jobs {@link packJobs} packed. */
export function unpackJobs(packed: Packed): Job[] {
  const out: Job[] = [];
  const r = new Unpacker(packed);
  while (!r.done) {
    const id = r.num();
    const link = r.num();
    const replyId = r.num();
    const requestId = r.num();
    const job: Job = { id, body: noBody, shared: r.shared(), reply: { link, id: replyId } };
    if (requestId >= 0) job.requestId = packed.strings[requestId];
    out.push(job);
  }
  return out;
}
