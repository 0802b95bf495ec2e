// A circuit breaker per upstream. After `threshold` consecutive failures (unreachable, timed out, 5xx)
// the circuit opens: requests fail at once instead of each waiting out a dial or header timeout, so a
// cached tag is served stale within milliseconds while the upstream is blackholed. After `cooldownMs`
// one probe request is let through; its success closes the circuit, its failure reopens it.
import { LongshoreError } from '../errors.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private consecutiveFailures = 0;
  private openedAt = 0;
  private mode: BreakerState = 'closed';

  constructor(
    private readonly upstream: string,
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    return this.mode;
  }

  /** Throws LS_UPSTREAM_UNAVAILABLE while open; lets exactly one probe through after the cool-down. */
  admit(): void {
    if (this.mode === 'closed') return;
    if (this.mode === 'open' && this.now() - this.openedAt >= this.cooldownMs) {
      this.mode = 'half-open';
      return;
    }
    throw new LongshoreError('LS_UPSTREAM_UNAVAILABLE', `upstream ${this.upstream} is failing; requests are paused (circuit open)`, {
      upstream: this.upstream,
      circuit: this.mode,
      retryInMs: Math.max(0, this.cooldownMs - (this.now() - this.openedAt)),
    });
  }

  success(): void {
    this.consecutiveFailures = 0;
    this.mode = 'closed';
  }

  failure(): void {
    this.consecutiveFailures++;
    if (this.mode === 'half-open' || this.consecutiveFailures >= this.threshold) {
      this.mode = 'open';
      this.openedAt = this.now();
    }
  }
}
