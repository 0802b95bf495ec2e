// The OCI image layout inside a bundle (image-spec image-layout.md): `oci-layout`, `index.json` naming
// each image by its full reference, `blobs/<algorithm>/<encoded>`. Bundles of this project also carry
// `longshore-bundle.json`: what the bundle holds and, for an incremental one (`export --since`), which
// blobs it left out because earlier bundles carried them.
import type { Digest } from '../../registry/reference.js';

export const OCI_LAYOUT = 'oci-layout';
export const INDEX_JSON = 'index.json';
export const BUNDLE_JSON = 'longshore-bundle.json';
export const REF_NAME = 'org.opencontainers.image.ref.name';
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
