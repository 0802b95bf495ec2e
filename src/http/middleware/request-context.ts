// Gives each request an id (the client's X-Request-Id when it sent a sane one) and writes one log line
// when the response finishes or the connection closes: method, path, status, bytes, cache outcome, ms.
// The same hook counts the request in the metrics and, for a manifest request, notes it as a recent pull.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { RecentPulls } from '../../admin/recent-pulls.js';
import { requestLineWriter, type RequestLine } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { CacheOutcome } from '../../registry/types.js';
import { basicCredentials } from '../authorization.js';
import type { RegistryTarget } from '../registry-target.js';

export interface RequestLocals {
  requestId: string;
  cache?: CacheOutcome;
  /** A low-cardinality route name for metrics: manifest, blob, base, metrics, health, … */
  route?: string;
  /** With client auth on: the authenticated user, if any (set by authenticate). */
  subject?: string;
  /** Set by getManifest on manifest requests: what a pull asked for. */
  pull?: { upstream: string; repository: string; reference: string };
  /** What the registry request is for, parsed once (http/registry-target.ts); set by the first reader. */
  target?: RegistryTarget;
  /** The client's address (http/client-address.ts: the peer, or what a trusted proxy forwarded); not set on the fast path. */
  client?: string;
  /** The client's Basic credentials (see RequestContext); never logged. */
  credentials?: { username: string; password: string } | undefined;
}

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Request ids for requests that bring none: version-4 UUIDs in form, whose first 74 random bits are drawn
 * once per process and whose last 48 bits count requests. Unique within the process by the count, and
 * across a fleet by the random part; an id is no secret. randomUUID() per request was ~1 % of a warm
 * manifest hit's CPU time (bench/NOTES.md §3).
 */
export function requestIds(): () => string {
  const prefix = randomUUID().slice(0, 24);
  let count = 0;
  return () => {
    count = count === 0xffffffffffff ? 1 : count + 1;
    return prefix + count.toString(16).padStart(12, '0');
  };
}

/**
 * Starts the bookkeeping of one request on plain Node objects (the pull fast path uses it without
 * Express): assigns the id, and returns the function that logs and counts the request. The caller runs
 * that once: on the response's 'close' (after 'finish' on a finished response, alone on a broken one),
 * or, when the whole response was handed to Node within the request's own event (a manifest hit from
 * memory), right after res.end() with `handedOver`: the request then counts as finished, and no
 * listener is added to every such response (bench/NOTES.md §3).
 */
export type RequestStart = (req: IncomingMessage, res: ServerResponse, locals: RequestLocals) => RequestDone;
export type RequestDone = (handedOver?: boolean) => void;

export function requestStart(log: Logger, metrics?: Metrics, recentPulls?: RecentPulls): RequestStart {
  const requests = metrics?.requests;
  // The level is fixed at start-up; at warn and above no request line is built at all. The line has
  // fixed, never secret fields: it is written without pino's generic serialiser (see requestLineWriter).
  const writeLine = requestLineWriter(log);
  const newId = requestIds();
  return (req, res, locals) => {
    // A double in ms (monotonic): hrtime.bigint() allocated two BigInts per request.
    const started = performance.now();
    const path = req.url ?? '';
    const header = req.headers['x-request-id'];
    const requestId = typeof header === 'string' && CLIENT_ID.test(header) ? header : newId();
    locals.requestId = requestId;
    const authorization = req.headers.authorization;
    // skopeo and podman answer a Basic challenge with empty credentials when they hold none: anonymous.
    const basic = authorization === undefined ? undefined : basicCredentials(authorization);
    if (basic !== undefined && (basic.username !== '' || basic.password !== '')) locals.credentials = basic;
    res.setHeader('x-request-id', requestId);
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    return (handedOver = false) => {
      const ms = performance.now() - started;
      const finished = handedOver || res.writableFinished;
      const bytes = bodyBytes(req, res, finished, socket, bytesBefore);
      const status = res.statusCode;
      const method = req.method ?? '';
      const cache = locals.cache;
      requests?.note(locals.route ?? 'other', method, status, cache ?? 'none', ms / 1000, bytes);
      if (locals.pull && recentPulls) {
        const digest = res.getHeader('docker-content-digest');
        const { upstream, repository, reference } = locals.pull;
        recentPulls.record({ at: Date.now(), method, upstream, repository, reference, digest: typeof digest === 'string' ? digest : null, cache: cache ?? null, status, bytes });
      }
      if (!writeLine) return;
      const line: RequestLine = { requestId, method, path, status, bytes, cache, ms };
      if (!finished) line.aborted = true;
      writeLine(line);
    };
  };
}

export function requestContext(start: RequestStart) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.on('close', start(req, res, res.locals as RequestLocals));
    next();
  };
}

/** Body bytes sent: the declared length of a finished response, else what went out on the socket since the request began. */
function bodyBytes(req: IncomingMessage, res: ServerResponse, finished: boolean, socket: Socket, socketBytesBefore: number): number {
  if (req.method === 'HEAD' || res.statusCode === 304) return 0;
  const declared = finished ? Number(res.getHeader('content-length')) : NaN;
  return Number.isFinite(declared) ? declared : Math.max(0, socket.bytesWritten - socketBytesBefore);
}
