// Gives each request an id (the client's X-Request-Id when it sent a sane one) and writes one log line
// when the response finishes or the connection closes: method, path, status, bytes, cache outcome, ms.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { CacheOutcome } from '../../registry/types.js';

export interface RequestLocals {
  requestId: string;
  cache?: CacheOutcome;
}

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestContext(log: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    const header = req.headers['x-request-id'];
    const requestId = typeof header === 'string' && CLIENT_ID.test(header) ? header : randomUUID();
    const locals = res.locals as RequestLocals;
    locals.requestId = requestId;
    res.setHeader('x-request-id', requestId);
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const fields = {
        requestId,
        method: req.method,
        path: req.originalUrl,
        status: res.statusCode,
        bytes: socket.bytesWritten - bytesBefore,
        cache: locals.cache,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      log.info(fields, 'request');
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}
