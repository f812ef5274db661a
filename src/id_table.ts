/**
 * A table of entries keyed by sequential numeric ids (requests, jobs in flight) whose storage never moves.
 *
 * Why not a `Map`: V8 re-allocates a long-lived `Map`'s table as entries come and go and does not clear the table it
 * leaves, and the scavenger takes every slot of an old-generation object that points into the young generation as a
 * root until the next mark-compact. A long-lived map of requests in flight therefore keeps, at each re-allocation,
 * every request it held then alive through scavenges (docs/cpu-mlp.md, "The garbage found"; docs/hop.md, eighth
 * round). Here each id has a slot of a fixed array (`id & (capacity − 1)`), cleared when its entry goes, so no
 * storage left behind points at a request; an id whose slot is taken by an older entry still there (one held far
 * longer than the `capacity` ids after it) goes to a small `Map` instead, as before.
 *
 * @module
 */

/** Entries by numeric id (a non-negative integer, ids in use distinct); the `Map` methods the runtime uses. */
export class IdTable<T> {
  readonly #mask: number;
  /** Each slot's id, `-1` where free. */
  readonly #ids: Float64Array;
  readonly #values: (T | undefined)[];
  /** Entries whose slot was taken when they came. */
  readonly #overflow = new Map<number, T>();
  #size = 0;

  /** `capacity`: slots, rounded up to a power of two (default 1024). */
  constructor(capacity = 1024) {
    let n = 1;
    while (n < capacity) n *= 2;
    this.#mask = n - 1;
    this.#ids = new Float64Array(n).fill(-1);
    this.#values = new Array<T | undefined>(n).fill(undefined);
  }

  /** How many entries there are. */
  get size(): number {
    return this.#size + this.#overflow.size;
  }

  /** The entry of `id`, or `undefined`. */
  get(id: number): T | undefined {
    const i = id & this.#mask;
    return this.#ids[i] === id ? this.#values[i] : this.#overflow.size > 0 ? this.#overflow.get(id) : undefined;
  }

  /** Whether `id` has an entry. */
  has(id: number): boolean {
    return this.#ids[id & this.#mask] === id || (this.#overflow.size > 0 && this.#overflow.has(id));
  }

  /** Sets the entry of `id` (replacing any); returns the table. */
  set(id: number, value: T): this {
    const i = id & this.#mask;
    const slot = this.#ids[i];
    if (slot === id) this.#values[i] = value;
    else if (slot === -1 && !this.#overflow.has(id)) {
      this.#ids[i] = id;
      this.#values[i] = value;
      this.#size++;
    } else this.#overflow.set(id, value);
    return this;
  }

  /** Removes the entry of `id`; whether there was one. */
  delete(id: number): boolean {
    const i = id & this.#mask;
    if (this.#ids[i] === id) {
      this.#ids[i] = -1;
      this.#values[i] = undefined;
      this.#size--;
      return true;
    }
    return this.#overflow.size > 0 && this.#overflow.delete(id);
  }

  /** The entries now there (a copy: entries may go while the caller walks it). */
  values(): T[] {
    const out: T[] = [];
    if (this.#size > 0) {
      for (let i = 0; i <= this.#mask; i++) if (this.#ids[i] !== -1) out.push(this.#values[i]!);
    }
    for (const v of this.#overflow.values()) out.push(v);
    return out;
  }
}
