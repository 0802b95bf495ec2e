// Image references as operators type them: `[REGISTRY/]NAME(:TAG|@DIGEST)` ("alpine:3.19",
// "docker.io/library/node:20", "ghcr.io/o/i@<digest>"). The registry part is a configured upstream (its
// Docker Hub aliases included); without one, the name belongs to `defaultUpstream`, as for dockerd.
import { LongshoreError } from '../errors.js';
import { parseDigest, type Reference } from '../registry/reference.js';
import { LOCAL, type RepositoryRef, type UpstreamRouter } from '../registry/routing.js';

export interface ImageRef {
  repo: RepositoryRef;
  reference: Reference;
  /** The full reference: "docker.io/library/node:20", "ghcr.io/o/i@<digest>". Bundles name images by it. */
  full: string;
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function parseImageRef(text: string, router: UpstreamRouter): ImageRef {
  const trimmed = text.trim();
  let path = trimmed;
  let reference: Reference | undefined;
  const at = trimmed.indexOf('@');
  if (at >= 0) {
    path = trimmed.slice(0, at);
    reference = { kind: 'digest', digest: parseDigest(trimmed.slice(at + 1)) };
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon > trimmed.lastIndexOf('/')) {
      path = trimmed.slice(0, colon);
      const tag = trimmed.slice(colon + 1);
      if (!TAG.test(tag)) throw invalid(text, `invalid tag "${tag.slice(0, 130)}"`);
      reference = { kind: 'tag', tag };
    }
  }
  if (!reference) throw invalid(text, 'name a tag (":20") or a digest ("@<algorithm>:<hex>")');
  const repo = router.route(path, undefined);
  if (repo.upstream === LOCAL) throw invalid(text, 'names a local (pushed) repository, which is not cached content');
  const full = `${repo.upstream}/${repo.name}${reference.kind === 'tag' ? `:${reference.tag}` : `@${reference.digest}`}`;
  return { repo, reference, full };
}

/** One REF a line; blank lines and "#" comments are skipped. */
export function refsFromList(text: string): string[] {
  return text.split('\n').map((line) => line.replace(/#.*$/, '').trim()).filter((line) => line !== '');
}

function invalid(text: string, why: string): LongshoreError {
  return new LongshoreError('LS_NAME_INVALID', `image reference "${text.slice(0, 300)}": ${why}`, { reference: text.slice(0, 300) });
}
