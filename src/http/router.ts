// Routes of the registry API (distribution-spec "Endpoints"). Repository names contain slashes, so the
// /v2/ subtree is matched by one pattern and the name checked by the spec's grammar (registry/reference.ts).
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { LongshoreError } from '../errors.js';
import type { UpstreamRouter } from '../registry/routing.js';
import type { Registry } from '../registry/types.js';
import { getBlob, headBlob } from './handlers/blobs.js';
import { getManifest } from './handlers/manifests.js';
import { listTags } from './handlers/tags.js';
import { endpointNotFound } from './middleware/errors.js';
import type { RequestLocals } from './middleware/request-context.js';

/** /<name>/(manifests|blobs)/<reference>, relative to /v2. */
const CONTENT_PATH = /^\/(.+)\/(manifests|blobs)\/([^/]+)$/;
/** /<name>/tags/list, relative to /v2. */
const TAGS_PATH = /^\/(.+)\/tags\/list$/;

export interface RouterDeps {
  registry: Registry;
  upstreams: UpstreamRouter;
  log: Logger;
}

export function registryRouter({ registry, upstreams, log }: RouterDeps): express.Router {
  const router = express.Router({ caseSensitive: true, strict: true });

  router.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    next();
  });

  // API version check: clients probe it before anything else.
  router.get('/', (_req, res) => {
    (res.locals as RequestLocals).route = 'base';
    res.status(200).json({});
  });

  router.use(async (req: Request, res: Response, next: NextFunction) => {
    const match = CONTENT_PATH.exec(req.path);
    if (!match) return next();
    const [, name, kind, reference] = match as unknown as [string, string, 'manifests' | 'blobs', string];
    const ns = typeof req.query.ns === 'string' ? req.query.ns : undefined;
    (res.locals as RequestLocals).route = kind === 'manifests' ? 'manifest' : 'blob';
    const repo = upstreams.route(name, ns);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new LongshoreError('LS_UNSUPPORTED', `${req.method} is not supported on ${kind}: this mirror is read-only for ${repo.upstream}`, { method: req.method });
    }
    if (kind === 'manifests') return getManifest(registry, repo, reference, req, res);
    if (req.method === 'HEAD') return headBlob(registry, repo, reference, req, res);
    return getBlob(registry, repo, reference, req, res, log);
  });

  router.use(async (req: Request, res: Response, next: NextFunction) => {
    const match = TAGS_PATH.exec(req.path);
    if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    (res.locals as RequestLocals).route = 'tags';
    const ns = typeof req.query.ns === 'string' ? req.query.ns : undefined;
    const repo = upstreams.route(match[1]!, ns);
    return listTags(registry, repo, match[1]!, req, res);
  });

  router.use(endpointNotFound);
  return router;
}
