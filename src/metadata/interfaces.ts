// What each layer above may do to the metadata database: one narrow interface per consumer, each
// implemented by Catalog (catalog.ts), handed to its consumer by the composition root (core.ts). A
// consumer sees these methods and no others; a new need is a line here, not a reach through a facade.
import type { Digest } from '../digest.js';
import type { ContentInfo, ContentRecord, ContentRow, EvictionCandidate, ReferrerRow, TagRow } from './catalog.js';

/** LocalContent (registry/local-content.ts): rows and links of stored content, tag resolutions, hits. */
export interface ContentIndex {
  contentInfo(digest: Digest): ContentInfo | undefined;
  recordContent(record: ContentRecord): void;
  removeContent(digest: Digest): boolean;
  hasLink(upstream: string, repository: string, digest: Digest): boolean;
  linkRepository(upstream: string, repository: string, digest: Digest): void;
  referencedBy(upstream: string, repository: string, digest: Digest): boolean;
  declaredSize(upstream: string, repository: string, digest: Digest): number | undefined;
  heldOnlyBy(upstream: string, digest: Digest): boolean;
  recordHit(digest: Digest): void;
  tags(upstream: string, repository: string, tag: string): readonly TagRow[];
  tagNames(upstream: string, repository: string): string[];
  putTag(upstream: string, repository: string, tag: string, acceptKey: string, digest: Digest, mediaType: string): void;
  deleteTag(upstream: string, repository: string, tag: string): boolean;
}

/** The evictor (cache/evictor.ts), which owns eviction accounting: the eviction index, pins, totals. */
export interface EvictionIndex {
  /** L of the aging policies; the evictor raises it to each victim's priority. */
  age: number;
  totals(): { bytes: number; objects: number };
  contentInfo(digest: Digest): ContentInfo | undefined;
  evictionCandidates(limit: number, cursor?: { priority: number; digest: string }): EvictionCandidate[];
  liftToImage(candidate: EvictionCandidate): boolean;
  recentlyWanted(digest: Digest): boolean;
  removeContents(digests: readonly Digest[], budgetMs?: number): number;
  pinned(upstream: string, repository: string, tagPattern: string | undefined): Set<Digest>;
  kept(bit: number): Digest[];
  setKeep(bit: number, digests: Iterable<Digest>, on: boolean): void;
  inTransaction<T>(work: () => T): T;
  /** A transaction that ends (commit included) by `budgetMs` from now: Catalog.inSlice. */
  inSlice<T>(budgetMs: number, work: (deadline: number) => T): T;
  /** Awaited between slices while the WAL is over its bound: Catalog.writeRoom. */
  writeRoom(): Promise<void> | undefined;
  flushSlices(sliceMs?: number): Promise<number>;
}

/** Local repositories (registry/local-registry.ts): their tags, referrers and links, and releasing content. */
export interface LocalRepositoryIndex {
  content(digest: Digest): ContentRow | undefined;
  contentInfo(digest: Digest): ContentInfo | undefined;
  removeContent(digest: Digest): boolean;
  hasLink(upstream: string, repository: string, digest: Digest): boolean;
  unlink(upstream: string, repository: string, digest: Digest): number;
  unreferencedBlobs(upstream: string, before: number): Array<{ repository: string; digest: Digest }>;
  repositories(upstream: string): string[];
  holdsRepository(upstream: string, repository: string): boolean;
  tags(upstream: string, repository: string, tag: string): readonly TagRow[];
  tagNames(upstream: string, repository: string): string[];
  putTag(upstream: string, repository: string, tag: string, acceptKey: string, digest: Digest, mediaType: string): void;
  deleteTag(upstream: string, repository: string, tag: string): boolean;
  deleteTagsOf(upstream: string, repository: string, digest: Digest): void;
  referrers(upstream: string, repository: string, subject: string): ReferrerRow[];
  putReferrer(upstream: string, repository: string, subject: string, manifest: Digest, mediaType: string, size: number, artifactType: string | undefined, annotations: unknown): void;
  deleteReferrer(upstream: string, repository: string, manifest: Digest): void;
}

/** gc's reconciliation and verify (jobs/admin-jobs.ts): every row, and fixing rows that disagree with files. */
export interface MaintenanceIndex {
  totals(): { bytes: number; objects: number };
  allContent(): Array<{ digest: Digest; size: number }>;
  contentInfo(digest: Digest): ContentInfo | undefined;
  removeContent(digest: Digest): boolean;
  adopt(digest: Digest, size: number): void;
}

/** Start-up reconciliation (cache/recovery.ts): rows a page at a time, and fixing rows that disagree with files. */
export interface RecoveryIndex {
  contentPage(after: string, limit: number): Array<{ digest: Digest; size: number }>;
  content(digest: Digest): ContentRow | undefined;
  removeContent(digest: Digest): boolean;
  adopt(digest: Digest, size: number): void;
}
