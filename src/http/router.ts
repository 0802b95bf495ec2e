// Routes of the registry API (distribution-spec "Endpoints"). The path is parsed once, into a
// RegistryTarget (registry-target.ts), which client authorization may already have done; each route
// below reads that value. Names are checked by the spec's grammar when they are routed.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { LongshoreError } from '../errors.js';
import type { LocalRegistry } from '../registry/local-registry.js';
import type { RepositoryRef, UpstreamRouter } from '../registry/routing.js';
import type { Registry } from '../registry/types.js';
import { getBlob, headBlob } from './handlers/blobs.js';
import { getManifest } from './handlers/manifests.js';
import * as push from './handlers/push.js';
import { listReferrers } from './handlers/referrers.js';
import { listTags } from './handlers/tags.js';
import { endpointNotFound } from './middleware/errors.js';
import type { RequestLocals } from './middleware/request-context.js';
import { nsOf, targetOfUrl, type RegistryTarget } from './registry-target.js';

export interface RouterDeps {
  /** Reads, whether local or proxied. */
  registry: Registry;
  /** Writes and content management on local repositories. */
  local: LocalRegistry;
  maxManifestSize: number;
  upstreams: UpstreamRouter;
  log: Logger;
  /**
   * Some upstream has passThroughCredentials: GET /v2/ without credentials answers 401 with a Basic
   * challenge. docker, podman and skopeo send the credentials they hold only to a registry whose ping
   * asked for them; without it every client would be anonymous upstream.
   */
  askForCredentials?: boolean;
  /** Whether an upstream has a repository (a push must not create a local one mirror clients would get instead). */
  upstreamHolds?: (repo: RepositoryRef, ctx: RequestLocals) => Promise<boolean>;
}

export function registryRouter({ registry, local, maxManifestSize, upstreams, log, askForCredentials = false, upstreamHolds }: RouterDeps): express.Router {
  const router = express.Router({ caseSensitive: true, strict: true });

  router.use((req: Request, res: Response, next: NextFunction) => {
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    const locals = res.locals as RequestLocals;
    locals.target ??= targetOfUrl(req.url);
    next();
  });
  const targetOf = (res: Response): RegistryTarget => (res.locals as RequestLocals).target!;

  // Pulls first: they are nearly every request.
  router.use(async (req: Request, res: Response, next: NextFunction) => {
    const target = targetOf(res);
    if (target.endpoint !== 'manifest' && target.endpoint !== 'blob') return next();
    const { name } = target;
    const kind = target.endpoint === 'manifest' ? 'manifests' : 'blobs';
    const reference = target.endpoint === 'manifest' ? target.reference : target.digest;
    const ns = nsOf(req.url);
    (res.locals as RequestLocals).route = target.endpoint;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const repo = upstreams.routeWrite(name, ns);
      if (kind === 'manifests' && req.method === 'PUT') return push.putManifest(local, repo, name, reference, maxManifestSize, req, res);
      if (kind === 'manifests' && req.method === 'DELETE') return push.deleteManifest(local, repo, reference, res);
      if (kind === 'blobs' && req.method === 'DELETE') return push.deleteBlob(local, repo, reference, res);
      throw new LongshoreError('LS_UNSUPPORTED', `${req.method} is not supported on ${kind}`, { method: req.method });
    }
    const repo = upstreams.route(name, ns);
    if (kind === 'manifests') return getManifest(registry, repo, reference, req, res, res.locals as RequestLocals);
    if (req.method === 'HEAD') return headBlob(registry, repo, reference, req, res);
    return getBlob(registry, repo, reference, req, res, log);
  });

  // API version check: clients probe it before anything else.
  router.get('/', (_req, res) => {
    const locals = res.locals as RequestLocals;
    locals.route = 'base';
    // Any credentials will do here: only the upstream can judge them, per repository (registry/proxy.ts).
    if (askForCredentials && locals.credentials === undefined) {
      throw new LongshoreError('LS_UNAUTHORIZED', 'log in to this mirror with your upstream account', { challenge: 'basic' });
    }
    res.status(200).json({});
  });

  router.get('/_catalog', (req, res) => {
    (res.locals as RequestLocals).route = 'catalog';
    push.catalog(local, req, res);
  });

  router.use(async (req: Request, res: Response, next: NextFunction) => {
    const target = targetOf(res);
    if (target.endpoint !== 'upload-start' && target.endpoint !== 'upload') return next();
    (res.locals as RequestLocals).route = 'upload';
    const { name } = target;
    const repo = upstreams.routeWrite(name, undefined);
    if (target.endpoint === 'upload-start') {
      if (req.method !== 'POST') throw new LongshoreError('LS_UNSUPPORTED', `${req.method} is not supported on blob uploads; POST starts one`);
      // The first upload makes a new name local: not one the default upstream already serves, which
      // registry-mirrors clients ask for by the same name (e.g. bitnami/redis).
      const shadowed = upstreams.shadowed(name);
      if (shadowed && upstreamHolds && (await upstreamHolds(shadowed, res.locals as RequestLocals))) throw upstreams.shadowRefusal(name, shadowed);
      return push.startUpload(local, upstreams, repo, name, req, res);
    }
    const { id } = target;
    switch (req.method) {
      case 'PATCH': return push.patchUpload(local, repo, name, id, req, res);
      case 'PUT': return push.completeUpload(local, repo, name, id, req, res);
      case 'GET': return push.uploadStatus(local, repo, name, id, res);
      case 'DELETE': return push.cancelUpload(local, repo, id, res);
      default: throw new LongshoreError('LS_UNSUPPORTED', `${req.method} is not supported on an upload session`);
    }
  });

  // Local repositories list what was pushed; proxied ones ask their upstream (registry/proxy.ts).
  router.use(async (req: Request, res: Response, next: NextFunction) => {
    const target = targetOf(res);
    if (target.endpoint !== 'referrers' || req.method !== 'GET') return next();
    (res.locals as RequestLocals).route = 'referrers';
    return listReferrers(registry, upstreams.route(target.name, nsOf(req.url)), target.digest, req, res);
  });

  router.use(async (req: Request, res: Response, next: NextFunction) => {
    const target = targetOf(res);
    if (target.endpoint !== 'tags' || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    (res.locals as RequestLocals).route = 'tags';
    const repo = upstreams.route(target.name, nsOf(req.url));
    return listTags(registry, repo, target.name, req, res);
  });

  // A known endpoint asked with a method it does not serve: 405 UNSUPPORTED, naming the methods it does.
  router.use((req: Request, res: Response, next: NextFunction) => {
    const allowed = allowedMethods(targetOf(res));
    if (!allowed) return next();
    res.setHeader('allow', allowed.join(', '));
    throw new LongshoreError('LS_UNSUPPORTED', `${req.method} is not supported on this endpoint; it serves ${allowed.join(', ')}`, { method: req.method.slice(0, 16) });
  });

  router.use(endpointNotFound);
  return router;
}

/** The methods an endpoint of the spec serves, for paths whose other methods fell through every route. */
function allowedMethods(target: RegistryTarget): readonly string[] | undefined {
  switch (target.endpoint) {
    case 'base':
    case 'catalog':
    case 'tags':
      return ['GET', 'HEAD'];
    case 'referrers':
      return ['GET'];
    default:
      return undefined;
  }
}
