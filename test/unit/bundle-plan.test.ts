// planBundle with referrers (export --with-referrers): what index.json lists and which blobs are written.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { planBundle } from '../../src/jobs/bundle/export.js';
import type { Digest } from '../../src/registry/reference.js';
import type { StoredManifestRef, WarmedImage } from '../../src/jobs/warm.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

function manifest(doc: object, mediaType = OCI_MANIFEST): StoredManifestRef {
  const body = Buffer.from(JSON.stringify(doc));
  return { digest: `sha256:${createHash('sha256').update(body).digest('hex')}` as Digest, mediaType, size: body.length, body };
}

function image(full: string, name: string, root: StoredManifestRef, referrers?: WarmedImage['referrers']): WarmedImage {
  const tag = full.slice(full.lastIndexOf(':') + 1);
  return {
    ref: { repo: { upstream: 'docker.io', name }, reference: { kind: 'tag', tag }, full },
    root, manifests: [root], blobs: [], platforms: [], fetchedBytes: 0, cachedBytes: 0,
    ...(referrers ? { referrers } : {}),
  };
}

interface Entry { digest: string; mediaType: string; annotations: Record<string, string> }

function indexOf(plan: ReturnType<typeof planBundle>): Entry[] {
  const entry = plan.entries.find((e) => e.name === 'index.json')!;
  assert.equal(entry.source.kind, 'buffer');
  return (JSON.parse((entry.source as { body: Buffer }).body.toString()) as { manifests: Entry[] }).manifests;
}

describe('planBundle with referrers', () => {
  const root = manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: 'sha256:' + 'c'.repeat(64), size: 2 }, layers: [] });
  const signature = manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/sig', subject: { digest: root.digest }, layers: [] });
  const list = manifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: signature.digest, size: signature.size }] }, OCI_INDEX);
  const tag = `sha256-${root.digest.slice(7)}.sig`;
  const referrers = { lists: [{ subject: root.digest, list }], tags: [{ tag, manifest: signature }], manifests: [signature], blobs: [] };

  it('lists a subject\'s referrers once per repository, never by ref.name, and each referrer tag once by its full name', () => {
    // The same image under two tags of one repository, and under a second repository.
    const plan = planBundle([
      image('docker.io/library/a:1', 'library/a', root, referrers),
      image('docker.io/library/a:latest', 'library/a', root, referrers),
      image('docker.io/library/b:1', 'library/b', root, referrers),
    ], ['linux/amd64'], new Set());
    const entries = indexOf(plan);
    const lists = entries.filter((e) => e.annotations['org.opencontainers.image.referrer.subject'] !== undefined);
    assert.deepEqual(lists.map((e) => [e.annotations['io.longshore.referrers.repository'], e.digest, e.mediaType]), [
      ['docker.io/library/a', list.digest, OCI_INDEX],
      ['docker.io/library/b', list.digest, OCI_INDEX],
    ]);
    assert.ok(lists.every((e) => e.annotations['org.opencontainers.image.ref.name'] === undefined));
    const named = entries.map((e) => e.annotations['org.opencontainers.image.ref.name']).filter((n) => n !== undefined);
    assert.deepEqual(named, ['docker.io/library/a:1', 'docker.io/library/a:latest', 'docker.io/library/b:1', `docker.io/library/a:${tag}`, `docker.io/library/b:${tag}`]);
    const tagEntry = entries.find((e) => e.annotations['org.opencontainers.image.ref.name'] === `docker.io/library/a:${tag}`)!;
    assert.equal(tagEntry.annotations['io.containerd.image.name'], undefined, 'ctr import must not take a signature for an image');
    // Each blob once: the root, the signature, the list.
    assert.deepEqual(plan.entries.filter((e) => e.name.startsWith('blobs/')).map((e) => e.name).sort(),
      [root.digest, signature.digest, list.digest].map((d) => `blobs/sha256/${d.slice(7)}`).sort());
  });

  it('leaves out referrers an earlier bundle carried (--since), still listing them in index.json', () => {
    const plan = planBundle([image('docker.io/library/a:1', 'library/a', root, referrers)], ['linux/amd64'], new Set([signature.digest, list.digest]));
    assert.deepEqual(plan.omitted.map((o) => o.digest).sort(), [signature.digest, list.digest].sort());
    assert.equal(plan.blobs, 1);
    assert.equal(indexOf(plan).filter((e) => e.digest === list.digest).length, 1);
  });

  it('writes no referrer entries for images warmed without referrers', () => {
    const plan = planBundle([image('docker.io/library/a:1', 'library/a', root)], ['linux/amd64'], new Set());
    assert.deepEqual(indexOf(plan).map((e) => e.digest), [root.digest]);
  });

  it('does not list a referrer tag twice when it was also asked for as an image', () => {
    const plan = planBundle([image('docker.io/library/a:1', 'library/a', root, referrers), image(`docker.io/library/a:${tag}`, 'library/a', signature)], ['linux/amd64'], new Set());
    assert.equal(indexOf(plan).filter((e) => e.annotations['org.opencontainers.image.ref.name'] === `docker.io/library/a:${tag}`).length, 1);
  });
});
