// Keeps the cache within its byte budget and the disk above its free-space floor. Past the high
// watermark (or under the floor), the least recently wanted content is removed — by "effective" recency,
// where content is as recent as the most recently used manifest naming it — until the cache is under
// the low watermark. Pinned images and blobs being read or written are never removed. Eviction runs in
// the background, one run at a time; requests never wait for it.
import { statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Catalog } from '../metadata/catalog.js';
import type { Metrics } from '../observability/metrics.js';
import type { LocalContent } from '../registry/local-content.js';
import type { Digest } from '../digest.js';
import { LOCAL, type UpstreamRouter } from '../registry/routing.js';

/** Candidates fetched per query; the order is recomputed after each batch. */
const BATCH = 256;

export interface EvictionResult {
  evicted: number;
  bytes: number;
  /** Bytes in the cache after the run. */
  remaining: number;
}

export class Evictor {
  private running: Promise<EvictionResult> | undefined;
  private again = false;

  constructor(
    private readonly local: LocalContent,
    private readonly catalog: Catalog,
    private readonly settings: Config['cache'],
    private readonly router: UpstreamRouter,
    /** Digests being downloaded right now. */
    private readonly downloading: () => Iterable<Digest>,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {}

  /** Starts a run in the background when the budget is exceeded; cheap enough to call after every download. */
  check(): void {
    const max = this.settings.maxSize;
    if (max !== null && this.catalog.totals().bytes > max * this.settings.highWatermark) this.schedule();
  }

  /** True while the data directory's filesystem has less free space than minFreeSpace. */
  async isLow(): Promise<boolean> {
    const free = await freeSpace(this.local.store.paths.root);
    return free !== undefined && free < this.settings.minFreeSpace;
  }

  /** The periodic check: the budget, and the free space of the data directory's filesystem. */
  async checkDisk(): Promise<void> {
    const free = await freeSpace(this.local.store.paths.root);
    if (free !== undefined && free < this.settings.minFreeSpace) this.schedule();
    else this.check();
  }

  /** Starts a run now (or right after the current one), whatever the budget says about it. */
  schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    void this.run().catch((err: unknown) => this.log.error({ err }, 'eviction failed'));
  }

  /**
   * Evicts down to `targetBytes` (default: the low watermark, lowered further while free disk space is
   * under minFreeSpace). Concurrent calls share one run.
   */
  run(targetBytes?: number): Promise<EvictionResult> {
    if (this.running) return this.running;
    this.running = this.evict(targetBytes).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.check();
      }
    });
    return this.running;
  }

  private async target(): Promise<number> {
    const { bytes } = this.catalog.totals();
    let target = this.settings.maxSize === null ? Infinity : this.settings.maxSize * this.settings.lowWatermark;
    const free = await freeSpace(this.local.store.paths.root);
    if (free !== undefined && free < this.settings.minFreeSpace) target = Math.min(target, bytes - (this.settings.minFreeSpace - free));
    return Math.max(0, target);
  }

  private pinned(): Set<Digest> {
    // Content of local (pushed) repositories is primary data, not cache.
    const out = new Set<Digest>(this.catalog.digestsOf(LOCAL));
    for (const pin of this.settings.pins) {
      const slash = pin.lastIndexOf('/');
      const colon = pin.indexOf(':', slash + 1);
      const path = colon < 0 ? pin : pin.slice(0, colon);
      const tag = colon < 0 ? undefined : pin.slice(colon + 1);
      try {
        const repo = this.router.route(path, undefined);
        for (const digest of this.catalog.pinned(repo.upstream, repo.name, tag)) out.add(digest);
      } catch (err) {
        this.log.warn({ pin, error: (err as Error).message }, 'ignoring pin that names no configured repository');
      }
    }
    return out;
  }

  private async evict(targetBytes: number | undefined): Promise<EvictionResult> {
    this.catalog.flush(); // recency must include the hits counted in memory
    const target = targetBytes ?? (await this.target());
    const pinned = this.pinned();
    let pinnedBytes = 0;
    for (const digest of pinned) pinnedBytes += this.catalog.content(digest)?.size ?? 0;
    const skipped = new Set<Digest>();
    let evicted = 0;
    let freed = 0;
    for (;;) {
      if (this.catalog.totals().bytes <= target) break;
      const busy = new Set<Digest>([...this.local.inUse(), ...this.downloading()]);
      const batch = this.catalog.evictionCandidates(BATCH + skipped.size).filter((c) => !skipped.has(c.digest));
      if (batch.length === 0) break;
      for (const candidate of batch) {
        if (this.catalog.totals().bytes <= target) break;
        if (pinned.has(candidate.digest) || busy.has(candidate.digest)) {
          skipped.add(candidate.digest);
          continue;
        }
        // File first, then row: a crash in between leaves a row without a file, which start-up removes.
        await this.local.store.delete(candidate.digest);
        this.catalog.removeContent(candidate.digest);
        this.local.forget(candidate.digest);
        evicted++;
        freed += candidate.size;
      }
    }
    this.metrics?.evictions.inc(evicted);
    this.metrics?.evictedBytes.inc(freed);
    this.metrics?.pinnedBytes.set(pinnedBytes);
    const remaining = this.catalog.totals().bytes;
    if (evicted > 0) this.log.info({ evicted, bytes: freed, remaining, target }, 'evicted least recently used content');
    if (remaining > target) this.log.warn({ remaining, target, skipped: skipped.size }, 'cache is over its budget; the rest is pinned or in use');
    return { evicted, bytes: freed, remaining };
  }
}

async function freeSpace(path: string): Promise<number | undefined> {
  try {
    const stats = await statfs(path);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}
