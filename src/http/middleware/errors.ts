// Answers every failure in the OCI error format. A failure after the headers went out cannot change the
// status any more: the connection is destroyed so the client sees a broken transfer, never a short 200.
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

/** Anything under /v2/ that matches no endpoint. */
export function endpointNotFound(req: Request, _res: Response, next: NextFunction): void {
  next(new LongshoreError('LS_ENDPOINT_NOT_FOUND', `no endpoint ${req.method} ${req.path.slice(0, 200)}`));
}
