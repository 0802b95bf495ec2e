// The admin jobs — gc, verify, warm, export, import — run by the process that owns the data directory:
// the serving mirror (asked through POST /api/v1/jobs/*, http/jobs-router.ts) or an admin command that
// took the directory's lock because no server holds it (cli/main.ts). Either way one process writes the
// database and store, and its running totals (what /metrics reports) stay equal to what is on disk.
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Evictor } from '../cache/evictor.js';
import type { Config } from '../config/schema.js';
import { LongshoreError, isLongshoreError } from '../errors.js';
import type { MaintenanceIndex } from '../metadata/interfaces.js';
import type { LocalContent } from '../registry/local-content.js';
import type { LocalRegistry } from '../registry/local-registry.js';
import type { ProxyRegistry } from '../registry/proxy.js';
import type { Digest } from '../digest.js';
import type { UpstreamRouter } from '../registry/routing.js';
import type { MaintenanceStore } from '../storage/interfaces.js';
import { planBundle, bundleChunks, type BundlePlan } from './bundle/export.js';
import { importBundle, type ImportResult } from './bundle/import.js';
import { ProgressThrottle, type Emit } from './events.js';
import { parseImageRef } from './image-ref.js';
import { Semaphore, Warmer, type PlatformChoice, type WarmedImage } from './warm.js';

export interface AdminJobDeps {
  config: Config;
  registry: ProxyRegistry;
  local: LocalContent;
  /** What gc's reconciliation and verify do to the database (metadata/interfaces.ts). */
  index: MaintenanceIndex;
  /** What they do to the files (storage/interfaces.ts). */
  files: MaintenanceStore;
  evictor: Evictor;
  localRegistry: LocalRegistry;
  router: UpstreamRouter;
  log: Logger;
}

export interface WarmRequest {
  refs: readonly string[];
  platforms: PlatformChoice;
  concurrency: number;
  /** Also fetch (and export) the referrers of each image's manifests: `--with-referrers`. */
  withReferrers?: boolean | undefined;
}

export interface WarmSummary {
  images: number;
  failed: number;
  blobs: number;
  bytes: number;
  fetchedBytes: number;
  cachedBytes: number;
  /** Referrer manifests (signatures, attestations…) fetched with the images: only with withReferrers. */
  referrers?: number;
  seconds: number;
}

let jobCounter = 0;

export class AdminJobs {
  constructor(private readonly deps: AdminJobDeps) {}

  /** Reconciles store and catalog (safely beside live downloads), releases unreferenced local blobs, evicts down to `to`. */
  async gc(options: { to?: number | undefined; dryRun?: boolean }): Promise<Record<string, unknown>> {
    const { index, evictor, localRegistry, config } = this.deps;
    const orphans = await this.reconcile();
    const before = index.totals().bytes;
    if (options.dryRun) {
      const limit = options.to ?? (config.cache.maxSize === null ? before : config.cache.maxSize * config.cache.lowWatermark);
      return { orphans, bytes: before, target: limit, wouldFree: Math.max(0, before - limit) };
    }
    const localGarbage = await localRegistry.collectGarbage();
    const result = await evictor.run(options.to);
    this.deps.log.info({ ...result, orphans, localBlobsReleased: localGarbage.released }, 'gc finished');
    return { orphans, localBlobsReleased: localGarbage.released, ...result };
  }

  /**
   * Start-up reconciliation (cache/recovery.ts), made safe beside a serving mirror: a row or file that
   * looks orphaned is checked again right before anything is removed, and content being downloaded or
   * read is left alone (its file and row are written a moment apart).
   */
  private async reconcile(): Promise<{ rowsRemoved: number; filesAdopted: number; filesRemoved: number }> {
    const { local, index, files: store, registry } = this.deps;
    const result = { rowsRemoved: 0, filesAdopted: 0, filesRemoved: 0 };
    const busy = () => new Set<Digest>([...registry.downloading(), ...local.inUse()]);
    const files = await store.list();
    for (const row of index.allContent()) {
      const size = files.get(row.digest);
      files.delete(row.digest);
      if (size === row.size) continue;
      const now = await store.size(row.digest);
      if (now === row.size || busy().has(row.digest) || index.contentInfo(row.digest) === undefined) continue;
      if (now !== undefined) await store.delete(row.digest);
      index.removeContent(row.digest);
      local.forget(row.digest);
      result.rowsRemoved++;
    }
    for (const [digest, size] of files) {
      if (index.contentInfo(digest) !== undefined || busy().has(digest)) continue;
      const actual = await store.hash(digest).catch(() => undefined);
      if (actual === undefined || index.contentInfo(digest) !== undefined) continue;
      if (actual === digest) {
        index.adopt(digest, size);
        result.filesAdopted++;
      } else {
        await store.delete(digest);
        result.filesRemoved++;
      }
    }
    return result;
  }

  /** Re-hashes every stored object; with `quarantine`, moves mismatching files aside and forgets them. */
  async verify(options: { quarantine: boolean }, emit?: Emit): Promise<{ checked: number; corrupt: string[]; quarantined: number }> {
    const { local, index, files } = this.deps;
    const all = index.allContent();
    emit?.({ event: 'plan', bytes: all.reduce((sum, c) => sum + c.size, 0) });
    const progress = emit && new ProgressThrottle(emit);
    const bad: string[] = [];
    let checked = 0;
    for (const { digest, size } of all) {
      const actual = await files.hash(digest).catch(() => 'missing');
      checked++;
      progress?.add(undefined, size);
      if (actual === digest) continue;
      // Evicted while we looked: not corruption.
      if (actual === 'missing' && index.contentInfo(digest) === undefined) continue;
      bad.push(digest);
      if (options.quarantine) {
        if (actual !== 'missing') await files.quarantine(digest);
        index.removeContent(digest);
        local.forget(digest);
        this.deps.log.warn({ digest }, 'corrupt content quarantined');
      }
    }
    progress?.flush();
    return { checked, corrupt: bad, quarantined: options.quarantine ? bad.length : 0 };
  }

