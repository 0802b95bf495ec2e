// Warming: fetching images into the cache before anyone pulls them, through the same ProxyRegistry path
// as a client's pull (registry/proxy.ts), so a warm and a live pull of one layer share one download and
// content lands linked to the repository that holds it. An index is kept whole; only the chosen
// platforms' manifests and their blobs are fetched.
import { LongshoreError, isLongshoreError } from '../errors.js';
import { AcceptSet, INDEX_TYPES, MANIFEST_TYPES, manifestReferences } from '../registry/media-types.js';
import type { ProxyRegistry } from '../registry/proxy.js';
import { referrersTagOf } from '../digest.js';
import { parseDigest, type Digest } from '../registry/reference.js';
import type { RepositoryRef } from '../registry/routing.js';
import type { RequestContext } from '../registry/types.js';
import type { ImageRef } from './image-ref.js';

/** A client that accepts every manifest type: indexes are fetched as indexes. */
export const ACCEPT_ALL = AcceptSet.parse(MANIFEST_TYPES.join(', '));
/** Indexes inside indexes are followed this deep at most. */
const MAX_DEPTH = 4;
/**
 * Tags that carry a subject's signatures and attestations where registries lack the referrers API,
 * appended to `<alg>-<hex>` (referrersTagOf): "" is the referrers tag schema's index (distribution-spec
 * "Referrers Tag Schema"); ".sig", ".att" and ".sbom" are cosign's tags.
 */
export const REFERRER_TAG_SUFFIXES = ['', '.sig', '.att', '.sbom'] as const;

/** "linux/amd64", "linux/arm/v7"; or every platform. */
export type PlatformChoice = readonly string[] | 'all';

export interface StoredManifestRef {
  digest: Digest;
  mediaType: string;
  size: number;
  body: Buffer;
}

export interface WarmedImage {
  ref: ImageRef;
  root: StoredManifestRef;
  /** Every manifest of the image that is cached (the root first). */
  manifests: StoredManifestRef[];
  /** Configs and layers of the chosen platforms, each once. */
  blobs: Array<{ digest: Digest; size: number }>;
  /** Platforms whose manifests were taken ("linux/amd64"); empty for a single-platform manifest. */
  platforms: string[];
  /** Bytes that came from the upstream for this image, and bytes that were cached already. */
  fetchedBytes: number;
  cachedBytes: number;
  /** With `withReferrers`: what refers to the image's manifests, fetched into the cache too. */
  referrers?: WarmedReferrers | undefined;
}

/**
 * The referrers of an image's root and chosen platform manifests, one level deep: the referrers of a
 * referrer (a signature of an SBOM) are not followed.
 */
export interface WarmedReferrers {
  /** Each subject's referrers list as this mirror stores it (an OCI index; empty lists included). */
  lists: Array<{ subject: Digest; list: StoredManifestRef }>;
  /** Referrer tags the upstream has (REFERRER_TAG_SUFFIXES), with the manifest each points to. */
  tags: Array<{ tag: string; manifest: StoredManifestRef }>;
  /** Referrer manifests (listed or tagged), and the children of those that are indexes, each once. */
  manifests: StoredManifestRef[];
  /** Their configs and layers, each once. */
  blobs: Array<{ digest: Digest; size: number }>;
}

export interface WarmOptions {
  platforms: PlatformChoice;
  /** Also fetch the referrers (signatures, attestations, SBOMs) of the image's manifests. */
  withReferrers?: boolean | undefined;
  /** Shared by every image of a job: blob downloads at once. */
  slots: Semaphore;
  signal?: AbortSignal | undefined;
  /** Called as blob bytes arrive (fetched) or are found cached, for progress. */
  onBytes?: ((bytes: number, fetched: boolean) => void) | undefined;
  /** Called once the image's plan is known: how many bytes it holds in all. */
  onPlan?: ((totalBytes: number) => void) | undefined;
}

