// Writes warmed images as an OCI image layout tarball, as a stream: headers around blobs streamed from
// the store, so memory stays flat in the bundle's size. Its exact length is known before the first byte
// (every size is), which lets an HTTP response carry Content-Length and a reader detect a cut.
import type { Readable } from 'node:stream';
import { LongshoreError } from '../../errors.js';
import { MediaType } from '../../registry/media-types.js';
import type { Digest } from '../../registry/reference.js';
import type { PlatformChoice, WarmedImage } from '../warm.js';
import { TAR_END, tarEntrySize, tarHeader, tarPadding } from './tar.js';
import { BUNDLE_JSON, CONTAINERD_NAME, INDEX_JSON, LAYOUT_BODY, OCI_LAYOUT, REFERRERS_REPOSITORY, REFERRER_SUBJECT, REF_NAME, blobPath, type BundleInfo } from './layout.js';

type Source = { kind: 'buffer'; body: Buffer } | { kind: 'blob'; image: WarmedImage; digest: Digest };

export interface BundlePlan {
  entries: Array<{ name: string; size: number; source: Source }>;
  /** Bytes of the whole archive. */
  size: number;
  /** Blobs written, and blobs left out because earlier bundles carried them. */
  blobs: number;
  omitted: BundleInfo['omitted'];
}

/** Opens a blob of an image for reading; the stream must yield exactly `size` bytes. */
export type OpenBlob = (image: WarmedImage, digest: Digest) => Promise<Readable>;

export function planBundle(images: readonly WarmedImage[], platforms: PlatformChoice, exclude: ReadonlySet<string>): BundlePlan {
  const entries: BundlePlan['entries'] = [{ name: OCI_LAYOUT, size: LAYOUT_BODY.length, source: { kind: 'buffer', body: LAYOUT_BODY } }];
  const seen = new Set<string>();
  const omitted: BundleInfo['omitted'] = [];
  let blobs = 0;
  const add = (digest: Digest, size: number, source: Source) => {
    if (seen.has(digest)) return;
    seen.add(digest);
    if (exclude.has(digest)) {
      omitted.push({ digest, size });
      return;
    }
    blobs++;
    entries.push({ name: blobPath(digest), size, source });
  };
  // Referrer tags and referrers lists after the images, each once (two images may share a subject).
  const tagEntries = new Map<string, object>();
  const listEntries = new Map<string, object>();
  const referrerManifests = new Set<string>();
  for (const image of images) {
    for (const blob of image.blobs) add(blob.digest, blob.size, { kind: 'blob', image, digest: blob.digest });
    for (const manifest of image.manifests) add(manifest.digest, manifest.size, { kind: 'buffer', body: manifest.body });
    const referrers = image.referrers;
    if (!referrers) continue;
    const repository = `${image.ref.repo.upstream}/${image.ref.repo.name}`;
    for (const blob of referrers.blobs) add(blob.digest, blob.size, { kind: 'blob', image, digest: blob.digest });
    for (const manifest of referrers.manifests) {
      referrerManifests.add(manifest.digest);
      add(manifest.digest, manifest.size, { kind: 'buffer', body: manifest.body });
    }
    for (const { tag, manifest } of referrers.tags) {
      // Not named for containerd: `ctr import` would take a signature for an image to unpack.
      tagEntries.set(`${repository}:${tag}`, { mediaType: layoutMediaType(manifest.mediaType), digest: manifest.digest, size: manifest.size, annotations: { [REF_NAME]: `${repository}:${tag}` } });
    }
    for (const { subject, list } of referrers.lists) {
      add(list.digest, list.size, { kind: 'buffer', body: list.body });
      listEntries.set(`${repository}@${subject}`, { mediaType: list.mediaType, digest: list.digest, size: list.size, annotations: { [REFERRER_SUBJECT]: subject, [REFERRERS_REPOSITORY]: repository } });
    }
  }
  const withReferrers = images.some((i) => i.referrers);
  const info: BundleInfo = {
    longshoreBundle: 1, created: new Date().toISOString(), images: images.map((i) => i.ref.full), platforms, omitted,
    ...(withReferrers ? { referrers: { lists: listEntries.size, manifests: referrerManifests.size, tags: tagEntries.size } } : {}),
  };
  const infoBody = Buffer.from(`${JSON.stringify(info)}\n`);
  entries.push({ name: BUNDLE_JSON, size: infoBody.length, source: { kind: 'buffer', body: infoBody } });
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      ...images.map((image) => ({
        mediaType: layoutMediaType(image.root.mediaType),
        digest: image.root.digest,
        size: image.root.size,
        annotations: { [REF_NAME]: image.ref.full, [CONTAINERD_NAME]: image.ref.full },
      })),
      ...[...tagEntries].filter(([name]) => !images.some((i) => i.ref.full === name)).map(([, entry]) => entry),
      ...listEntries.values(),
    ],
  };
  // Last: an archive cut short has no index.json, so no reader takes it for a whole layout.
  const indexBody = Buffer.from(`${JSON.stringify(index)}\n`);
  entries.push({ name: INDEX_JSON, size: indexBody.length, source: { kind: 'buffer', body: indexBody } });
  const size = entries.reduce((sum, e) => sum + tarEntrySize(e.name, e.size), 0) + TAR_END.length;
  return { entries, size, blobs, omitted };
}

/**
 * The media type index.json gives an image. containers/image (skopeo, podman) looks up a name in an OCI
 * layout only among entries typed as OCI manifests or indexes, so a Docker manifest list or schema 2
 * manifest — structurally the same JSON — is listed under its OCI equivalent. Its bytes, digest and own
 * `mediaType` field are untouched (a mirror must serve the upstream's digests), and importers, this
 * one included, read the type from the manifest itself.
 */
export function layoutMediaType(mediaType: string): string {
  if (mediaType === MediaType.DockerManifestList) return MediaType.OciIndex;
  if (mediaType === MediaType.DockerManifest) return MediaType.OciManifest;
  return mediaType;
}

/** The archive's bytes, in order; a blob whose stream yields another length than planned fails it. */
export async function* bundleChunks(plan: BundlePlan, open: OpenBlob, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  for (const entry of plan.entries) {
    yield tarHeader(entry.name, entry.size);
    if (entry.source.kind === 'buffer') {
      yield entry.source.body;
      onBytes?.(entry.size);
    } else {
      const stream = await open(entry.source.image, entry.source.digest);
      let written = 0;
      try {
        for await (const chunk of stream) {
          const bytes = chunk as Buffer;
          written += bytes.length;
          if (written > entry.size) break;
          yield bytes;
          onBytes?.(bytes.length);
        }
      } finally {
        stream.destroy();
      }
      if (written !== entry.size) throw new LongshoreError('LS_CONTENT_MISMATCH', `blob ${entry.source.digest} changed size while being exported (${written} of ${entry.size} bytes)`);
    }
    const pad = tarPadding(entry.size);
    if (pad.length > 0) yield pad;
  }
  yield TAR_END;
}
