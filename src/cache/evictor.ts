// Keeps the cache within its byte budget and the disk above its free-space floor. Past the high
// watermark (or under the floor), content of the lowest priority (cache/policy.ts: by default how often
// an image naming it is wanted, aged) is removed until the cache is under the low watermark. Pinned
// images, content of local repositories, content being read or written, and content asked for within
// the last RECENT_MS are never removed. Eviction runs in the background, one run at a time, a batch per
// turn of the event loop; requests never wait for it.
//
// A run walks the eviction index once, from the lowest priority up, with a cursor: each batch is one
// index range of BATCH rows, whatever the size of the catalogue, and content skipped because it is busy
// is not looked at again in that run. Pinned and local content is not in that index at all.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { KEEP_PINNED, type EvictionCandidate } from '../metadata/catalog.js';
import type { EvictionIndex } from '../metadata/interfaces.js';
import type { Metrics } from '../observability/metrics.js';
import type { Digest } from '../digest.js';
import type { UpstreamRouter } from '../registry/routing.js';
import type { DiskSpace } from '../signals.js';

/** Candidates fetched per query. */
const BATCH = 256;
/**
 * Time one synchronous slice of a batch may take — screening candidates (busy, recent, lifted to their
 * image) or removing rows, each slice one transaction — before the event loop gets a turn.
 */
const SLICE_MS = 6;

export type EvictionReason = 'budget' | 'disk' | 'requested';

export interface EvictionResult {
  evicted: number;
  bytes: number;
  /** Bytes in the cache after the run. */
  remaining: number;
}

/** What eviction needs of the local content (LocalContent has it); of the database it needs an EvictionIndex. */
export interface EvictableContent {
  /** Removes a stored file; the evictor removes rows itself, in batches. */
  deleteFile(digest: Digest): Promise<boolean>;
  /** Digests open for reading now. */
  inUse(): Iterable<Digest>;
  /** Drops in-process copies of evicted content. */
  forget(digest: Digest): void;
}

export class Evictor {
  private running: Promise<EvictionResult> | undefined;
  private again = false;
  /** Digests flagged KEEP_PINNED in the catalog (loaded at the first run). */
  private flaggedPins: Set<Digest> | undefined;

  constructor(
    private readonly local: EvictableContent,
    private readonly catalog: EvictionIndex,
    private readonly settings: Config['cache'],
    private readonly router: UpstreamRouter,
    /** Digests being downloaded right now. */
    private readonly downloading: () => Iterable<Digest>,
    /** The data directory's free space against cache.minFreeSpace (signals.ts). */
    private readonly disk: DiskSpace,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {}

  /** Starts a run in the background when the budget is exceeded; cheap enough to call after every download. */
  check(): void {
    const max = this.settings.maxSize;
    if (max !== null && this.catalog.totals().bytes > max * this.settings.highWatermark) this.schedule();
  }

  /** The periodic check: the budget, and the free space of the data directory's filesystem. */
  async checkDisk(): Promise<void> {
    const free = await this.disk.free();
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

  private async target(): Promise<{ target: number; reason: EvictionReason }> {
    const { bytes } = this.catalog.totals();
    let target = this.settings.maxSize === null ? Infinity : this.settings.maxSize * this.settings.lowWatermark;
    let reason: EvictionReason = 'budget';
    const free = await this.disk.free();
    if (free !== undefined && free < this.settings.minFreeSpace && bytes - (this.settings.minFreeSpace - free) < target) {
      target = bytes - (this.settings.minFreeSpace - free);
      reason = 'disk';
    }
    return { target: Math.max(0, target), reason };
  }

  /** Digests the configured pins cover now: the tags (glob) or repositories, with what they reference. */
  private pinned(): Set<Digest> {
    const out = new Set<Digest>();
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

  /** Brings the catalog's pin flags in line with the pins (tags move, pins change between starts); returns the pinned bytes. */
  private syncPins(): number {
    const now = this.pinned();
    const before = this.flaggedPins ?? new Set(this.catalog.kept(KEEP_PINNED));
    this.catalog.setKeep(KEEP_PINNED, [...now].filter((d) => !before.has(d)), true);
    this.catalog.setKeep(KEEP_PINNED, [...before].filter((d) => !now.has(d)), false);
    this.flaggedPins = now;
    let bytes = 0;
    for (const digest of now) bytes += this.catalog.contentInfo(digest)?.size ?? 0;
    return bytes;
  }

  private async evict(targetBytes: number | undefined): Promise<EvictionResult> {
    await this.catalog.flushSlices(); // priorities must include the hits counted in memory
    const { target, reason } = targetBytes === undefined ? await this.target() : { target: targetBytes, reason: 'requested' as const };
    const pinnedBytes = this.syncPins();
    let cursor: EvictionCandidate | undefined;
    let skipped = 0;
    let evicted = 0;
    let freed = 0;
    while (this.catalog.totals().bytes > target) {
      const busy = new Set<Digest>([...this.local.inUse(), ...this.downloading()]);
      const batch = this.catalog.evictionCandidates(BATCH, cursor);
      if (batch.length === 0) break;
      cursor = batch[batch.length - 1];
      const victims: EvictionCandidate[] = [];
      let planned = this.catalog.totals().bytes;
      for (let i = 0; i < batch.length && planned > target;) {
        if (i > 0) await new Promise((resolve) => setImmediate(resolve));
        await this.catalog.writeRoom();
        // One transaction for the lifts of a slice: each would otherwise be a commit of its own.
        this.catalog.inSlice(SLICE_MS, (deadline) => {
          for (; i < batch.length && planned > target && performance.now() < deadline; i++) {
            const candidate = batch[i]!;
            if (busy.has(candidate.digest) || this.catalog.recentlyWanted(candidate.digest)) {
              skipped++;
              continue;
            }
            // Named by a manifest that ranks higher (an image still wanted): lifted there, met again later.
            if (this.catalog.liftToImage(candidate)) continue;
            victims.push(candidate);
            planned -= candidate.size;
          }
        });
      }
      // Files first, then rows: a crash in between leaves rows without files, which start-up removes.
      for (const victim of victims) await this.local.deleteFile(victim.digest);
      for (let i = 0; i < victims.length;) {
        if (i > 0) await new Promise((resolve) => setImmediate(resolve));
        await this.catalog.writeRoom();
        i += this.catalog.removeContents(victims.slice(i).map((v) => v.digest), SLICE_MS);
      }
      for (const victim of victims) {
        this.local.forget(victim.digest);
        this.catalog.age = victim.priority;
        evicted++;
        freed += victim.size;
      }
      // Hits that arrived meanwhile move their content up, out of the cursor's way.
      await this.catalog.flushSlices();
    }
    this.metrics?.evictions.inc({ reason }, evicted);
    this.metrics?.evictedBytes.inc({ reason }, freed);
    this.metrics?.pinnedBytes.set(pinnedBytes);
    const remaining = this.catalog.totals().bytes;
    if (evicted > 0) this.log.info({ evicted, bytes: freed, remaining, target, reason }, 'evicted content');
    if (remaining > target) this.log.warn({ remaining, target, skipped }, 'cache is over its budget; the rest is pinned or in use');
    return { evicted, bytes: freed, remaining };
  }
}
