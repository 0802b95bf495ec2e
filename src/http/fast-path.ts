// GET and HEAD of manifests, served without Express. Under load, every request that went through
// Express's app.handle left objects alive long enough to be promoted out of V8's young generation, and
// the scavenges that copied them paused the process for ~12 ms each: a bare Express app answering a
// fixed body had a p99 of 18-22 ms at 32 connections on this project's 2-core bench machine, plain
// node:http 4.7 ms (bench/NOTES.md §3). Manifest requests are the many small ones, so they skip it.
// Anything else (blobs, pushes, other endpoints, and everything when client auth is on) goes to
// Express. The bookkeeping (request id, log line, metrics) and the error format are the same code.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { UpstreamRouter } from '../registry/routing.js';
import type { Registry } from '../registry/types.js';
import { manifestFromRegistry, manifestHitNow, manifestRequest } from './handlers/manifests.js';
import { writeOciError } from './middleware/errors.js';
import type { RequestLocals, RequestStart } from './middleware/request-context.js';
import { nsOf, targetOfUrl, type RegistryTarget } from './registry-target.js';

export interface FastPathDeps {
  registry: Registry;
  upstreams: UpstreamRouter;
  start: RequestStart;
  log: Logger;
}

/** Returns a listener that answers a request it recognises and returns true, else returns false. */
export function manifestFastPath({ registry, upstreams, start, log }: FastPathDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const url = req.url ?? '';
    const target = manifestTarget(url);
    if (!target) return false;
    const { name, reference } = target;
    const locals: RequestLocals = { requestId: '', route: 'manifest', target };
    const done = start(req, res, locals);
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    const fail = (err: unknown) => writeOciError(err, req, res, locals.requestId, log);
    try {
      const request = manifestRequest(upstreams.route(name, nsOf(url)), reference, req, res, locals);
      if (!manifestHitNow(registry, request)) manifestFromRegistry(registry, request).catch(fail);
    } catch (err) {
      fail(err);
    }
    // A hit from memory has ended its response already, within this event; anything else ends later.
    if (res.writableEnded) done(true);
    else res.on('close', done);
    return true;
  };
}

/** The manifest a request URL names (the registry-target parse of its path below /v2), or undefined for any other URL. */
export function manifestTarget(url: string): Extract<RegistryTarget, { endpoint: 'manifest' }> | undefined {
  if (!url.startsWith('/v2/')) return undefined;
  const target = targetOfUrl(url.slice(3));
  return target.endpoint === 'manifest' ? target : undefined;
}