  /** Fetches images into the cache; one `image` event per image. Failed images are counted, not thrown. */
  async warm(request: WarmRequest, emit: Emit, signal?: AbortSignal): Promise<{ summary: WarmSummary; images: WarmedImage[] }> {
    const started = Date.now();
    const warmer = new Warmer(this.deps.registry, `warm-${process.pid}-${++jobCounter}`);
    const blobSlots = new Semaphore(request.concurrency);
    const imageSlots = new Semaphore(request.concurrency);
    const progress = new ProgressThrottle(emit);
    const summary: WarmSummary = { images: 0, failed: 0, blobs: 0, bytes: 0, fetchedBytes: 0, cachedBytes: 0, ...(request.withReferrers ? { referrers: 0 } : {}), seconds: 0 };
    const warmed: Array<WarmedImage | undefined> = [];
    await Promise.all(request.refs.map((text, i) => imageSlots.run(async () => {
      const imageStarted = Date.now();
      try {
        signal?.throwIfAborted();
        const ref = parseImageRef(text, this.deps.router);
        const image = await warmer.warm(ref, {
          platforms: request.platforms,
          withReferrers: request.withReferrers,
          slots: blobSlots,
          signal,
          onPlan: (bytes) => emit({ event: 'plan', ref: ref.full, bytes }),
          onBytes: (bytes) => progress.add(ref.full, bytes),
        });
        warmed[i] = image;
        const referrers = image.referrers;
        const blobs = [...image.blobs, ...(referrers?.blobs ?? [])];
        const bytes = blobs.reduce((s, b) => s + b.size, 0) + [...image.manifests, ...(referrers?.manifests ?? [])].reduce((s, m) => s + m.size, 0);
        summary.images++;
        summary.blobs += blobs.length;
        if (referrers) summary.referrers! += referrers.manifests.length;
        summary.bytes += bytes;
        summary.fetchedBytes += image.fetchedBytes;
        summary.cachedBytes += image.cachedBytes;
        progress.flush();
        emit({
          event: 'image', ref: ref.full, digest: image.root.digest, platforms: image.platforms, manifests: image.manifests.length,
          blobs: blobs.length, bytes, fetchedBytes: image.fetchedBytes, cachedBytes: image.cachedBytes,
          ...(referrers ? { referrers: referrers.manifests.length, referrerTags: referrers.tags.map((t) => t.tag) } : {}),
          seconds: (Date.now() - imageStarted) / 1000,
        });
      } catch (err) {
        if (signal?.aborted) throw err;
        summary.failed++;
        progress.flush();
        emit({ event: 'image', ref: text, error: describe(err) });
        this.deps.log.warn({ reference: text, err }, 'warming an image failed');
      }
    })));
    summary.seconds = (Date.now() - started) / 1000;
    return { summary, images: warmed.filter((i): i is WarmedImage => i !== undefined) };
  }

  /**
   * Warms the images (fetching what is missing), then returns the bundle's plan and its bytes as a
   * stream. Blobs named in `exclude` are left out and recorded as omitted. Fails if any image fails.
   */
  async exportBundle(request: WarmRequest & { exclude: readonly string[] }, emit: Emit, signal?: AbortSignal): Promise<{ plan: BundlePlan; stream: Readable; summary: WarmSummary }> {
    const { summary, images } = await this.warm(request, emit, signal);
    if (summary.failed > 0) throw new LongshoreError('LS_MANIFEST_NOT_FOUND', `${summary.failed} of ${request.refs.length} image(s) could not be fetched; nothing was exported`, { failed: summary.failed });
    const plan = planBundle(images, request.platforms, new Set(request.exclude));
    const ctx = { requestId: `export-${process.pid}-${++jobCounter}`, operator: true };
    const stream = Readable.from(bundleChunks(plan, async (image, digest) => {
      const handle = await this.deps.registry.openBlob(image.ref.repo, digest, ctx);
      return handle.stream();
    }), { objectMode: false });
    return { plan, stream, summary };
  }

  /** Reads one bundle and stores its images; see jobs/bundle/import.ts. */
  async importBundle(source: AsyncIterable<Buffer>, emit: Emit, signal?: AbortSignal): Promise<ImportResult & { seconds: number }> {
    const started = Date.now();
    const progress = new ProgressThrottle(emit);
    const result = await importBundle(source, { local: this.deps.local, router: this.deps.router, maxManifestSize: this.deps.config.maxManifestSize, log: this.deps.log }, {
      signal,
      onBytes: (bytes) => progress.add(undefined, bytes),
      onImage: (image) => {
        progress.flush();
        emit({ event: 'image', ...image });
      },
      onReferrers: (list) => emit({ event: 'referrers', ...list }),
    });
    progress.flush();
    this.deps.log.info({ images: result.images.length, failed: result.images.filter((i) => i.error).length, referrers: result.referrers.length, bytes: result.bytes }, 'bundle imported');
    return { ...result, seconds: (Date.now() - started) / 1000 };
  }
}

export function describe(err: unknown): { code: string; message: string } {
  return isLongshoreError(err) ? { code: err.code, message: err.message } : { code: 'LS_INTERNAL', message: (err as Error).message ?? String(err) };
}
