// GET/HEAD /v2/<name>/manifests/<reference>: the manifest bytes exactly as the upstream sent them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AcceptSet } from '../../registry/media-types.js';
import { isLongshoreError, LongshoreError } from '../../errors.js';
import { parseReference, type Reference } from '../../registry/reference.js';
import type { RepositoryRef } from '../../registry/routing.js';
import type { ManifestAnswer, Registry } from '../../registry/types.js';
import type { RequestLocals } from '../middleware/request-context.js';

/** A manifest request, parsed: what manifestHitNow and manifestFromRegistry answer. */
export interface ManifestRequest {
  repo: RepositoryRef;
  reference: Reference;
  accept: AcceptSet;
  method: 'GET' | 'HEAD';
  req: IncomingMessage;
  res: ServerResponse;
  locals: RequestLocals;
}

/** Parses the reference and Accept header; throws the OCI error a malformed reference earns. */
export function manifestRequest(repo: RepositoryRef, rawReference: string, req: IncomingMessage, res: ServerResponse, locals: RequestLocals): ManifestRequest {
  // What a pull asked for, for the dashboard's recent pulls (the request log records it at the end).
  locals.pull = { upstream: repo.upstream, repository: repo.name, reference: rawReference.slice(0, 256) };
  return { repo, reference: readReference(repo, rawReference), accept: AcceptSet.parse(req.headers.accept), method: req.method === 'HEAD' ? 'HEAD' : 'GET', req, res, locals };
}

/**
 * Answers a hit from memory within this event and returns true (the response has ended), or returns
 * false and leaves the response alone. The pull fast path (http/fast-path.ts) tries this first, so most
 * warm pulls cost no promise and no microtask.
 */
export function manifestHitNow(registry: Registry, request: ManifestRequest): boolean {
  const answer = registry.manifestHit?.(request.repo, request.reference, request.accept, request.method);
  if (!answer) return false;
  send(request, answer);
  return true;
}

/** Answers through the registry: the cache on disk, the upstream, or the error it throws. */
export async function manifestFromRegistry(registry: Registry, request: ManifestRequest): Promise<void> {
  send(request, await registry.manifest(request.repo, request.reference, request.accept, request.method, request.locals));
}

/** Works on plain Node objects: the router calls it through Express. */
export async function getManifest(registry: Registry, repo: RepositoryRef, rawReference: string, req: IncomingMessage, res: ServerResponse, locals: RequestLocals): Promise<void> {
  const request = manifestRequest(repo, rawReference, req, res, locals);
  if (!manifestHitNow(registry, request)) await manifestFromRegistry(registry, request);
}

function send({ req, res, locals, method }: ManifestRequest, answer: ManifestAnswer): void {
  locals.cache = answer.outcome;
  const etag = `"${answer.digest}"`;
  res.setHeader('docker-content-digest', answer.digest);
  res.setHeader('etag', etag);
  res.setHeader('content-type', answer.mediaType);
  if (req.headers['if-none-match'] !== undefined && matchesEtag(req.headers['if-none-match'], etag)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  res.setHeader('content-length', answer.size);
  res.statusCode = 200;
  if (method === 'HEAD' || !answer.body) {
    res.end();
    return;
  }
  res.end(answer.body);
}

/**
 * A reference that is no tag and no digest names no manifest: 404 MANIFEST_UNKNOWN, as distribution
 * answers (its route does not match such a reference) and as the conformance suites expect
 * ("GET nonexistent manifest should return 404" asks for ".INVALID_MANIFEST_NAME"). A well-formed digest
 * of an unsupported algorithm, or a malformed one, stays a 400: the client named content it cannot name.
 */
function readReference(repo: RepositoryRef, rawReference: string): Reference {
  try {
    return parseReference(rawReference);
  } catch (err) {
    if (!isLongshoreError(err, 'LS_TAG_INVALID')) throw err;
    const reference = rawReference.slice(0, 256);
    throw new LongshoreError('LS_MANIFEST_NOT_FOUND', `manifest ${repo.name}:${reference} not found (not a valid tag)`, { repository: repo.name, reference });
  }
}

/** If-None-Match: a list of entity tags or "*" (RFC 9110 §13.1.2; weak comparison). */
export function matchesEtag(header: string, etag: string): boolean {
  return header.split(',').some((candidate) => {
    const tag = candidate.trim().replace(/^W\//, '');
    return tag === '*' || tag === etag;
  });
}