export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly size: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export class Warmer {
  constructor(private readonly registry: ProxyRegistry, private readonly requestId: string) {}

  async warm(ref: ImageRef, options: WarmOptions): Promise<WarmedImage> {
    const ctx: RequestContext = { requestId: this.requestId, operator: true };
    const manifests: StoredManifestRef[] = [];
    const platforms: string[] = [];
    const blobs = new Map<Digest, number | undefined>();
    let fetchedBytes = 0;
    let cachedBytes = 0;

    const fetchManifest = async (reference: ImageRef['reference']): Promise<StoredManifestRef> => {
      const answer = await this.registry.manifest(ref.repo, reference, ACCEPT_ALL, 'GET', ctx);
      if (!answer.body) throw new LongshoreError('LS_INTERNAL', `no manifest body for ${ref.full}`);
      if (answer.outcome === 'hit') cachedBytes += answer.size;
      else fetchedBytes += answer.size;
      const stored = { digest: answer.digest, mediaType: answer.mediaType, size: answer.size, body: answer.body };
      manifests.push(stored);
      return stored;
    };

    const walk = async (manifest: StoredManifestRef, depth: number): Promise<void> => {
      options.signal?.throwIfAborted();
      if (INDEX_TYPES.has(manifest.mediaType) || isIndexBody(manifest.body)) {
        if (depth >= MAX_DEPTH) return;
        const chosen = chooseManifests(manifest.body, options.platforms);
        if (chosen.length === 0) {
          throw new LongshoreError('LS_MANIFEST_NOT_FOUND', `${ref.full} has no manifest for ${describeChoice(options.platforms)}`, { reference: ref.full });
        }
        for (const entry of chosen) {
          if (entry.platform && !platforms.includes(entry.platform)) platforms.push(entry.platform);
          await walk(await fetchManifest({ kind: 'digest', digest: entry.digest }), depth + 1);
        }
        return;
      }
      const refs = manifestReferences(manifest.body);
      for (const blob of refs.blobs) {
        const digest = parseDigest(blob);
        if (!blobs.has(digest)) blobs.set(digest, refs.sizes?.[blob]);
      }
    };

    const root = await fetchManifest(ref.reference);
    await walk(root, 0);
    const found = options.withReferrers ? await this.findReferrers(ref, manifests, ctx, options) : undefined;
    const referrerBlobs = new Map([...(found?.blobs ?? [])].filter(([digest]) => !blobs.has(digest)));
    if (found) {
      fetchedBytes += found.fetchedBytes;
      cachedBytes += found.cachedBytes;
    }
    options.onPlan?.([...blobs.values(), ...referrerBlobs.values()].reduce<number>((sum, size) => sum + (size ?? 0), 0));

    const sizes = new Map<Digest, number>();
    await Promise.all([...blobs.keys(), ...referrerBlobs.keys()].map((digest) => options.slots.run(async () => {
      options.signal?.throwIfAborted();
      const { size, fetched } = await this.warmBlob(ref.repo, digest, ctx, options);
      sizes.set(digest, size);
      if (fetched) fetchedBytes += size;
      else cachedBytes += size;
    })));
    return {
      ref,
      root,
      manifests,
      blobs: [...blobs.keys()].map((digest) => ({ digest, size: sizes.get(digest)! })),
      platforms,
      fetchedBytes,
      cachedBytes,
      ...(found ? {
        referrers: {
          lists: found.lists,
          tags: found.tags,
          manifests: found.manifests,
          blobs: [...found.blobs.keys()].map((digest) => ({ digest, size: sizes.get(digest)! })),
        },
      } : {}),
    };
  }

  /**
   * The referrers of each of `subjects` through the mirror's own referrers path (the upstream's API, or
   * its tag schema), every referrer manifest, and the referrer tags the upstream has. Manifests only:
   * the blobs they name are returned for the caller to fetch with the image's.
   */
  private async findReferrers(ref: ImageRef, subjects: readonly StoredManifestRef[], ctx: RequestContext, options: WarmOptions): Promise<{
    lists: WarmedReferrers['lists'];
    tags: WarmedReferrers['tags'];
    manifests: StoredManifestRef[];
    blobs: Map<Digest, number | undefined>;
    fetchedBytes: number;
    cachedBytes: number;
  }> {
    const out = { lists: [] as WarmedReferrers['lists'], tags: [] as WarmedReferrers['tags'], manifests: [] as StoredManifestRef[], blobs: new Map<Digest, number | undefined>(), fetchedBytes: 0, cachedBytes: 0 };
    const taken = new Map<Digest, StoredManifestRef>();
    const fetch = async (reference: ImageRef['reference']): Promise<StoredManifestRef> => {
      const known = reference.kind === 'digest' ? taken.get(reference.digest) : undefined;
      if (known) return known;
      const answer = await this.registry.manifest(ref.repo, reference, ACCEPT_ALL, 'GET', ctx);
      if (!answer.body) throw new LongshoreError('LS_INTERNAL', `no manifest body for a referrer of ${ref.full}`);
      const stored = { digest: answer.digest, mediaType: answer.mediaType, size: answer.size, body: answer.body };
      if (taken.has(stored.digest)) return taken.get(stored.digest)!;
      if (answer.outcome === 'hit') out.cachedBytes += answer.size;
      else out.fetchedBytes += answer.size;
      taken.set(stored.digest, stored);
      out.manifests.push(stored);
      await this.walkReferrer(stored, out.blobs, fetch);
      return stored;
    };
    for (const subject of subjects) {
      options.signal?.throwIfAborted();
      const list = await this.registry.referrersList(ref.repo, subject.digest, ctx);
      out.lists.push({ subject: subject.digest, list });
      for (const entry of chooseManifests(list.body, 'all')) await fetch({ kind: 'digest', digest: entry.digest });
      for (const suffix of REFERRER_TAG_SUFFIXES) {
        const tag = `${referrersTagOf(subject.digest)}${suffix}`;
        try {
          out.tags.push({ tag, manifest: await fetch({ kind: 'tag', tag }) });
        } catch (err) {
          if (!isLongshoreError(err, 'LS_MANIFEST_NOT_FOUND')) throw err;
        }
      }
    }
    return out;
  }

  /**
   * A referrer's blobs; an index among referrers is taken whole (every child, whatever the platform).
   * No depth bound is needed: `fetch` takes each digest once, and content cannot name itself.
   */
  private async walkReferrer(manifest: StoredManifestRef, blobs: Map<Digest, number | undefined>, fetch: (reference: ImageRef['reference']) => Promise<StoredManifestRef>): Promise<void> {
    if (INDEX_TYPES.has(manifest.mediaType) || isIndexBody(manifest.body)) {
      for (const entry of chooseManifests(manifest.body, 'all')) await fetch({ kind: 'digest', digest: entry.digest });
      return;
    }
    const refs = manifestReferences(manifest.body);
    for (const blob of refs.blobs) {
      const digest = parseDigest(blob);
      if (!blobs.has(digest)) blobs.set(digest, refs.sizes?.[blob]);
    }
  }

  /** Opens the blob through the cache; a miss is read to its end, so the download completes and is stored. */
  private async warmBlob(repo: RepositoryRef, digest: Digest, ctx: RequestContext, options: WarmOptions): Promise<{ size: number; fetched: boolean }> {
    const handle = await this.registry.openBlob(repo, digest, ctx);
    if (handle.outcome === 'hit') {
      handle.release();
      options.onBytes?.(handle.size ?? 0, false);
      return { size: handle.size ?? 0, fetched: false };
    }
    if (handle.outcome === 'upstream') {
      handle.release();
      throw new LongshoreError('LS_INTERNAL', `blob ${digest} of ${repo.upstream}/${repo.name} cannot be cached: the data directory is short of space (cache.minFreeSpace)`, { digest });
    }
    if (handle.stored) {
      // A download into the cache: wait for it to be stored, counting its bytes as they are written.
      // Cancelling a warm does not cut the download (a pull may share it); it stops waiting for it.
      const size = await abortable(handle.stored((count) => options.onBytes?.(count, true)), options.signal);
      handle.release();
      return { size, fetched: true };
    }
    const stream = handle.stream();
    const abort = () => stream.destroy(new LongshoreError('LS_INTERNAL', 'cancelled'));
    options.signal?.addEventListener('abort', abort, { once: true });
    let size = 0;
    try {
      for await (const chunk of stream) {
        size += (chunk as Buffer).length;
        options.onBytes?.((chunk as Buffer).length, true);
      }
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
    // The download is recorded just after its last byte: wait for it, so the image is whole when we say so.
    await this.registry.fillSettled(repo.upstream, digest);
    return { size, fetched: true };
  }
}

/** `work`, or a rejection as soon as `signal` aborts (the work itself goes on). */
async function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new LongshoreError('LS_INTERNAL', 'cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

interface IndexEntry {
  digest: Digest;
  /** "os/architecture[/variant]", when the entry names one. */
  platform: string | undefined;
}

/** The index entries for the chosen platforms, in the index's order. */
export function chooseManifests(body: Buffer, choice: PlatformChoice): IndexEntry[] {
  let doc: { manifests?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as { manifests?: unknown };
  } catch {
    return [];
  }
  if (!Array.isArray(doc.manifests)) return [];
  const out: IndexEntry[] = [];
  for (const entry of doc.manifests as Array<{ digest?: unknown; platform?: { os?: unknown; architecture?: unknown; variant?: unknown } }>) {
    if (typeof entry?.digest !== 'string') continue;
    let digest: Digest;
    try {
      digest = parseDigest(entry.digest);
    } catch (err) {
      if (isLongshoreError(err)) continue;
      throw err;
    }
    const p = entry.platform;
    const platform = p && typeof p.os === 'string' && typeof p.architecture === 'string'
      ? [p.os, p.architecture, ...(typeof p.variant === 'string' && p.variant !== '' ? [p.variant] : [])].join('/')
      : undefined;
    if (choice === 'all' || (platform !== undefined && choice.some((wanted) => platformMatches(platform, wanted)))) out.push({ digest, platform });
  }
  return out;
}

/** "linux/arm64" matches "linux/arm64/v8"; "linux/arm/v7" matches only that variant. */
export function platformMatches(platform: string, wanted: string): boolean {
  const have = platform.split('/');
  const want = wanted.split('/');
  return want.every((part, i) => have[i] === part);
}

export function parsePlatforms(text: string | undefined, fallback: readonly string[]): PlatformChoice {
  if (text === undefined) return fallback;
  if (text === 'all') return 'all';
  const list = text.split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of list) {
    if (!/^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/.test(p)) throw new LongshoreError('LS_QUERY_INVALID', `--platform: expected OS/ARCH[/VARIANT] such as "linux/amd64", or "all"; got ${JSON.stringify(p.slice(0, 50))}`);
  }
  return list;
}

function describeChoice(choice: PlatformChoice): string {
  return choice === 'all' ? 'any platform' : choice.join(', ');
}

function isIndexBody(body: Buffer): boolean {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { manifests?: unknown; layers?: unknown };
    return Array.isArray(doc.manifests) && doc.layers === undefined;
  } catch {
    return false;
  }
}
