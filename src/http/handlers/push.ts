// Push and content management on local repositories (distribution-spec "Pushing blobs", "Pushing
// manifests", "Content discovery", "Content management"), with the statuses and headers the spec names.
import type { Request, Response } from 'express';
import { isLongshoreError, LongshoreError } from '../../errors.js';
import type { LocalRegistry } from '../../registry/local-registry.js';
import { parseDigest, parseReference } from '../../registry/reference.js';
import { LOCAL, type RepositoryRef, type UpstreamRouter } from '../../registry/routing.js';
import { readLimited } from '../../read-limited.js';
import { clientAddress } from '../client-address.js';
import type { RequestLocals } from '../middleware/request-context.js';

/** Referrers are listed for local repositories only (writes are routed by UpstreamRouter.routeWrite). */
export function requireLocal(repo: RepositoryRef): void {
  if (repo.upstream === LOCAL) return;
  throw new LongshoreError('LS_UNSUPPORTED', `${repo.name} is a read-only cache of ${repo.upstream}; referrers are listed for local repositories only`, { upstream: repo.upstream });
}

function uploadHeaders(res: Response, name: string, id: string, offset: number): void {
  res.setHeader('location', `/v2/${name}/blobs/uploads/${id}`);
  res.setHeader('docker-upload-uuid', id);
  res.setHeader('range', `0-${Math.max(0, offset - 1)}`);
  res.setHeader('content-length', '0');
}

function blobCreated(res: Response, name: string, digest: string): void {
  res.setHeader('location', `/v2/${name}/blobs/${digest}`);
  res.setHeader('docker-content-digest', digest);
  res.setHeader('content-length', '0');
  res.status(201).end();
}

/** Who holds an upload session, for local.maxUploadsPerClient: the authenticated user, else the remote address. */
function clientOf(req: Request, res: Response): string {
  const subject = (res.locals as RequestLocals).subject;
  return subject !== undefined ? `user:${subject}` : `address:${clientAddress(req, res)}`;
}

/** Content-Length of a chunk, when the client sent one. */
function contentLength(req: Request): number | undefined {
  const header = req.headers['content-length'];
  return header !== undefined && /^\d{1,16}$/.test(header) ? Number(header) : undefined;
}

/**
 * A chunk refused by a limit was left unread (or read only up to the limit): the answer closes the
 * connection instead of reading the rest, and says where the upload stands.
 */
function refusedChunk(err: unknown, registry: LocalRegistry, repo: RepositoryRef, res: Response, name: string, id: string): void {
  if (!(err instanceof LongshoreError)) return;
  if (err.code === 'LS_UPLOAD_TOO_LARGE' || err.code === 'LS_QUOTA_EXCEEDED') res.setHeader('connection', 'close');
  if (err.code === 'LS_UPLOAD_RANGE' || err.code === 'LS_UPLOAD_TOO_LARGE' || err.code === 'LS_QUOTA_EXCEEDED') {
    uploadHeaders(res, name, id, registry.session(repo, id).offset);
  }
}

/** Content-Range of a chunk: "start-end" per the spec; "bytes start-end/total" is accepted too. */
function chunkRange(header: string | undefined): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match || Number(match[2]) < Number(match[1])) {
    throw new LongshoreError('LS_UPLOAD_INVALID', `malformed Content-Range ${JSON.stringify(header.slice(0, 100))}; expected "start-end"`);
  }
  return { start: Number(match[1]), end: Number(match[2]) };
}

/** POST /v2/<name>/blobs/uploads/: start a session, upload in one go (?digest=), or mount (?mount=&from=). */
export async function startUpload(registry: LocalRegistry, router: UpstreamRouter, repo: RepositoryRef, name: string, req: Request, res: Response): Promise<void> {
  const { mount, from, digest } = req.query;
  if (typeof mount === 'string') {
    const mounted = typeof from === 'string' && (await registry.mount(repo, parseDigest(mount), router.route(from, undefined)));
    if (mounted) return blobCreated(res, name, mount);
    // Not mountable: the spec says to answer as for a new upload session.
  }
  // A malformed digest is refused before a session (a file, a row, a client's slot) exists.
  const expected = typeof digest === 'string' ? parseDigest(digest) : undefined;
  const session = await registry.startUpload(repo, clientOf(req, res));
  if (expected !== undefined) {
    try {
      await registry.completeUpload(repo, session.id, expected, req, contentLength(req));
    } catch (err) {
      if (isLongshoreError(err, 'LS_UPLOAD_TOO_LARGE') || isLongshoreError(err, 'LS_QUOTA_EXCEEDED')) {
        // Nothing of a refused monolithic upload is worth keeping: its session would only hold a slot.
        res.setHeader('connection', 'close');
        await registry.cancelUpload(repo, session.id);
      }
      throw err;
    }
    return blobCreated(res, name, expected);
  }
  req.resume();
  uploadHeaders(res, name, session.id, 0);
  res.status(202).end();
}

