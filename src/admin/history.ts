// Cumulative counters sampled at a fixed interval into a bounded ring (by default every 10 s for an
// hour), for the dashboard's charts. Only in memory: a restart starts a new history, as the counters do.
import type { CounterSample } from './totals.js';

export class CounterHistory {
  private readonly ring: CounterSample[] = [];
  private next = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => Promise<CounterSample>,
    readonly intervalMs = 10_000,
    readonly capacity = 360,
  ) {}

  /** Takes a first sample now, then one every interval. The timer does not keep the process alive. */
  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async sample(): Promise<void> {
    const { time, hits, misses, bytesServedFromCache, bytesServedFromUpstream, bytesFromUpstream } = await this.read();
    const point = { time, hits, misses, bytesServedFromCache, bytesServedFromUpstream, bytesFromUpstream };
    if (this.ring.length < this.capacity) this.ring.push(point);
    else this.ring[this.next] = point;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Oldest first. */
  points(): CounterSample[] {
    return this.ring.length < this.capacity ? [...this.ring] : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }
}
