/**
 * An in-process async mutex per key: tasks with the same key run one after another, in call order;
 * tasks with different keys run concurrently.
 *
 * Users: the IPAM (concurrent RequestAddress calls for one pool must not all pick the same
 * "lowest free" candidate; the store's create-only keys still decide between hosts), the
 * endpoint manager (calls for one endpoint never interleave) and the identity allocator.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `task` once every earlier task for `key` has settled; resolves or rejects as `task` does. */
  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    // `previous` only ever resolves (it is built from `done` promises), so the chain never rejects.
    const tail = previous.then(() => done);
    this.tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Number of keys with a running or queued task (for tests and diagnostics). */
  get activeKeys(): number {
    return this.tails.size;
  }
}
