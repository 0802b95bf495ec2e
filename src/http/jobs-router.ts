// Admin jobs over HTTP, under /api/v1/jobs/ (docs/admin-api.md): how `longshore gc|verify|warm|export|
// import` send their work to the server that owns the data directory instead of writing beside it.
// Always mounted, whatever ui.enabled says: the CLI needs it, the dashboard does not.
//
// Who may call: a request carrying the data directory's admin token (X-Longshore-Admin-Token, the
// contents of <dataDir>/admin.token, readable only by the account that runs the mirror) — proof of
// access to the data itself; or, with auth.enabled, a user allowed to pull every repository, as for
// the dashboard. Without auth, the token is the only way: these endpoints write to the cache, and a
// mirror open to a network must not let anyone who can pull also plant images.
//
// Replies: NDJSON, one JobEvent a line, the last being `result` or `error` (after a 200 has gone out, a
// failure can only be reported in the stream). Export answers the tarball itself, with Content-Length.
import { timingSafeEqual } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import { parseSize } from '../config/units.js';
import { LongshoreError } from '../errors.js';
import { describe, type AdminJobs } from '../jobs/admin-jobs.js';
import { ADMIN_TOKEN_HEADER, type JobEvent } from '../jobs/events.js';
import type { SyncStatus } from '../jobs/sync.js';
import { parsePlatforms } from '../jobs/warm.js';
import type { RequestLocals } from './middleware/request-context.js';

/** JSON bodies of job requests: reference lists and export exclusions (about 80 bytes a digest). */
const MAX_JSON = 16 * 1024 * 1024;
const MAX_REFS = 10_000;

export interface JobsRouterDeps {
  jobs: AdminJobs;
  /** Scheduled sync rules' status, also at GET /api/v1/sync for the dashboard. */
  sync: () => SyncStatus[];
  /** The current admin token (read at each request: it is written once at start-up). */
  adminToken: () => Buffer | undefined;
  /** With auth.enabled: admits users allowed to pull everything. */
  adminOnly?: RequestHandler | undefined;
  defaults: { platforms: readonly string[]; concurrency: number };
  log: Logger;
}

export function jobsRouter(deps: JobsRouterDeps): express.Router {
  const router = express.Router({ caseSensitive: true, strict: true });
  const json = express.json({ limit: MAX_JSON, type: () => true });

  router.use(async (req: Request, res: Response, next: NextFunction) => {
    (res.locals as RequestLocals).route = 'admin';
    res.setHeader('cache-control', 'no-store');
    const token = deps.adminToken();
    const sent = req.headers[ADMIN_TOKEN_HEADER];
    if (token && typeof sent === 'string' && sent.length === token.length && timingSafeEqual(Buffer.from(sent), token)) return next();
    if (deps.adminOnly) return deps.adminOnly(req, res, next);
    throw new LongshoreError('LS_ADMIN_TOKEN_INVALID', `admin jobs need the data directory's admin token in ${ADMIN_TOKEN_HEADER}`);
  });

  router.get('/sync', (_req, res) => {
    res.json({ rules: deps.sync() });
  });

  router.post('/gc', json, async (req, res) => {
    const body = object(req.body);
    const to = body.to === undefined || body.to === null ? undefined : parseSize(body.to as string | number);
    if (body.to !== undefined && body.to !== null && to === undefined) throw new LongshoreError('LS_QUERY_INVALID', 'to: expected a size such as "10GiB"');
    await stream(res, async () => deps.jobs.gc({ to, dryRun: body.dryRun === true }));
  });

  router.post('/verify', json, async (req, res) => {
    const body = object(req.body);
    await stream(res, async (emit) => deps.jobs.verify({ quarantine: body.quarantine === true }, emit));
  });

  router.post('/warm', json, async (req, res) => {
    const request = warmRequest(req.body, deps.defaults);
    await stream(res, async (emit, signal) => (await deps.jobs.warm(request, emit, signal)).summary);
  });

  router.post('/export', json, async (req, res) => {
    const request = warmRequest(req.body, deps.defaults);
    const exclude = object(req.body).exclude ?? [];
    if (!Array.isArray(exclude) || !exclude.every((d) => typeof d === 'string')) throw new LongshoreError('LS_QUERY_INVALID', 'exclude: expected a list of digests');
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const { plan, stream: tar } = await deps.jobs.exportBundle({ ...request, exclude }, () => undefined, abort.signal);
    res.status(200);
    res.setHeader('content-type', 'application/x-tar');
    res.setHeader('content-length', String(plan.size));
    res.setHeader('x-longshore-bundle-blobs', String(plan.blobs));
    res.setHeader('x-longshore-bundle-omitted', String(plan.omitted.length));
    try {
      await pipeline(tar, res);
    } catch (err) {
      // Headers are out: the client sees a connection closed before Content-Length bytes, never a short bundle taken for whole.
      deps.log.warn({ err }, 'export failed mid-stream');
      res.destroy();
    }
  });

  router.post('/import', async (req, res) => {
    await stream(res, async (emit, signal) => {
      const result = await deps.jobs.importBundle(req, emit, signal);
      const failed = result.images.filter((i) => i.error).length;
      const listsFailed = result.referrers.filter((r) => r.error).length;
      return {
        images: result.images.length - failed, failed: failed + listsFailed, blobs: result.blobs, bytes: result.bytes, seconds: result.seconds,
        ...(result.referrers.length > 0 ? { referrers: result.referrers.length - listsFailed } : {}),
      };
    });
  });

  return router;
}

/** Runs a job, streaming its events as NDJSON and ending with its result (or error). */
async function stream(res: Response, job: (emit: (e: JobEvent) => void, signal: AbortSignal) => Promise<Record<string, unknown> | object>): Promise<void> {
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  res.status(200);
  res.setHeader('content-type', 'application/x-ndjson');
  res.flushHeaders();
  const emit = (event: JobEvent) => {
    if (!res.writableEnded) res.write(`${JSON.stringify(event)}\n`);
  };
  try {
    const result = await job(emit, abort.signal);
    emit({ event: 'result', ...result });
  } catch (err) {
    emit({ event: 'error', ...describe(err), ...(err instanceof LongshoreError && err.detail ? { detail: err.detail } : {}) });
  }
  res.end();
}

function object(body: unknown): Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? body as Record<string, unknown> : {};
}

function warmRequest(raw: unknown, defaults: JobsRouterDeps['defaults']): { refs: string[]; platforms: ReturnType<typeof parsePlatforms>; concurrency: number; withReferrers: boolean } {
  const body = object(raw);
  const refs = body.refs;
  if (!Array.isArray(refs) || refs.length === 0 || refs.length > MAX_REFS || !refs.every((r) => typeof r === 'string')) {
    throw new LongshoreError('LS_QUERY_INVALID', `refs: expected 1 to ${MAX_REFS} image references`);
  }
  const platforms = parsePlatforms(typeof body.platforms === 'string' ? body.platforms : Array.isArray(body.platforms) ? body.platforms.join(',') : undefined, defaults.platforms);
  const concurrency = body.concurrency === undefined ? defaults.concurrency : Number(body.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new LongshoreError('LS_QUERY_INVALID', 'concurrency: expected an integer from 1 to 64');
  if (body.withReferrers !== undefined && typeof body.withReferrers !== 'boolean') throw new LongshoreError('LS_QUERY_INVALID', 'withReferrers: expected true or false');
  return { refs: refs as string[], platforms, concurrency, withReferrers: body.withReferrers === true };
}
