// Reads and records content that is already in this mirror: the content store (bytes), the catalog
// (metadata) and in-process caches of hot manifests, so a warm manifest request touches neither disk
// nor SQLite for its body.
import { LRUCache } from 'lru-cache';
import type { ContentRecord, TagRow } from '../metadata/catalog.js';
import type { ContentIndex } from '../metadata/interfaces.js';
import type { ChunkPool } from '../storage/chunk-pool.js';
import type { ContentWriter } from '../storage/content-store.js';
import type { ContentFiles } from '../storage/interfaces.js';
import type { BlobHandle, CacheOutcome, ManifestAnswer } from './types.js';
import type { Digest } from './reference.js';
import { LOCAL } from './routing.js';
import type { ContentGrowth } from '../signals.js';

/** Manifest bodies kept in memory, by total bytes. */
const HOT_MANIFEST_BYTES = 32 * 1024 * 1024;
/** (upstream, repository, digest) links already in the catalog, so hits do not write to SQLite. */
const KNOWN_LINKS = 100_000;

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  size: number;
}

export class LocalContent {
  private readonly manifests = new LRUCache<Digest, Buffer>({
    maxSize: HOT_MANIFEST_BYTES,
    sizeCalculation: (body) => Math.max(1, body.length),
  });
  private readonly links = new LRUCache<string, true>({ max: KNOWN_LINKS });
  /** Stored blobs being streamed to clients now, with how many streams each: eviction leaves them alone. */
  private readonly reading = new Map<Digest, number>();
  constructor(
    private readonly store: ContentFiles,
    private readonly catalog: ContentIndex,
    /** Told after content is added, so the cache budget can be checked (signals.ts). */
    private readonly growth: ContentGrowth,
  ) {}

  /** Digests of stored blobs open for reading right now. */
  inUse(): Iterable<Digest> {
    return this.reading.keys();
  }

  /**
   * Whether a repository holds the content (distribution's per-repository links): it was fetched or
   * pushed into it, confirmed for it by its upstream, or a manifest the repository holds references it
   * (then the link is recorded, so the question is asked of SQLite once). Content is served under a name
   * only when this is true; the shared store is never an access path of its own.
   */
  holds(upstream: string, repository: string, digest: Digest): boolean {
    const key = linkKey(upstream, repository, digest);
    if (this.links.has(key)) return true;
    if (this.catalog.hasLink(upstream, repository, digest)) {
      this.links.set(key, true);
      return true;
    }
    if (!this.catalog.referencedBy(upstream, repository, digest)) return false;
    this.link(upstream, repository, digest);
    return true;
  }

  /** Records that a repository holds stored content (its upstream confirmed it, or it was mounted). */
  link(upstream: string, repository: string, digest: Digest): void {
    this.catalog.linkRepository(upstream, repository, digest);
    this.links.set(linkKey(upstream, repository, digest), true);
  }

  /** The size a manifest the repository holds declares for a blob, when one does. */
  declaredSize(upstream: string, repository: string, digest: Digest): number | undefined {
    return this.catalog.declaredSize(upstream, repository, digest);
  }

  /**
   * True for content pushed to local repositories and held by no proxied one. An upstream's word (a
   * HEAD naming its digest) never makes it servable under the upstream's names: it must be fetched.
   */
  privateToLocal(digest: Digest): boolean {
    return this.catalog.heldOnlyBy(LOCAL, digest);
  }

  /** Drops in-process copies of content that was evicted. */
  forget(digest: Digest): void {
    this.manifests.delete(digest);
  }

  /** A stored manifest's metadata, if the digest is stored and known to be a manifest. */
  manifest(digest: Digest): StoredManifest | undefined {
    const row = this.catalog.contentInfo(digest);
    if (!row || row.media_type === null) return undefined;
    return { digest, mediaType: row.media_type, size: row.size };
  }

  /** A stored manifest's bytes; undefined if the file is gone or not what its row says (the row is then removed). */
  async manifestBody(digest: Digest): Promise<Buffer | undefined> {
    const hot = this.manifests.get(digest);
    if (hot) return hot;
    const row = this.catalog.contentInfo(digest);
    const body = row && (await this.store.read(digest));
    if (!body || body.length !== row?.size) {
      await this.discard(digest, body !== undefined);
      return undefined;
    }
    this.manifests.set(digest, body);
    return body;
  }

  /**
   * The answer for a stored manifest from memory alone, without waiting: a HEAD needs no body, a GET
   * needs the body in the hot cache. Undefined when the body would have to be read from disk.
   */
  answerInMemory(stored: StoredManifest, method: 'GET' | 'HEAD', outcome: CacheOutcome): ManifestAnswer | undefined {
    const { digest, mediaType, size } = stored;
    if (method === 'HEAD') return { digest, mediaType, size, outcome };
    const body = this.manifests.get(digest);
    return body ? { digest, mediaType, size, body, outcome } : undefined;
  }

