// The interface HTTP handlers use. Implementations decide where bytes come from (the local store, an
// upstream through the cache); handlers never ask whether content was cached — they only report the
// outcome each answer carries, for logs and metrics.
import type { Readable } from 'node:stream';
import type { ByteRange } from '../storage/content-store.js';
import type { AcceptSet } from './media-types.js';
import type { Digest, Reference } from './reference.js';
import type { RepositoryRef } from './routing.js';

/**
 * How an answer was produced: from the local store (hit), by a fresh upstream fetch (miss), by joining
 * a fetch already under way (coalesced), after the upstream confirmed a cached tag (revalidated), from
 * cache because the upstream failed (stale), or straight from the upstream without caching (upstream).
 */
export type CacheOutcome = 'hit' | 'miss' | 'coalesced' | 'revalidated' | 'stale' | 'upstream';

export interface ManifestAnswer {
  digest: Digest;
  mediaType: string;
  size: number;
  /** Absent for HEAD. */
  body?: Buffer;
  outcome: CacheOutcome;
}

export interface BlobInfo {
  digest: Digest;
  /** Undefined only while streaming from an upstream that sent no Content-Length. */
  size: number | undefined;
  outcome: CacheOutcome;
}

/** An open blob. Exactly one of stream() or release() must be called. */
export interface BlobHandle extends BlobInfo {
  stream(range?: ByteRange): Readable;
  release(): void;
  /** False when the bytes come straight from an upstream and only the whole blob can be served. */
  ranges?: boolean;
  /**
   * Set for a download into the cache (a miss, or one joined): waits until the blob is stored, with the
   * bytes as they arrive, without streaming them; throws if the download fails. See BlobFill.stored.
   */
  stored?: (onBytes?: (count: number) => void) => Promise<number>;
}

export interface TagListAnswer {
  name: string;
  tags: string[];
  /** Query string (without "?") of the next page, when there is one. */
  next?: string;
  outcome: CacheOutcome;
}

export interface TagListQuery {
  n?: number;
  last?: string;
}

/** A descriptor in a referrers list (an OCI image index's `manifests` entry). */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: unknown;
  [field: string]: unknown;
}

export interface ReferrersAnswer {
  /** The manifests whose subject is the digest asked about, filtered when `filtered`. */
  manifests: ReferrerDescriptor[];
  /** True when the list was filtered by the artifactType asked for (OCI-Filters-Applied). */
  filtered: boolean;
  outcome: CacheOutcome;
}

export interface RequestContext {
  requestId: string;
  /** The client's HTTP Basic credentials, if it sent any: forwarded only to pass-through upstreams. */
  credentials?: { username: string; password: string } | undefined;
  /**
   * Set by the operator's own jobs (warm, sync, export; jobs/warm.ts), never from a request: on a
   * pass-through upstream they act with the mirror's configured account (anonymous if it has none), as
   * on any other upstream, since no client is there to lend credentials. What they cache is still served
   * to a client only after the upstream accepted that client's credentials.
   */
  operator?: boolean;
}

export interface Registry {
  /**
   * A manifest answered from memory alone, synchronously (no I/O, no waiting), when the registry can;
   * undefined means: ask manifest(). Lets a warm pull be answered within the request's own event.
   */
  manifestHit?(repo: RepositoryRef, reference: Reference, accept: AcceptSet, method: 'GET' | 'HEAD'): ManifestAnswer | undefined;
  manifest(repo: RepositoryRef, reference: Reference, accept: AcceptSet, method: 'GET' | 'HEAD', ctx: RequestContext): Promise<ManifestAnswer>;
  statBlob(repo: RepositoryRef, digest: Digest, ctx: RequestContext): Promise<BlobInfo>;
  openBlob(repo: RepositoryRef, digest: Digest, ctx: RequestContext): Promise<BlobHandle>;
  tags(repo: RepositoryRef, query: TagListQuery, ctx: RequestContext): Promise<TagListAnswer>;
  /** OCI 1.1 referrers of `digest` in the repository, optionally only those of one artifactType. */
  referrers(repo: RepositoryRef, digest: Digest, artifactType: string | undefined, ctx: RequestContext): Promise<ReferrersAnswer>;
}
