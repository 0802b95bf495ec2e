// Answers every failure in the OCI error format. A failure after the headers went out cannot change the
// status any more: the connection is destroyed so the client sees a broken transfer, never a short 200.
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { LongshoreError } from '../../errors.js';
import { toOciError } from '../oci-errors.js';
import type { RequestLocals } from './request-context.js';

export function ociErrorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const requestId = (res.locals as RequestLocals).requestId;
    if (!(err instanceof LongshoreError)) {
      log.error({ err, requestId, method: req.method, path: req.originalUrl }, 'unhandled error');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const oci = toOciError(err);
    if (oci.status >= 500 && err instanceof LongshoreError) {
      log.warn({ requestId, code: err.code, detail: err.detail, error: err.message }, 'request failed');
    }
    res.status(oci.status).set(oci.headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.json(oci.body);
  };
}

/** Anything under /v2/ that matches no endpoint. */
export function endpointNotFound(req: Request, _res: Response, next: NextFunction): void {
  next(new LongshoreError('LS_ENDPOINT_NOT_FOUND', `no endpoint ${req.method} ${req.path.slice(0, 200)}`));
}
