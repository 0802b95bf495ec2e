// The read-only admin API under /api/v1/ (docs/admin-api.md): JSON for the dashboard and for scripts.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { CounterHistory } from '../admin/history.js';
import type { RecentPulls } from '../admin/recent-pulls.js';
import type { Summary } from '../admin/summary.js';
import type { TopContent } from '../admin/top-content.js';
import type { CounterSample } from '../admin/totals.js';
import type { SyncStatus } from '../jobs/sync.js';
import { LongshoreError } from '../errors.js';
import type { RequestLocals } from './middleware/request-context.js';
import { pathOfUrl } from './registry-target.js';

export interface AdminDeps {
  summary(): Promise<Summary>;
  /** The counters now: the last point of a time series. */
  sample(): Promise<CounterSample>;
  top: TopContent;
  recent: RecentPulls;
  history: CounterHistory;
  /** Scheduled sync rules' status (jobs/sync.ts). */
  sync?: () => SyncStatus[];
}

const MAX_TOP = 100;

export function adminRouter(deps: AdminDeps): express.Router {
  const router = express.Router({ caseSensitive: true, strict: true });

  router.use((_req: Request, res: Response, next: NextFunction) => {
    (res.locals as RequestLocals).route = 'admin';
    res.setHeader('cache-control', 'no-store');
    next();
  });

  router.get('/summary', async (_req, res) => {
    res.json(await deps.summary());
  });

  router.get('/top', (req, res) => {
    const by = choice(req.query.by, 'by', ['pulls', 'size'] as const, 'pulls');
    const limit = integer(req.query.limit, 'limit', 10, MAX_TOP);
    res.json({
      by,
      repositories: deps.top.repositories(by, limit),
      ...(by === 'pulls' ? { tags: deps.top.tags(limit) } : {}),
    });
  });

  router.get('/recent', (req, res) => {
    const limit = integer(req.query.limit, 'limit', 50, deps.recent.capacity);
    res.json({ pulls: deps.recent.list(limit) });
  });

  router.get('/timeseries', async (_req, res) => {
    const points = [...deps.history.points(), await deps.sample()];
    res.json({ intervalMs: deps.history.intervalMs, points });
  });

  router.get('/sync', (_req, res) => {
    res.json({ rules: deps.sync?.() ?? [] });
  });

  router.use((req: Request, _res: Response, next: NextFunction) => {
    next(new LongshoreError('LS_ENDPOINT_NOT_FOUND', `no endpoint ${req.method} /api/v1${pathOfUrl(req.url).slice(0, 200)}`));
  });
  return router;
}

function integer(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'string' && /^\d{1,6}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= max)) throw new LongshoreError('LS_QUERY_INVALID', `${name} must be an integer from 1 to ${max}`, { [name]: String(value).slice(0, 50) });
  return n;
}

function choice<T extends string>(value: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new LongshoreError('LS_QUERY_INVALID', `${name} must be one of ${allowed.join(', ')}`, { [name]: String(value).slice(0, 50) });
}
