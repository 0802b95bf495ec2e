// GET /v2/<name>/tags/list[?n=&last=] (distribution-spec "Listing Tags"), with the Link header of the
// next page pointing back at this mirror under the name the client used.
import type { Request, Response } from 'express';
import { LongshoreError } from '../../errors.js';
import type { RepositoryRef } from '../../registry/routing.js';
import type { Registry, TagListQuery } from '../../registry/types.js';
import type { RequestLocals } from '../middleware/request-context.js';
import { nsOf } from '../registry-target.js';

export async function listTags(registry: Registry, repo: RepositoryRef, clientName: string, req: Request, res: Response): Promise<void> {
  const query: TagListQuery = {};
  const n = req.query.n;
  if (n !== undefined) {
    if (typeof n !== 'string' || !/^\d{1,6}$/.test(n)) throw new LongshoreError('LS_PAGINATION_INVALID', 'n must be a non-negative integer', { n: String(n).slice(0, 20) });
    query.n = Number(n);
  }
  if (typeof req.query.last === 'string') query.last = req.query.last;
  const locals = res.locals as RequestLocals;
  const answer = await registry.tags(repo, query, locals);
  locals.cache = answer.outcome;
  if (answer.next !== undefined) {
    const params = new URLSearchParams(answer.next);
    const ns = nsOf(req.url);
    if (ns !== undefined) params.set('ns', ns);
    res.setHeader('link', `</v2/${clientName}/tags/list?${params.toString()}>; rel="next"`);
  }
  res.status(200).json({ name: answer.name, tags: answer.tags });
}
