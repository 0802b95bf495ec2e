// GET /v2/<name>/referrers/<digest>[?artifactType=] (OCI distribution-spec 1.1 "Listing Referrers"):
// an OCI image index of the manifests whose subject is <digest>, for local and proxied repositories alike.
import type { Request, Response } from 'express';
import { MediaType } from '../../registry/media-types.js';
import { parseDigest } from '../../registry/reference.js';
import type { RepositoryRef } from '../../registry/routing.js';
import type { Registry } from '../../registry/types.js';
import type { RequestLocals } from '../middleware/request-context.js';

export async function listReferrers(registry: Registry, repo: RepositoryRef, rawDigest: string, req: Request, res: Response): Promise<void> {
  const digest = parseDigest(rawDigest);
  const artifactType = typeof req.query.artifactType === 'string' ? req.query.artifactType : undefined;
  const locals = res.locals as RequestLocals;
  const answer = await registry.referrers(repo, digest, artifactType, locals);
  locals.cache = answer.outcome;
  if (answer.filtered) res.setHeader('oci-filters-applied', 'artifactType');
  res.setHeader('content-type', MediaType.OciIndex);
  res.status(200).end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: answer.manifests }));
}
