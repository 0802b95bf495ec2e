// The composition root of the mirror's core, shared by the server (app.ts adds HTTP on top) and by the
// admin commands that work alone under the data directory's lock (cli/main.ts gc and verify
// --quarantine, cli/airgap.ts warm, export and import). It builds every service in dependency order
// from the frozen config, each from services built before it: the signals that two sides share
// (ContentGrowth, DiskSpace: signals.ts) come first and are handed to both, so nothing needs a setter or
// a closure over a service built later. Each consumer receives the narrow view of the database or the
// disk it uses (metadata/interfaces.ts, storage/interfaces.ts), never the catalog or store through a
// facade.
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { Evictor } from './cache/evictor.js';
import { Admission } from './cache/policy.js';
import { reconcile, type ReconcileResult } from './cache/recovery.js';
import type { Config } from './config/schema.js';
import { AdminJobs } from './jobs/admin-jobs.js';
import { Catalog } from './metadata/catalog.js';
import { Checkpointer } from './metadata/checkpointer.js';
import { openDatabase } from './metadata/database.js';
import { LocalUsage } from './metadata/local-usage.js';
import { UploadTable } from './metadata/uploads.js';
import { Metrics } from './observability/metrics.js';
import { droppedLogLines } from './observability/logger.js';
import { LocalContent } from './registry/local-content.js';
import { LocalRegistry } from './registry/local-registry.js';
import { ProxyRegistry, tagGlobs, type DiskPressure, type UpstreamEntry } from './registry/proxy.js';
import { RoutedRegistry } from './registry/routed-registry.js';
import { LOCAL, UpstreamRouter } from './registry/routing.js';
import { ContentGrowth, DiskSpace } from './signals.js';
import { ContentStore } from './storage/content-store.js';
import { DataLock } from './storage/data-lock.js';
import { StorePaths } from './storage/paths.js';
import { Scavenger, youngCollector } from './storage/scavenger.js';
import { UpstreamClient } from './upstream/client.js';

/** Pending hit counts are written to SQLite this often. */
const ACCESS_FLUSH_MS = 5_000;

export interface CoreOptions {
  /** 'command': an admin command that owns the directory while no server does. Default 'server'. */
  role?: 'server' | 'command';
  /** What the command does, for the lock's message ("import"). */
  task?: string;
  /**
   * Start-up reconciliation of files and rows in the background (cache/recovery.ts). Default true; gc
   * and verify turn it off: gc reconciles itself (and reports what it found), verify reads every file.
   */
  reconcile?: boolean;
}

export interface Core {
  paths: StorePaths;
  /** The data directory's lock, held until close(). */
  lock: DataLock;
  db: Database.Database;
  catalog: Catalog;
  store: ContentStore;
  /** Content was stored: the evictor listens. */
  growth: ContentGrowth;
  /** Free space of the data directory against cache.minFreeSpace: the proxy asks it, the evictor acts on it. */
  disk: DiskSpace;
  local: LocalContent;
  metrics: Metrics;
  upstreams: ReadonlyMap<string, UpstreamEntry>;
  /** The pull-through cache of the configured upstreams. */
  registry: ProxyRegistry;
  /** Local (pushed) repositories. */
  localRegistry: LocalRegistry;
  /** Names to repositories: local prefixes, then the upstream a name routes to. */
  router: UpstreamRouter;
  /** Reads routed to the local registry or the proxy by repository. */
  reads: RoutedRegistry;
  evictor: Evictor;
  /** gc, verify, warm, export, import. */
  jobs: AdminJobs;
  /** Start-up reconciliation, in the background; resolves at once (complete: false) when turned off. */
  reconciled: Promise<ReconcileResult>;
  /** Waits (at most `graceMs`) for downloads in progress, then closes upstream pools, the database and the lock. */
  close(graceMs?: number): Promise<void>;
}

