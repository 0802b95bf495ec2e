// The server: the core (core.ts, the composition root shared with the admin commands) with HTTP on
// top — the registry API and its fast path, client auth, the token endpoint, health, metrics, the admin
// jobs API, scheduled syncs and the dashboard. No module keeps singletons or reads settings of its own.
import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import type { RequestListener } from 'node:http';
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
import type { AdminJobs } from './jobs/admin-jobs.js';
import { SyncScheduler } from './jobs/sync.js';
import { dashboardRouter } from './http/dashboard.js';
import { healthz, readyz } from './http/handlers/health.js';
import { endpointNotFound, ociErrorHandler } from './http/middleware/errors.js';
import { requestContext, requestStart, type RequestLocals } from './http/middleware/request-context.js';
import { clientAddressOf, noteClientAddress } from './http/client-address.js';
import { manifestFastPath } from './http/fast-path.js';
import { registryRouter } from './http/router.js';
import type { Evictor } from './cache/evictor.js';
import type { ReconcileResult } from './cache/recovery.js';
import { buildCore, type Core } from './core.js';
import type { Catalog } from './metadata/catalog.js';
import type { Metrics } from './observability/metrics.js';
import type { LocalRegistry } from './registry/local-registry.js';
import type { ProxyRegistry, UpstreamEntry } from './registry/proxy.js';
import { LOCAL } from './registry/routing.js';
import type { ContentStore } from './storage/content-store.js';

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
  /** Scheduled syncs (config `sync`); undefined when there are none. */
  sync: SyncScheduler | undefined;
  /** From now on /readyz answers 503 (the node is leaving a fleet); everything else is served as before. */
  startDraining(): void;
  /** Records the admin API's URL (and, for HTTPS, the fingerprint of its certificate) in the lock file. */
  announce(adminUrl: string, certificate?: string): Promise<void>;
  /** Waits (at most `graceMs`) for downloads in progress, then closes upstream pools and the database. */
  close(graceMs?: number): Promise<void>;
}

/** Takes the data directory (its lock: storage/data-lock.ts) and builds the serving mirror. */
export async function createLongshore(config: Config, log: Logger): Promise<Longshore> {
  const core = await buildCore(config, log, { role: 'server' });
  try {
    const adminToken = await writeAdminToken(core.paths.adminToken);
    return await serve(config, log, core, adminToken);
  } catch (err) {
    await core.close(0);
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

/** HTTP on top of the core: the registry API, token endpoint, health, metrics, admin jobs, dashboard. */
async function serve(config: Config, log: Logger, core: Core, adminToken: Buffer): Promise<Longshore> {
  const { paths, db, catalog, store, metrics, upstreams, registry, localRegistry, router, reads, evictor, jobs, local, lock, reconciled } = core;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  // The request log feeds the dashboard's list of recent pulls.
  const recentPulls = config.ui.enabled ? new RecentPulls() : undefined;
  const start = requestStart(log.child({ component: 'http' }), metrics, recentPulls);
  app.use(requestContext(start));
  app.use(noteClientAddress(clientAddressOf(config.server.trustedProxies)));
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
  // Scheduled syncs run in the server only: an admin command holding the directory does one job and leaves.
  const sync = config.sync.length > 0
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
      history?.stop();
      sync?.stop();
      await core.close(graceMs);
      await closeAuth?.();
    },
    announce: (adminUrl, certificate) => lock.announce(adminUrl, certificate),
  };
}
