// GET/HEAD /v2/<name>/blobs/<digest>: streams the blob, whole or as one byte range (dockerd resumes
// interrupted layer downloads with Range). Blobs are immutable, so they may be cached forever.
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { LongshoreError } from '../../errors.js';
import { parseDigest } from '../../registry/reference.js';
import type { RepositoryRef } from '../../registry/routing.js';
import type { Registry } from '../../registry/types.js';
import type { ByteRange } from '../../storage/content-store.js';
import type { RequestLocals } from '../middleware/request-context.js';
import { sendStream } from '../send-stream.js';
import { matchesEtag } from './manifests.js';

const IMMUTABLE = 'public, max-age=31536000, immutable';

export async function headBlob(registry: Registry, repo: RepositoryRef, rawDigest: string, _req: Request, res: Response): Promise<void> {
  const digest = parseDigest(rawDigest);
  const locals = res.locals as RequestLocals;
  const info = await registry.statBlob(repo, digest, locals);
  locals.cache = info.outcome;
  setBlobHeaders(res, digest);
  if (info.size !== undefined) res.setHeader('content-length', info.size);
  res.status(200).end();
}

export async function getBlob(registry: Registry, repo: RepositoryRef, rawDigest: string, req: Request, res: Response, log: Logger): Promise<void> {
  const digest = parseDigest(rawDigest);
  const locals = res.locals as RequestLocals;
  const handle = await registry.openBlob(repo, digest, locals);
  locals.cache = handle.outcome;
  setBlobHeaders(res, digest);
  const etag = `"${digest}"`;
  if (req.headers['if-none-match'] !== undefined && matchesEtag(req.headers['if-none-match'], etag)) {
    handle.release();
    res.status(304).end();
    return;
  }
  let range: ByteRange | undefined;
  if (req.headers.range !== undefined && handle.size !== undefined && handle.ranges !== false) {
    try {
      range = byteRange(req, handle.size);
    } catch (err) {
      handle.release();
      res.setHeader('content-range', `bytes */${handle.size}`);
      throw err;
    }
  }
  if (range) {
    res.status(206);
    res.setHeader('content-range', `bytes ${range.start}-${range.end}/${handle.size}`);
    res.setHeader('content-length', range.end - range.start + 1);
  } else {
    res.status(200);
    if (handle.size !== undefined) res.setHeader('content-length', handle.size);
  }
  sendStream(handle.stream(range), res, (reason) => {
    log.debug({ requestId: locals.requestId, digest, reason }, 'blob response ended early');
  });
}

function setBlobHeaders(res: Response, digest: string): void {
  res.setHeader('docker-content-digest', digest);
  res.setHeader('etag', `"${digest}"`);
  res.setHeader('content-type', 'application/octet-stream');
  res.setHeader('accept-ranges', 'bytes');
  res.setHeader('cache-control', IMMUTABLE);
}

/**
 * One satisfiable byte range, or undefined to send the whole blob (a malformed header, or several
 * ranges: RFC 9110 lets a server ignore Range). Unsatisfiable ranges throw (416).
 */
function byteRange(req: Request, size: number): ByteRange | undefined {
  const ranges = req.range(size);
  if (ranges === -1) throw new LongshoreError('LS_RANGE_INVALID', `requested range is not satisfiable for a blob of ${size} bytes`, { size });
  if (ranges === -2 || ranges === undefined || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  const [only] = ranges;
  if (!only || (only.start === 0 && only.end === size - 1)) return undefined;
  return { start: only.start, end: only.end };
}
