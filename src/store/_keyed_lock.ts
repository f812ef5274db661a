/**
 * Exclusion per key inside one process: callers of one key run one after
 * another, in the order they asked; other keys do not wait.
 * @module
 */

/** A lock per key (a function name), held for the length of an async call. */
export class KeyedLock {
  #tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier holder of `key` has finished; resolves or rejects with its result. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
