// One in-flight computation per key; callers arriving while it runs join it instead of starting another.

export class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** Runs `work` unless a call for `key` is under way; `leader` tells whether this call started it. */
  join(key: string, work: () => Promise<T>): { promise: Promise<T>; leader: boolean } {
    const existing = this.inflight.get(key);
    if (existing) return { promise: existing, leader: false };
    const promise = work().finally(() => {
      if (this.inflight.get(key) === promise) this.inflight.delete(key);
    });
    this.inflight.set(key, promise);
    return { promise, leader: true };
  }
}
