// Manifest media types and Accept negotiation.
// The mirror asks the upstream with the client's own Accept list; a cached tag is answered locally only
// for a client whose Accept list selects the same answer (see acceptKey).

import { isDigest } from '../digest.js';
import type { ReferrerDescriptor } from './types.js';

export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OctetStream: 'application/octet-stream',
} as const;

/** Manifest types the mirror knows how to read references from, and asks for when the client gave no list. */
/** Manifest types that list other manifests (multi-platform images). */
export const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.OciIndex, MediaType.DockerManifestList]);

export const MANIFEST_TYPES: readonly string[] = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
];


/**
 * What a client's Accept header lets it receive. A client that sends no Accept header gets what a
 * registry serves such a client by default: a single-image manifest (distribution only hands out
 * lists and indexes to clients that ask for them).
 */
export class AcceptSet {
  /** Parsed Accept headers: clients send a handful of distinct lists, and every manifest request parses one. */
  private static readonly parsed = new Map<string, AcceptSet>();
  private static readonly MAX_PARSED = 256;
  /** See key. */
  private readonly acceptKey: string;

  private constructor(
    private readonly types: ReadonlySet<string>,
    private readonly wildcard: boolean,
    /** Accept values as the client sent them (minus parameters), to forward upstream. */
    readonly forwarded: readonly string[],
  ) {
    this.acceptKey = wildcard ? '*' : MANIFEST_TYPES.filter((t) => types.has(t)).sort().join(',') || '-';
  }

  static parse(header: string | readonly string[] | undefined): AcceptSet {
    const raw = Array.isArray(header) ? header.join(',') : (header as string | undefined) ?? '';
    const known = AcceptSet.parsed.get(raw);
    if (known) return known;
    const parsed = AcceptSet.fromText(raw);
    // A client sending ever new lists cannot grow this: past the bound, start over.
    if (AcceptSet.parsed.size >= AcceptSet.MAX_PARSED) AcceptSet.parsed.clear();
    AcceptSet.parsed.set(raw, parsed);
    return parsed;
  }

  private static fromText(raw: string): AcceptSet {
    const types = new Set<string>();
    let wildcard = false;
    for (const part of raw.split(',')) {
      const type = part.split(';', 1)[0]!.trim().toLowerCase();
      if (type === '') continue;
      if (type === '*/*' || type === 'application/*') wildcard = true;
      types.add(type);
    }
    if (types.size === 0) {
      return new AcceptSet(new Set([MediaType.DockerManifest, MediaType.OciManifest]), false, []);
    }
    return new AcceptSet(types, wildcard, [...types]);
  }

  accepts(mediaType: string): boolean {
    return this.wildcard || this.types.has(mediaType);
  }

  /**
   * Identifies the upstream's answer to this Accept list: the known manifest types it names, sorted.
   * Two clients with the same key get the same manifest for a tag, so a cached tag is keyed by it.
   */
  get key(): string {
    return this.acceptKey;
  }

  /** The Accept list sent upstream: the client's own, or the known manifest types when it sent none. */
  upstreamHeader(): string {
    return (this.forwarded.length > 0 ? this.forwarded : [MediaType.DockerManifest, MediaType.OciManifest]).join(', ');
  }
}

/** Every digest a manifest or index names: config, layers, subject, and per-platform manifests. */
export interface ManifestReferences {
  blobs: string[];
  manifests: string[];
  /** The size each referenced blob's descriptor declares, where it declares a valid one. */
  sizes?: Record<string, number>;
  /**
   * Blobs named only by non-distributable layers that say where to download them (`urls`): the OCI
   * image-spec's non-distributable layers and Docker's foreign layers. Also in `blobs`. A registry
   * need not hold them (distribution accepts such a manifest without them), so a push may omit them.
   */
  external?: string[];
}

/** Layer types that registries need not hold when the descriptor gives `urls` (image-spec "Non-distributable layers"). */
const NON_DISTRIBUTABLE_LAYERS: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

/** A descriptor of a non-distributable layer with at least one http(s) URL and none of another kind (distribution's rule). */
function isExternalLayer(d: unknown): boolean {
  if (typeof d !== 'object' || d === null) return false;
  const { mediaType, urls } = d as { mediaType?: unknown; urls?: unknown };
  if (typeof mediaType !== 'string' || !NON_DISTRIBUTABLE_LAYERS.has(mediaType)) return false;
  if (!Array.isArray(urls) || urls.length === 0) return false;
  return urls.every((u) => {
    if (typeof u !== 'string') return false;
    try {
      const url = new URL(u);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hash === '' && !u.includes('#');
    } catch {
      return false;
    }
  });
}

/**
 * Reads the references out of a manifest body. Bodies are JSON by every media type listed above; a body
 * that is not JSON (or an unknown type) names nothing, and is still served byte for byte.
 */
export function manifestReferences(body: Buffer): ManifestReferences {
  const refs: ManifestReferences = { blobs: [], manifests: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return refs;
  }
  if (typeof doc !== 'object' || doc === null) return refs;
  const m = doc as { config?: unknown; layers?: unknown; manifests?: unknown; subject?: unknown; blobs?: unknown };
  const digestOf = (d: unknown): string | undefined =>
    typeof d === 'object' && d !== null && typeof (d as { digest?: unknown }).digest === 'string'
      ? (d as { digest: string }).digest
      : undefined;
  const sizes: Record<string, number> = {};
  const push = (list: string[], d: unknown) => {
    const digest = digestOf(d);
    if (digest === undefined || list.includes(digest)) return;
    list.push(digest);
    const size = (d as { size?: unknown }).size;
    if (list === refs.blobs && typeof size === 'number' && Number.isSafeInteger(size) && size >= 0) sizes[digest] = size;
  };
  // A digest is external only when every descriptor naming it is an external layer.
  const external = new Set<string>();
  const required = new Set<string>();
  const note = (d: unknown, mayBeExternal: boolean) => {
    const digest = digestOf(d);
    if (digest !== undefined) (mayBeExternal && isExternalLayer(d) ? external : required).add(digest);
  };
  push(refs.blobs, m.config);
  note(m.config, false);
  if (Array.isArray(m.layers)) {
    for (const l of m.layers) {
      push(refs.blobs, l);
      note(l, true);
    }
  }
  if (Array.isArray(m.blobs)) {
    for (const l of m.blobs) {
      push(refs.blobs, l);
      note(l, false);
    }
  }
  if (Array.isArray(m.manifests)) for (const l of m.manifests) push(refs.manifests, l);
  push(refs.manifests, m.subject);
  if (Object.keys(sizes).length > 0) refs.sizes = sizes;
  const onlyExternal = [...external].filter((d) => !required.has(d));
  if (onlyExternal.length > 0) refs.external = onlyExternal;
  return refs;
}

/** The mediaType field a manifest declares about itself, if any. */
export function declaredMediaType(body: Buffer): string | undefined {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { mediaType?: unknown };
    return typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  } catch {
    return undefined;
  }
}

/** A descriptor fit for a referrers list: a media type, a supported digest and a size (other fields kept as they are). */
export function isListedDescriptor(d: unknown): d is ReferrerDescriptor {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return false;
  const { mediaType, digest, size } = d as { mediaType?: unknown; digest?: unknown; size?: unknown };
  return typeof mediaType === 'string' && typeof digest === 'string' && isDigest(digest) && typeof size === 'number' && Number.isSafeInteger(size) && size >= 0;
}
