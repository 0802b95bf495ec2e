// The last manifest requests (what a pull starts with), newest first, in a fixed-size ring: the
// request log feeds it when a response finishes; nothing is stored anywhere else.
import type { CacheOutcome } from '../registry/types.js';

export interface RecentPull {
  /** ISO 8601, when the response finished */
  time: string;
  method: string;
  upstream: string;
  repository: string;
  /** Tag or digest, as the client asked. */
  reference: string;
  /** What was served; null when nothing was (an error). */
  digest: string | null;
  cache: CacheOutcome | null;
  status: number;
  bytes: number;
}

/** What a finished request records: the time in ms since the epoch, formatted only when the list is read. */
export type PullRecord = Omit<RecentPull, 'time'> & { at: number };

export class RecentPulls {
  private readonly ring: PullRecord[] = [];
  private next = 0;

  constructor(readonly capacity = 200) {}

  record(pull: PullRecord): void {
    if (this.ring.length < this.capacity) this.ring.push(pull);
    else this.ring[this.next] = pull;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first, at most `limit`. */
  list(limit = this.capacity): RecentPull[] {
    const out: RecentPull[] = [];
    for (let i = 1; i <= Math.min(limit, this.ring.length); i++) {
      const { at, ...pull } = this.ring[(this.next - i + this.capacity) % this.capacity]!;
      out.push({ time: new Date(at).toISOString(), ...pull });
    }
    return out;
  }
}