/** PATCH /v2/<name>/blobs/uploads/<id>: one chunk, in order. */
export async function patchUpload(registry: LocalRegistry, repo: RepositoryRef, name: string, id: string, req: Request, res: Response): Promise<void> {
  const range = chunkRange(req.headers['content-range']);
  try {
    const session = await registry.appendUpload(repo, id, req, range, contentLength(req));
    uploadHeaders(res, name, id, session.offset);
    res.status(202).end();
  } catch (err) {
    refusedChunk(err, registry, repo, res, name, id);
    throw err;
  }
}

/** PUT /v2/<name>/blobs/uploads/<id>?digest=: the optional last chunk, then verify and commit. */
export async function completeUpload(registry: LocalRegistry, repo: RepositoryRef, name: string, id: string, req: Request, res: Response): Promise<void> {
  const digest = req.query.digest;
  if (typeof digest !== 'string') {
    req.resume();
    throw new LongshoreError('LS_DIGEST_INVALID', 'completing an upload needs ?digest=<digest>');
  }
  const expected = parseDigest(digest);
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  // A last chunk sent with the PUT is checked for order like a PATCH: out of order is 416, not a wrong digest.
  const range = hasBody ? chunkRange(req.headers['content-range']) : undefined;
  try {
    await registry.completeUpload(repo, id, expected, hasBody ? req : undefined, contentLength(req), range);
  } catch (err) {
    refusedChunk(err, registry, repo, res, name, id);
    throw err;
  }
  if (!hasBody) req.resume();
  blobCreated(res, name, expected);
}

export function uploadStatus(registry: LocalRegistry, repo: RepositoryRef, name: string, id: string, res: Response): void {
  const session = registry.session(repo, id);
  uploadHeaders(res, name, id, session.offset);
  res.status(204).end();
}

export async function cancelUpload(registry: LocalRegistry, repo: RepositoryRef, id: string, res: Response): Promise<void> {
  await registry.cancelUpload(repo, id);
  res.status(204).end();
}

/** PUT /v2/<name>/manifests/<reference> */
export async function putManifest(registry: LocalRegistry, repo: RepositoryRef, name: string, rawReference: string, maxSize: number, req: Request, res: Response): Promise<void> {
  const reference = parseReference(rawReference);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxSize) {
    req.resume();
    throw new LongshoreError('LS_MANIFEST_TOO_LARGE', `manifest is ${declared} bytes; the limit is ${maxSize}`, { size: declared, limit: maxSize });
  }
  // A client that goes away mid-body is not a manifest that is too large: that error propagates as is.
  const body = await readLimited(req, maxSize, (limit) => new LongshoreError('LS_MANIFEST_TOO_LARGE', `manifest is larger than the ${limit}-byte limit`, { limit }));
  const pushed = await registry.putManifest(repo, reference, req.headers['content-type'], body);
  (res.locals as RequestLocals).cache = undefined;
  res.setHeader('location', `/v2/${name}/manifests/${pushed.digest}`);
  res.setHeader('docker-content-digest', pushed.digest);
  if (pushed.subject) res.setHeader('oci-subject', pushed.subject);
  res.setHeader('content-length', '0');
  res.status(201).end();
}

export async function deleteManifest(registry: LocalRegistry, repo: RepositoryRef, rawReference: string, res: Response): Promise<void> {
  await registry.deleteManifest(repo, parseReference(rawReference));
  res.status(202).end();
}

export async function deleteBlob(registry: LocalRegistry, repo: RepositoryRef, rawDigest: string, res: Response): Promise<void> {
  await registry.deleteBlob(repo, parseDigest(rawDigest));
  res.status(202).end();
}

/** GET /v2/_catalog[?n=&last=]: the local repositories. */
export function catalog(registry: LocalRegistry, req: Request, res: Response): void {
  const n = typeof req.query.n === 'string' && /^\d{1,6}$/.test(req.query.n) ? Number(req.query.n) : undefined;
  if (req.query.n !== undefined && n === undefined) throw new LongshoreError('LS_PAGINATION_INVALID', 'n must be a non-negative integer');
  const last = typeof req.query.last === 'string' ? req.query.last : undefined;
  const page = registry.repositories({ ...(n !== undefined ? { n } : {}), ...(last !== undefined ? { last } : {}) });
  if (page.next) res.setHeader('link', `</v2/_catalog?${page.next}>; rel="next"`);
  res.status(200).json({ repositories: page.repositories });
}