/** Takes the data directory's lock (storage/data-lock.ts), then builds the core; the lock is released if building fails. */
export async function buildCore(config: Config, log: Logger, options: CoreOptions = {}): Promise<Core> {
  const paths = new StorePaths(config.dataDir);
  // Before anything touches the directory: one writer at a time.
  await mkdir(paths.root, { recursive: true });
  const lock = await DataLock.acquire(paths.lock, options.role ?? 'server', options.task);
  try {
    return await build(config, log, paths, lock, options.reconcile ?? true);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function build(config: Config, log: Logger, paths: StorePaths, lock: DataLock, reconcileAtStart: boolean): Promise<Core> {
  // One scavenger for the process: it frees download and read buffers early (storage/scavenger.ts).
  const store = new ContentStore(paths, new Scavenger(youngCollector()));
  const leftovers = await store.init();
  if (leftovers > 0) log.warn({ count: leftovers }, 'removed temp files left by an earlier run');

  const db = openDatabase(paths.database);
  const checkpointer = new Checkpointer(db, paths.database, log.child({ component: 'checkpointer' }));
  const catalog = new Catalog(db, Date.now, { recentMs: config.cache.protectRecent, writeRoom: () => checkpointer.writeRoom() });
  // In the background: serving does not wait for it (cache/recovery.ts says why that is safe).
  const stopReconciling = new AbortController();
  const reconciled = reconcileAtStart
    ? reconcile(store, catalog, log.child({ component: 'recovery' }), { signal: stopReconciling.signal })
    : Promise.resolve({ rowsRemoved: 0, filesAdopted: 0, filesRemoved: 0, complete: false });
  reconciled.catch((err: unknown) => log.error({ err }, 'reconciliation failed'));

  const growth = new ContentGrowth();
  const disk = new DiskSpace(paths.root, config.cache.minFreeSpace);
  const local = new LocalContent(store, catalog, growth);

  const upstreams = new Map<string, UpstreamEntry>();
  // The upstream probes read the map at scrape time; it is filled below, before anything is served.
  const metrics = new Metrics({
    cache: () => catalog.totals(),
    upstreams: () => [...upstreams].map(([name, u]) => ({
      name,
      rateLimitRemaining: u.client.rateLimit?.remaining,
      rateLimitLimit: u.client.rateLimit?.limit,
      circuitOpen: u.client.breaker.state !== 'closed',
    })),
    droppedLogLines: () => droppedLogLines(log),
  }, config.nodeName ?? hostname());
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    upstreams.set(name, {
      client: new UpstreamClient(name, upstream, log.child({ component: 'upstream', upstream: name }), metrics, { maxBlobSize: config.maxBlobSize }),
      tagTTL: upstream.tagTTL,
      negativeTTL: upstream.negativeTTL,
      passThroughCredentials: upstream.passThroughCredentials,
      credentialTTL: upstream.credentialTTL,
      offline: upstream.offline ?? config.offline,
      resumeAttempts: upstream.resumeAttempts,
      immutable: tagGlobs(upstream.immutableTags),
    });
  }
  const admission = new Admission(config.cache);
  const pressure: DiskPressure = { isLow: () => disk.isLow(), relieve: () => disk.relieve(), admit: (key, size) => admission.decide(key, size) };
  const registry = new ProxyRegistry(local, upstreams, config.maxManifestSize, metrics, log.child({ component: 'proxy' }), pressure);
  metrics.observeDownloads(() => registry.downloads());
  const localRegistry = new LocalRegistry(local, catalog, store, new UploadTable(db), new LocalUsage(db, LOCAL), config.local, config.maxManifestSize, log.child({ component: 'local' }));
  await localRegistry.restore();
  const router = new UpstreamRouter(upstreams.keys(), config.defaultUpstream, {
    prefixes: config.local.prefixes,
    createOnPush: config.local.createOnPush,
    local: localRegistry,
    cached: (repo) => catalog.holdsRepository(repo.upstream, repo.name),
  });
  const reads = new RoutedRegistry(localRegistry, registry);
  const evictor = new Evictor(local, catalog, config.cache, router, () => registry.downloading(), disk, log.child({ component: 'evictor' }), metrics);
  growth.listen(() => evictor.check());
  disk.onRelieve(() => evictor.schedule());
  const jobs = new AdminJobs({ config, registry, local, index: catalog, files: store, evictor, localRegistry, router, log: log.child({ component: 'jobs' }) });

  const uploadSweep = setInterval(() => void localRegistry.sweep(), Math.max(1_000, Math.min(60_000, config.local.uploadTimeout)));
  uploadSweep.unref();
  const evictionTimer = setInterval(() => void evictor.checkDisk(), config.cache.checkInterval);
  evictionTimer.unref();
  const flushTimer = setInterval(() => {
    // A slice per turn of the event loop: each hit moves the content its manifest names too.
    catalog.flushSlices().catch((err: unknown) => {
      // e.g. SQLITE_FULL on a full disk: the hits are lost, the mirror keeps serving
      log.error({ err }, 'could not record cache hits');
    });
  }, ACCESS_FLUSH_MS);
  flushTimer.unref();

  let closed = false;
  return {
    paths, lock, db, catalog, store, growth, disk, local, metrics, upstreams, registry, localRegistry, router, reads, evictor, jobs, reconciled,
    async close(graceMs = 30_000) {
      if (closed) return;
      closed = true;
      clearInterval(flushTimer);
      clearInterval(evictionTimer);
      clearInterval(uploadSweep);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([registry.drain(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      await Promise.all([...upstreams.values()].map((u) => u.client.close()));
      stopReconciling.abort();
      await reconciled.catch(() => undefined);
      catalog.flush();
      await checkpointer.stop();
      db.close();
      await lock.release();
    },
  };
}
