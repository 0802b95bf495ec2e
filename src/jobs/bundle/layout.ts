// The OCI image layout inside a bundle (image-spec image-layout.md): `oci-layout`, `index.json` naming
// each image by its full reference, `blobs/<algorithm>/<encoded>`. Bundles of this project also carry
// `longshore-bundle.json`: what the bundle holds and, for an incremental one (`export --since`), which
// blobs it left out because earlier bundles carried them.
//
// Referrers (`export --with-referrers`). The released image-spec (1.1) says nothing of referrers in a
// layout; this follows the proposal of image-spec PR #1171 ("Support referrers responses in the Image
// Layout"): each subject's referrers response (an OCI index) is a blob, listed in index.json as an OCI
// index with the annotation `org.opencontainers.image.referrer.subject` naming the subject, and no
// `org.opencontainers.image.ref.name`, so tools that look images up by name (skopeo, podman:
// containers/image matches only entries with that annotation) never see it. Our entry also names the
// repository the list belongs to (REFERRERS_REPOSITORY): referrers are per repository in a registry,
// and one subject may be signed differently under two names. Referrer tags (cosign's
// `sha256-<hex>.sig`, the tag schema's `sha256-<hex>`) are listed as images, by their full reference.
import type { Digest } from '../../registry/reference.js';

export const OCI_LAYOUT = 'oci-layout';
export const INDEX_JSON = 'index.json';
export const BUNDLE_JSON = 'longshore-bundle.json';
export const REF_NAME = 'org.opencontainers.image.ref.name';
/** On a referrers-response entry of index.json: the subject's digest (image-spec PR #1171). */
export const REFERRER_SUBJECT = 'org.opencontainers.image.referrer.subject';
/** On a referrers-response entry: the repository whose list it is, "docker.io/library/node". */
export const REFERRERS_REPOSITORY = 'io.longshore.referrers.repository';
/** containerd's `ctr import` names images by this annotation. */
export const CONTAINERD_NAME = 'io.containerd.image.name';
export const LAYOUT_BODY = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));

export interface BundleInfo {
  longshoreBundle: 1;
  created: string;
  images: string[];
  platforms: readonly string[] | 'all';
  /** Blobs this bundle leaves out: earlier bundles carried them (or left them out in turn). */
  omitted: Array<{ digest: string; size: number }>;
  /** Exported with --with-referrers: referrers lists, referrer manifests and referrer tags carried. */
  referrers?: { lists: number; manifests: number; tags: number };
}

/** "blobs/sha256/<hex>": the algorithm is the digest's own, never assumed. */
export function blobPath(digest: string): string {
  const colon = digest.indexOf(':');
  return `blobs/${digest.slice(0, colon)}/${digest.slice(colon + 1)}`;
}

/** The digest a blob path names, or undefined for other paths. Validated by the caller. */
export function digestOfPath(name: string): string | undefined {
  const match = /^blobs\/([a-z0-9]+(?:[.+_-][a-z0-9]+)*)\/([a-zA-Z0-9=_-]+)$/.exec(name);
  return match ? `${match[1]}:${match[2]}` : undefined;
}

export type BlobDigest = Digest;
