/**
 * Per-key mutual exclusion within this process: the local provider serialises create, delete
 * and the collection of a dead folder of the same instance, as each spans awaits (spawning,
 * grace periods) during which another call on that instance would see a half-done state.
 */
export class KeyedLock {
  /** Per-key chains: each holder waits for the previous one. */
  private readonly chains = new Map<string, Promise<void>>();

  /** Whether a call holds, or waits for, the lock of `key`. */
  isBusy(key: string): boolean {
    return this.chains.has(key);
  }

  /** Runs `fn` once every earlier call for `key` has finished; releases even when `fn` throws. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chain = previous.then(() => mine);
    this.chains.set(key, chain);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.chains.get(key) === chain) this.chains.delete(key);
    }
  }
}
