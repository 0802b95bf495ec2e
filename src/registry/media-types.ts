// Manifest media types and Accept negotiation.
// The mirror asks the upstream with the client's own Accept list; a cached tag is answered locally only
// for a client whose Accept list selects the same answer (see acceptKey).

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
  push(refs.blobs, m.config);
  if (Array.isArray(m.layers)) for (const l of m.layers) push(refs.blobs, l);
  if (Array.isArray(m.blobs)) for (const l of m.blobs) push(refs.blobs, l);
  if (Array.isArray(m.manifests)) for (const l of m.manifests) push(refs.manifests, l);
  push(refs.manifests, m.subject);
  if (Object.keys(sizes).length > 0) refs.sizes = sizes;
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
