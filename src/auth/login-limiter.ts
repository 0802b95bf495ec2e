// Failed logins per client address: after `maxFailures` within `windowMs`, an address's logins are
// refused (429, Retry-After) before any password is checked, until its oldest failure in the window
// ages out. Only failures count, and only the failing address is held back: a success does not clear the
// record (else one valid account would let its owner guess at every other account between its own logins),
// and one client's lock-out or success never touches another's. The table is an LRU of bounded size, so a
// flood of addresses costs memory in proportion to `maxClients`, not to the flood.
import { LRUCache } from 'lru-cache';

export interface LoginLimiterOptions {
  maxFailures: number;
  windowMs: number;
  /** Addresses remembered at most; the least recently failing is forgotten first. */
  maxClients?: number;
  /** Milliseconds, injectable for tests. */
  now?: () => number;
}

const DEFAULT_MAX_CLIENTS = 10_000;

export class LoginLimiter {
  /** Per address, the times of its recent failures, oldest first, at most `maxFailures` of them. */
  private readonly failures: LRUCache<string, number[]>;
  private readonly now: () => number;

  constructor(private readonly options: LoginLimiterOptions) {
    this.failures = new LRUCache({ max: options.maxClients ?? DEFAULT_MAX_CLIENTS });
    this.now = options.now ?? Date.now;
  }

  /** Milliseconds until `client` may try again; 0 when it may now. */
  blockedFor(client: string): number {
    const times = this.recent(client);
    if (times.length < this.options.maxFailures) return 0;
    return times[0]! + this.options.windowMs - this.now();
  }

  /**
   * Counts a login of `client` as failed from now on, before its password is checked, so that logins
   * sent in parallel cannot all slip in under the limit; `withdraw` takes it back. Returns its time.
   */
  attempt(client: string): number {
    const at = this.now();
    const times = this.recent(client);
    times.push(at);
    if (times.length > this.options.maxFailures) times.shift();
    this.failures.set(client, times);
    return at;
  }

  /** Takes back the attempt made at `at`: the password was right, or was never checked. Earlier failures stay. */
  withdraw(client: string, at: number): void {
    const times = this.failures.peek(client);
    const index = times?.lastIndexOf(at) ?? -1;
    if (index >= 0) times!.splice(index, 1);
  }

  private recent(client: string): number[] {
    const times = this.failures.peek(client);
    if (!times) return [];
    const since = this.now() - this.options.windowMs;
    while (times.length > 0 && times[0]! <= since) times.shift();
    return times;
  }
}
