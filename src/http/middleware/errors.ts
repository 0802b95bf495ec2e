// Answers every failure in the OCI error format. A failure after the headers went out cannot change the
// status any more: the connection is destroyed so the client sees a broken transfer, never a short 200.
// Two kinds of error that are no LongshoreError are still the client's doing, not bugs: a request body
// Express's parsers refuse, and a body stream the client broke off by leaving.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { LongshoreError } from '../../errors.js';
import { toOciError } from '../oci-errors.js';
import type { RequestLocals } from './request-context.js';

export function ociErrorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    writeOciError(err, req, res, (res.locals as RequestLocals).requestId, log);
  };
}

/** Answers `err` in the OCI error format, on plain Node objects (also used without Express). */
export function writeOciError(err: unknown, req: IncomingMessage, res: ServerResponse, requestId: string | undefined, log: Logger): void {
  if (clientLeft(err, req)) {
    // Its socket is closed: no answer can reach it. The status is for the request log and metrics only.
    log.debug({ requestId, method: req.method }, 'client went away');
    if (!res.headersSent) res.statusCode = 400;
    res.destroy();
    return;
  }
  err = fromBodyParser(err) ?? err;
  if (!(err instanceof LongshoreError)) {
    // Express rewrites req.url inside mounted routers; originalUrl keeps what the client sent.
    const path = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url;
    log.error({ err, requestId, method: req.method, path }, 'unhandled error');
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const oci = toOciError(err);
  if (oci.status >= 500 && err instanceof LongshoreError) {
    log.warn({ requestId, code: err.code, detail: err.detail, error: err.message }, 'request failed');
  }
  res.statusCode = oci.status;
  for (const [name, value] of Object.entries(oci.headers)) res.setHeader(name, value);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const body = JSON.stringify(oci.body);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/**
 * The error of Express's body parsers (body-parser, through raw-body): http-errors marked `expose` with a
 * 4xx status, mostly with a `type` ("entity.too.large", "charset.unsupported", "encoding.unsupported",
 * "entity.parse.failed"), or a zlib error of an undecodable compressed body wrapped as a 400. Always
 * 400: containerd falls back from POST /token to GET only on 400/401/404/405.
 */
function fromBodyParser(err: unknown): LongshoreError | undefined {
  if (err instanceof LongshoreError || typeof err !== 'object' || err === null) return undefined;
  const { status, expose, type, code, message } = err as { status?: unknown; expose?: unknown; type?: unknown; code?: unknown; message?: unknown };
  if (expose !== true || typeof status !== 'number' || status < 400 || status > 499) return undefined;
  const reason = typeof type === 'string' ? type : typeof code === 'string' ? code : 'unreadable';
  return new LongshoreError('LS_REQUEST_BODY_INVALID', `request body refused: ${String(message).slice(0, 200)}`, { reason: reason.slice(0, 64) }, { cause: err });
}

/** The request's body stream broke because the client closed the connection before sending all of it. */
function clientLeft(err: unknown, req: IncomingMessage): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return req.readableAborted && (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE');
}

/** Anything that matches no endpoint, under /v2/ or not. */
export function endpointNotFound(req: Request, _res: Response, next: NextFunction): void {
  // originalUrl: inside the /v2 router req.path has lost its mount point.
  const path = req.originalUrl.split('?', 1)[0]!;
  next(new LongshoreError('LS_ENDPOINT_NOT_FOUND', `no endpoint ${req.method.slice(0, 16)} ${path.slice(0, 200)}`));
}