  /** The same, reading the body from disk when it is not in memory; undefined if the file is gone. */
  async answerStored(stored: StoredManifest, method: 'GET' | 'HEAD', outcome: CacheOutcome): Promise<ManifestAnswer | undefined> {
    const inMemory = this.answerInMemory(stored, method, outcome);
    if (inMemory) return inMemory;
    const body = await this.manifestBody(stored.digest);
    return body ? { ...stored, body, outcome } : undefined;
  }

  async putManifest(record: ContentRecord & { mediaType: string }, body: Buffer): Promise<void> {
    await this.store.put(record.digest, body);
    this.catalog.recordContent(record);
    this.manifests.set(record.digest, body);
    this.links.set(linkKey(record.upstream, record.repository, record.digest), true);
    this.growth.grew();
  }

  /**
   * Opens a stored blob; undefined when it is not stored. A file is served only with its row and when
   * the sizes agree: until start-up reconciliation has passed over it, nothing else vouches for it.
   */
  async openBlob(digest: Digest): Promise<BlobHandle | undefined> {
    const row = this.catalog.contentInfo(digest);
    if (!row) return undefined;
    const content = await this.store.open(digest);
    if (!content) return undefined;
    if (content.size !== row.size) {
      await content.close();
      await this.discard(digest, true);
      return undefined;
    }
    this.reading.set(digest, (this.reading.get(digest) ?? 0) + 1);
    let released = false;
    const done = () => {
      if (released) return;
      released = true;
      const left = (this.reading.get(digest) ?? 1) - 1;
      if (left > 0) this.reading.set(digest, left);
      else this.reading.delete(digest);
    };
    return {
      digest,
      size: content.size,
      outcome: 'hit' as CacheOutcome,
      stream: (range) => content.stream(range).once('close', done),
      release: () => {
        done();
        void content.close();
      },
    };
  }

  /** Size of a stored blob: its row's, when the file is there and agrees. */
  async blobSize(digest: Digest): Promise<number | undefined> {
    const row = this.catalog.contentInfo(digest);
    if (!row) return undefined;
    const size = await this.store.size(digest);
    return size === row.size ? size : undefined;
  }

  /** Removes content whose file is gone or disagrees with its row (what start-up reconciliation would do). */
  private async discard(digest: Digest, fileExists: boolean): Promise<void> {
    const row = this.catalog.contentInfo(digest);
    if (fileExists) {
      // Only when the row is still the one that disagreed: a download may have just replaced the file.
      const size = await this.store.size(digest);
      if (row && size === row.size) return;
      if (size !== undefined) await this.store.delete(digest);
    }
    this.catalog.removeContent(digest);
  }

  /** Whether the digest has a row: stored, or being committed right now. */
  isStored(digest: Digest): boolean {
    return this.catalog.contentInfo(digest) !== undefined;
  }

  /** Stored content's bytes, whole, by digest alone: for manifests (bounded), never blobs. */
  readStored(digest: Digest): Promise<Buffer | undefined> {
    return this.store.read(digest);
  }

  /** A writer that hashes content while it is written and commits it by verified rename (storage/content-store.ts). */
  createWriter(digest: Digest, expectedSize: number | undefined): Promise<ContentWriter> {
    return this.store.createWriter(digest, expectedSize);
  }

  /** Read buffers shared by every stream of stored or downloading content. */
  get chunks(): ChunkPool {
    return this.store.chunks;
  }

  /** Removes a stored file (the evictor removes the rows itself, in batches). */
  deleteFile(digest: Digest): Promise<boolean> {
    return this.store.delete(digest);
  }

  /** Announces content added with recordContent, once for all of it. */
  announceGrowth(): void {
    this.growth.grew();
  }

  /** Records a row for stored content, without announcing growth: for a caller that records many, then announces once. */
  recordContent(record: ContentRecord): void {
    this.catalog.recordContent(record);
  }

  /** A repository's resolutions of a tag, one per Accept list. */
  tags(upstream: string, repository: string, tag: string): readonly TagRow[] {
    return this.catalog.tags(upstream, repository, tag);
  }

  tagNames(upstream: string, repository: string): string[] {
    return this.catalog.tagNames(upstream, repository);
  }

  putTag(upstream: string, repository: string, tag: string, acceptKey: string, digest: Digest, mediaType: string): void {
    this.catalog.putTag(upstream, repository, tag, acceptKey, digest, mediaType);
  }

  deleteTag(upstream: string, repository: string, tag: string): boolean {
    return this.catalog.deleteTag(upstream, repository, tag);
  }

  recordBlob(record: ContentRecord): void {
    this.catalog.recordContent(record);
    this.links.set(linkKey(record.upstream, record.repository, record.digest), true);
    this.growth.grew();
  }

  /** Counts a hit on content a caller found, just now, that holds() is true for (so the link is recorded). */
  noteHit(digest: Digest): void {
    this.catalog.recordHit(digest);
  }

  /** Counts a hit on content the repository was found to hold. */
  noteAccess(upstream: string, repository: string, digest: Digest): void {
    this.noteHit(digest);
    if (!this.links.has(linkKey(upstream, repository, digest))) this.link(upstream, repository, digest);
  }
}

function linkKey(upstream: string, repository: string, digest: string): string {
  return `${upstream}\0${repository}\0${digest}`;
}
