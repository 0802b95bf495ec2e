// Reads go to the local registry for local repositories and to the pull-through cache for the rest;
// handlers see one Registry and never ask which.
import type { LocalRegistry } from './local-registry.js';
import type { AcceptSet } from './media-types.js';
import type { Digest, Reference } from './reference.js';
import { LOCAL, type RepositoryRef } from './routing.js';
import type { BlobHandle, BlobInfo, ManifestAnswer, ReferrersAnswer, Registry, RequestContext, TagListAnswer, TagListQuery } from './types.js';

export class RoutedRegistry implements Registry {
  constructor(private readonly local: LocalRegistry, private readonly proxy: Registry) {}

  private pick(repo: RepositoryRef): Registry {
    return repo.upstream === LOCAL ? this.local : this.proxy;
  }

  manifest(repo: RepositoryRef, reference: Reference, accept: AcceptSet, method: 'GET' | 'HEAD', ctx: RequestContext): Promise<ManifestAnswer> {
    return this.pick(repo).manifest(repo, reference, accept, method, ctx);
  }

  manifestHit(repo: RepositoryRef, reference: Reference, accept: AcceptSet, method: 'GET' | 'HEAD'): ManifestAnswer | undefined {
    return this.pick(repo).manifestHit?.(repo, reference, accept, method);
  }

  statBlob(repo: RepositoryRef, digest: Digest, ctx: RequestContext): Promise<BlobInfo> {
    return this.pick(repo).statBlob(repo, digest, ctx);
  }

  openBlob(repo: RepositoryRef, digest: Digest, ctx: RequestContext): Promise<BlobHandle> {
    return this.pick(repo).openBlob(repo, digest, ctx);
  }

  tags(repo: RepositoryRef, query: TagListQuery, ctx: RequestContext): Promise<TagListAnswer> {
    return this.pick(repo).tags(repo, query, ctx);
  }

  referrers(repo: RepositoryRef, digest: Digest, artifactType: string | undefined, ctx: RequestContext): Promise<ReferrersAnswer> {
    return this.pick(repo).referrers(repo, digest, artifactType, ctx);
  }
}
