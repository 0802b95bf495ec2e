// The composition root: builds every service explicitly from the frozen config and wires them together.
// No module keeps singletons or reads settings of its own.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import type { RequestListener } from 'node:http';
import { hostname } from 'node:os';
import express, { type RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { CounterHistory } from './admin/history.js';
import { RecentPulls } from './admin/recent-pulls.js';
import { buildSummary } from './admin/summary.js';
import { TopContent } from './admin/top-content.js';
import { readTotals } from './admin/totals.js';
import { adminRouter } from './http/admin-router.js';
import { jobsRouter } from './http/jobs-router.js';
import { AdminJobs } from './jobs/admin-jobs.js';
import { SyncScheduler } from './jobs/sync.js';
import { dashboardRouter } from './http/dashboard.js';
import { healthz, readyz } from './http/handlers/health.js';
import { endpointNotFound, ociErrorHandler } from './http/middleware/errors.js';
import { requestContext, requestStart, type RequestLocals } from './http/middleware/request-context.js';
import { manifestFastPath } from './http/fast-path.js';
import { registryRouter } from './http/router.js';
import { Evictor } from './cache/evictor.js';
import { Admission } from './cache/policy.js';
import { reconcile, type ReconcileResult } from './cache/recovery.js';
import { Catalog } from './metadata/catalog.js';
import { LocalUsage } from './metadata/local-usage.js';
import { UploadTable } from './metadata/uploads.js';
import { Checkpointer } from './metadata/checkpointer.js';
import { openDatabase } from './metadata/database.js';
import { Metrics } from './observability/metrics.js';
import { LocalContent } from './registry/local-content.js';
import { LocalRegistry } from './registry/local-registry.js';
import { RoutedRegistry } from './registry/routed-registry.js';
import { ProxyRegistry, tagGlobs, type UpstreamEntry } from './registry/proxy.js';
import { LOCAL, UpstreamRouter } from './registry/routing.js';
import { ContentStore } from './storage/content-store.js';
import { StorePaths } from './storage/paths.js';
import { DataLock } from './storage/data-lock.js';
import { Scavenger, youngCollector } from './storage/scavenger.js';
import { UpstreamClient } from './upstream/client.js';
import { DiskSpace } from './signals.js';

/** Pending hit counts are written to SQLite this often. */
const ACCESS_FLUSH_MS = 5_000;

export interface Longshore {
  app: express.Express;
  /** The request listener to serve: a few hot routes without Express, the rest through `app`. */
  handler: RequestListener;
  registry: ProxyRegistry;
  store: ContentStore;
  catalog: Catalog;
  evictor: Evictor;
  /** Start-up reconciliation of files and rows, which runs in the background while the mirror serves. */
  reconciled: Promise<ReconcileResult>;
  localRegistry: LocalRegistry;
  metrics: Metrics;
  upstreams: ReadonlyMap<string, UpstreamEntry>;
  /** gc, verify, warm, export, import: what admin commands ask of the directory's owner. */
  jobs: AdminJobs;
  /** Scheduled syncs (config `sync`); undefined when there are none, or in an admin command. */
  sync: SyncScheduler | undefined;
  /** From now on /readyz answers 503 (the node is leaving a fleet); everything else is served as before. */
  startDraining(): void;
  /** Records in the data directory's lock where this server's admin API answers, for admin commands. */
  announce(adminUrl: string): Promise<void>;
  /** Waits (at most `graceMs`) for downloads in progress, then closes upstream pools and the database. */
  close(graceMs?: number): Promise<void>;
}

export interface OwnerOptions {
  /** 'command': an admin command that owns the directory while no server does (cli/main.ts). Default 'server'. */
  role?: 'server' | 'command';
  /** What the command does, for the lock's message ("import"). */
  task?: string;
}

export async function createLongshore(config: Config, log: Logger, owner: OwnerOptions = {}): Promise<Longshore> {
  const paths = new StorePaths(config.dataDir);
  // Before anything touches the directory: one writer at a time (storage/data-lock.ts).
  await mkdir(paths.root, { recursive: true });
  const role = owner.role ?? 'server';
  const lock = await DataLock.acquire(paths.lock, role, owner.task);
  try {
    const adminToken = role === 'server' ? await writeAdminToken(paths.adminToken) : undefined;
    return await build(config, log, paths, lock, adminToken);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/** A fresh admin token, readable only by this account (http/jobs-router.ts). */
async function writeAdminToken(path: string): Promise<Buffer> {
  const token = Buffer.from(randomBytes(32).toString('hex'));
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, token, { mode: 0o600 });
  await rename(temp, path);
  return token;
}

async function build(config: Config, log: Logger, paths: StorePaths, lock: DataLock, adminToken: Buffer | undefined): Promise<Longshore> {
  // One scavenger for the process: it frees download and read buffers early (storage/scavenger.ts).
  const store = new ContentStore(paths, new Scavenger(youngCollector()));
  const leftovers = await store.init();
  if (leftovers > 0) log.warn({ count: leftovers }, 'removed temp files left by an earlier run');

  const db = openDatabase(paths.database);
  const checkpointer = new Checkpointer(db, paths.database, log.child({ component: 'checkpointer' }));
  const catalog = new Catalog(db, Date.now, { recentMs: config.cache.protectRecent });
  // In the background: serving does not wait for it (cache/recovery.ts says why that is safe).
  const stopReconciling = new AbortController();
  const reconciled = reconcile(store, catalog, log.child({ component: 'recovery' }), { signal: stopReconciling.signal });
  reconciled.catch((err: unknown) => log.error({ err }, 'reconciliation failed'));
  const local = new LocalContent(store, catalog);

  const upstreams = new Map<string, UpstreamEntry>();
  // The probes read state at scrape time, after `registry` below exists.
  const metrics: Metrics = new Metrics({
    cache: () => catalog.totals(),
    downloads: () => registry.downloads(),
    upstreams: () => [...upstreams].map(([name, u]) => ({
      name,
      rateLimitRemaining: u.client.rateLimit?.remaining,
      rateLimitLimit: u.client.rateLimit?.limit,
      circuitOpen: u.client.breaker.state !== 'closed',
    })),
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
  const disk = new DiskSpace(paths.root, config.cache.minFreeSpace);
  const diskPressure = { isLow: () => disk.isLow(), relieve: () => evictor.schedule(), admit: (key: string, size: number | undefined) => admission.decide(key, size) };
  const registry: ProxyRegistry = new ProxyRegistry(local, upstreams, config.maxManifestSize, metrics, log.child({ component: 'proxy' }), diskPressure);
  const localRegistry = new LocalRegistry(local, catalog, store, new UploadTable(db), new LocalUsage(db, LOCAL), config.local, config.maxManifestSize, log.child({ component: 'local' }));
  await localRegistry.restore();
  const router = new UpstreamRouter(upstreams.keys(), config.defaultUpstream, {
    prefixes: config.local.prefixes,
    createOnPush: config.local.createOnPush,
    local: localRegistry,
    cached: (repo) => catalog.holdsRepository(repo.upstream, repo.name),
  });
  const reads = new RoutedRegistry(localRegistry, registry);
  const uploadSweep = setInterval(() => void localRegistry.sweep(), Math.max(1_000, Math.min(60_000, config.local.uploadTimeout)));
  uploadSweep.unref();
  const evictor = new Evictor(local, catalog, config.cache, router, () => registry.downloading(), disk, log.child({ component: 'evictor' }), metrics);
  local.onGrowth = () => evictor.check();
  const evictionTimer = setInterval(() => void evictor.checkDisk(), config.cache.checkInterval);
  evictionTimer.unref();

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  // The request log feeds the dashboard's list of recent pulls.
  const recentPulls = config.ui.enabled ? new RecentPulls() : undefined;
  const start = requestStart(log.child({ component: 'http' }), metrics, recentPulls);
  app.use(requestContext(start));
  // The registry API first: pulls are nearly all the traffic, and every layer Express tries before the
  // one that answers costs each of them time.
  // With auth on, the dashboard and admin API are for users allowed to pull everything (see below).
  let adminOnly: RequestHandler | undefined;
  let closeAuth: (() => Promise<void>) | undefined;
  if (config.auth.enabled) {
    // Loaded only when used: the JWT and bcrypt code would add ~8 MB to every mirror's resident memory.
    const [{ ClientAuth }, { tokenRouter }, { authenticate }, { requireAdmin }] = await Promise.all([
      import('./auth/client-auth.js'),
      import('./http/handlers/token.js'),
      import('./http/middleware/authenticate.js'),
      import('./http/middleware/admin-auth.js'),
    ]);
    // Rules and tokens name repositories as routed: "docker.io/library/alpine"; local ones as pushed.
    // A write is checked on the repository it would create (push rights decide who may create one).
    const clientAuth = await ClientAuth.create(config.auth, paths.tokenSigningKey, (name, ns, write) => {
      const repo = router.routeFor(name, ns, write);
      return repo.upstream === LOCAL ? repo.name : `${repo.upstream}/${repo.name}`;
    });
    closeAuth = () => clientAuth.close();
    app.use('/token', tokenRouter(clientAuth, log.child({ component: 'auth' })));
    app.use('/v2', authenticate(clientAuth));
    adminOnly = requireAdmin(clientAuth);
  }
  const askForCredentials = Object.values(config.upstreams).some((u) => u.passThroughCredentials);
  app.use('/v2', registryRouter({
    registry: reads, local: localRegistry, maxManifestSize: config.maxManifestSize, upstreams: router, log: log.child({ component: 'http' }), askForCredentials,
    upstreamHolds: (repo, ctx) => registry.upstreamHolds(repo, ctx),
  }));
  app.get('/healthz', (req, res) => {
    (res.locals as RequestLocals).route = 'health';
    healthz(req, res);
  });
  let draining = false;
  const ready = readyz(db, paths.tmp, () => draining);
  app.get('/readyz', (req, res) => {
    (res.locals as RequestLocals).route = 'health';
    ready(req, res);
  });
  app.get('/metrics', async (_req, res) => {
    (res.locals as RequestLocals).route = 'metrics';
    res.setHeader('content-type', metrics.registry.contentType);
    res.end(await metrics.registry.metrics());
  });
  const jobs = new AdminJobs({ config, registry, local, index: catalog, files: store, evictor, localRegistry, router, log: log.child({ component: 'jobs' }) });
  // Scheduled syncs run in the server only: an admin command holding the directory does one job and leaves.
  const sync = adminToken && config.sync.length > 0
    ? new SyncScheduler(config.sync, { registry, local, upstreams, maxManifestSize: config.maxManifestSize, platforms: config.warm.platforms, concurrency: config.warm.concurrency, log: log.child({ component: 'sync' }) })
    : undefined;
  if (sync) metrics.observeSync(() => sync.status());
  // Before the dashboard's guard below, which would otherwise answer for /api/v1/jobs too.
  app.use('/api/v1/jobs', jobsRouter({ jobs, sync: () => sync?.status() ?? [], adminToken: () => adminToken, adminOnly, defaults: config.warm, log: log.child({ component: 'jobs' }) }));
  const history = recentPulls && new CounterHistory(() => readTotals(metrics));
  if (recentPulls && history) {
    const startedAt = Date.now();
    history.start();
    if (adminOnly) app.use(['/api/v1', '/ui'], adminOnly);
    app.use('/api/v1', adminRouter({
      summary: () => buildSummary({ metrics, cache: () => catalog.totals(), downloads: () => registry.downloads(), upstreams, maxBytes: config.cache.maxSize, startedAt }),
      sample: () => readTotals(metrics),
      top: new TopContent(db),
      recent: recentPulls,
      history,
      sync: () => sync?.status() ?? [],
    }));
    app.use('/ui', dashboardRouter());
  }
  // Anything no route took: an OCI error too, not Express's HTML page that echoes the method and path.
  app.use(endpointNotFound);
  app.use(ociErrorHandler(log.child({ component: 'http' })));
  // Client auth is Express middleware, so with auth on every request goes through Express.
  const fastPath = config.auth.enabled ? undefined : manifestFastPath({ registry: reads, upstreams: router, start, log: log.child({ component: 'http' }) });
  const handler: RequestListener = fastPath
    ? (req, res) => {
      if (!fastPath(req, res)) app(req, res);
    }
    : app;

  const flushTimer = setInterval(() => {
    // A slice per turn of the event loop: each hit moves the content its manifest names too.
    catalog.flushSlices().catch((err: unknown) => {
      // e.g. SQLITE_FULL on a full disk: the hits are lost, the mirror keeps serving
      log.error({ err }, 'could not record cache hits');
    });
  }, ACCESS_FLUSH_MS);
  flushTimer.unref();
  sync?.start();

  let closed = false;
  return {
    app,
    handler,
    registry,
    store,
    catalog,
    evictor,
    reconciled,
    localRegistry,
    metrics,
    upstreams,
    jobs,
    sync,
    startDraining() {
      draining = true;
    },
    async close(graceMs = 30_000) {
      if (closed) return;
      closed = true;
      clearInterval(flushTimer);
      history?.stop();
      clearInterval(evictionTimer);
      clearInterval(uploadSweep);
      sync?.stop();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([registry.drain(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      await Promise.all([...upstreams.values()].map((u) => u.client.close()));
      await closeAuth?.();
      stopReconciling.abort();
      await reconciled.catch(() => undefined);
      catalog.flush();
      await checkpointer.stop();
      db.close();
      await lock.release();
    },
    announce: (adminUrl) => lock.announce(adminUrl),
  };
}
