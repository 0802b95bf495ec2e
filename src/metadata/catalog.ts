// What the mirror knows about stored content and tags, over the metadata database. Every statement is
// prepared once here. Access recording is batched: a cache hit only bumps an in-memory counter, and
// flush() writes all pending hits in one transaction (on a timer and at shutdown).
//
// The two reads of a warm pull by tag, its tag resolutions and its manifest's row, are served from
// memory: every write to those rows goes through this class, which drops the cached copy as it writes.
// This process must therefore be the only writer of the database while it runs.
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import type { Digest } from '../digest.js';

export interface ContentRow {
  digest: Digest;
  size: number;
  media_type: string | null;
  created_at: number;
  last_access: number;
  hits: number;
}

export interface TagRow {
  digest: Digest;
  media_type: string;
  accept_key: string;
  checked_at: number;
}

export interface ReferrerRow {
  manifest: Digest;
  media_type: string;
  size: number;
  artifact_type: string | null;
  annotations: string | null;
}

/** What serving stored content needs from its row; cached (see contentInfo). */
export interface ContentInfo {
  size: number;
  media_type: string | null;
}

/** Tag keys with their resolutions kept in memory (each a few rows of ~200 bytes). */
const CACHED_TAGS = 20_000;
/** Content rows kept in memory for contentInfo. */
const CACHED_CONTENT = 50_000;

export interface ContentRecord {
  digest: Digest;
  size: number;
  mediaType?: string | undefined;
  upstream: string;
  repository: string;
  /** For manifests: what they reference. */
  refs?: { blobs: readonly string[]; manifests: readonly string[]; sizes?: Readonly<Record<string, number>> | undefined } | undefined;
}

export class Catalog {
  private readonly getContentStmt;
  private readonly putContentStmt;
  private readonly linkStmt;
  private readonly refStmt;
  private readonly tagsStmt;
  private readonly putTagStmt;
  private readonly touchTagStmt;
  private readonly hitStmt;
  private readonly removeContentStmt;
  private readonly totalsStmt;
  private readonly tagNamesStmt;
  private readonly candidatesStmt;
  private readonly pinnedTagStmt;
  private readonly pinnedRepoStmt;
  private readonly closureStmt;
  private readonly allContentStmt;
  private readonly adoptStmt;
  private readonly removeLinksStmt;
  private readonly removeRefsStmt;
  private readonly repoSizesStmt;
  private readonly hasLinkStmt;
  private readonly unlinkStmt;
  private readonly deleteTagStmt;
  private readonly deleteTagsOfStmt;
  private readonly repositoriesStmt;
  private readonly holdsRepositoryStmt;
  private readonly putReferrerStmt;
  private readonly referrersStmt;
  private readonly deleteReferrerStmt;
  private readonly upstreamDigestsStmt;
  private readonly linkCountStmt;
  private readonly unreferencedStmt;
  private readonly holdersStmt;
  private readonly referencedByStmt;
  private readonly declaredSizeStmt;
  /** Running totals of the content table, so budget checks never scan it. */
  private bytes = 0;
  private objects = 0;
  private readonly pendingHits = new Map<string, { count: number; last: number }>();
  private readonly tagCache = new LRUCache<string, readonly TagRow[]>({ max: CACHED_TAGS });
  private readonly contentCache = new LRUCache<Digest, ContentInfo>({ max: CACHED_CONTENT });

  constructor(private readonly db: Database.Database, private readonly now: () => number = Date.now) {
    this.getContentStmt = db.prepare<[string], ContentRow>('SELECT * FROM content WHERE digest = ?');
    this.putContentStmt = db.prepare(
      `INSERT INTO content (digest, size, media_type, created_at, last_access, hits)
       VALUES (@digest, @size, @mediaType, @now, @now, 0)
       ON CONFLICT (digest) DO UPDATE SET media_type = COALESCE(excluded.media_type, content.media_type)`,
    );
    this.linkStmt = db.prepare('INSERT OR IGNORE INTO repository_content (upstream, repository, digest) VALUES (?, ?, ?)');
    this.refStmt = db.prepare('INSERT OR IGNORE INTO manifest_refs (manifest, child, kind, size) VALUES (?, ?, ?, ?)');
    this.tagsStmt = db.prepare<[string, string, string], TagRow>(
      'SELECT digest, media_type, accept_key, checked_at FROM tags WHERE upstream = ? AND repository = ? AND tag = ? ORDER BY checked_at DESC',
    );
    this.putTagStmt = db.prepare(
      `INSERT INTO tags (upstream, repository, tag, accept_key, digest, media_type, checked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (upstream, repository, tag, accept_key)
       DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type, checked_at = excluded.checked_at`,
    );
    this.touchTagStmt = db.prepare('UPDATE tags SET checked_at = ? WHERE upstream = ? AND repository = ? AND tag = ? AND accept_key = ?');
    this.hitStmt = db.prepare('UPDATE content SET hits = hits + ?, last_access = MAX(last_access, ?) WHERE digest = ?');
    this.removeContentStmt = db.prepare('DELETE FROM content WHERE digest = ?');
    this.tagNamesStmt = db.prepare<[string, string], { tag: string }>('SELECT DISTINCT tag FROM tags WHERE upstream = ? AND repository = ? ORDER BY tag');
    this.totalsStmt = db.prepare<[], { bytes: number; objects: number }>('SELECT COALESCE(SUM(size), 0) AS bytes, COUNT(*) AS objects FROM content');
    // A blob or platform manifest is as recent as the most recently used manifest that names it: an image
    // whose index is still pulled keeps its layers, even when clients already have them and never ask.
    this.candidatesStmt = db.prepare<[number], { digest: Digest; size: number; effective: number }>(`
      WITH RECURSIVE reach(digest, t) AS (
        SELECT digest, last_access FROM content
        UNION
        SELECT r.child, reach.t FROM manifest_refs r JOIN reach ON r.manifest = reach.digest
      )
      SELECT c.digest, c.size, MAX(reach.t) AS effective
      FROM content c JOIN reach ON reach.digest = c.digest
      GROUP BY c.digest ORDER BY effective ASC, c.digest ASC LIMIT ?`);
    this.pinnedTagStmt = db.prepare<[string, string, string], { digest: Digest }>('SELECT DISTINCT digest FROM tags WHERE upstream = ? AND repository = ? AND tag GLOB ?');
    // A repository pin covers the repository's own manifests and what they reference, not every digest
    // that was ever linked to the name.
    this.pinnedRepoStmt = db.prepare<[string, string], { digest: Digest }>(`
      SELECT rc.digest FROM repository_content rc JOIN content c ON c.digest = rc.digest
      WHERE rc.upstream = ? AND rc.repository = ? AND c.media_type IS NOT NULL`);
    this.closureStmt = db.prepare<[string], { digest: Digest }>(`
      WITH RECURSIVE below(digest) AS (SELECT ? UNION SELECT r.child FROM manifest_refs r JOIN below ON r.manifest = below.digest)
      SELECT digest FROM below`);
    this.allContentStmt = db.prepare<[], { digest: Digest; size: number }>('SELECT digest, size FROM content');
    this.adoptStmt = db.prepare('INSERT OR IGNORE INTO content (digest, size, media_type, created_at, last_access, hits) VALUES (?, ?, NULL, ?, ?, 0)');
    this.removeLinksStmt = db.prepare('DELETE FROM repository_content WHERE digest = ?');
    this.removeRefsStmt = db.prepare('DELETE FROM manifest_refs WHERE manifest = ?');
    this.repoSizesStmt = db.prepare<[number], { upstream: string; repository: string; bytes: number; objects: number }>(`
      SELECT rc.upstream, rc.repository, SUM(c.size) AS bytes, COUNT(*) AS objects
      FROM repository_content rc JOIN content c ON c.digest = rc.digest
      GROUP BY rc.upstream, rc.repository ORDER BY bytes DESC LIMIT ?`);
    this.hasLinkStmt = db.prepare<[string, string, string], { one: number }>('SELECT 1 AS one FROM repository_content WHERE upstream = ? AND repository = ? AND digest = ?');
    this.unlinkStmt = db.prepare('DELETE FROM repository_content WHERE upstream = ? AND repository = ? AND digest = ?');
    this.deleteTagStmt = db.prepare('DELETE FROM tags WHERE upstream = ? AND repository = ? AND tag = ?');
    this.deleteTagsOfStmt = db.prepare('DELETE FROM tags WHERE upstream = ? AND repository = ? AND digest = ?');
    this.repositoriesStmt = db.prepare<[string], { repository: string }>('SELECT DISTINCT repository FROM repository_content WHERE upstream = ? ORDER BY repository');
    this.holdsRepositoryStmt = db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM repository_content WHERE upstream = ? AND repository = ? LIMIT 1');
    this.putReferrerStmt = db.prepare('INSERT OR REPLACE INTO referrers (upstream, repository, subject, manifest, media_type, size, artifact_type, annotations) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.referrersStmt = db.prepare<[string, string, string], ReferrerRow>('SELECT manifest, media_type, size, artifact_type, annotations FROM referrers WHERE upstream = ? AND repository = ? AND subject = ? ORDER BY manifest');
    this.deleteReferrerStmt = db.prepare('DELETE FROM referrers WHERE upstream = ? AND repository = ? AND manifest = ?');
    this.upstreamDigestsStmt = db.prepare<[string], { digest: Digest }>('SELECT DISTINCT digest FROM repository_content WHERE upstream = ?');
    this.linkCountStmt = db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM repository_content WHERE digest = ?');
    // Blobs held by a repository of `upstream` that no manifest of that repository names any more.
    this.unreferencedStmt = db.prepare<[string, number], { repository: string; digest: Digest }>(`
      SELECT rc.repository, rc.digest FROM repository_content rc JOIN content c ON c.digest = rc.digest
      WHERE rc.upstream = ? AND c.media_type IS NULL AND c.created_at < ?
        AND NOT EXISTS (
          SELECT 1 FROM manifest_refs r
          JOIN repository_content m ON m.digest = r.manifest AND m.upstream = rc.upstream AND m.repository = rc.repository
          WHERE r.child = rc.digest)`);
    this.holdersStmt = db.prepare<[{ upstream: string; digest: string }], { mine: number | null; others: number | null }>(
      'SELECT SUM(upstream = @upstream) AS mine, SUM(upstream <> @upstream) AS others FROM repository_content WHERE digest = @digest');
    // A manifest this repository holds that names the content (an index its platform manifest, a
    // manifest its config or layer): the repository holds the content too. Indexed both ways.
    this.referencedByStmt = db.prepare<[string, string, string], { one: number }>(`
      SELECT 1 AS one FROM manifest_refs r
      JOIN repository_content m ON m.upstream = ? AND m.repository = ? AND m.digest = r.manifest
      WHERE r.child = ? LIMIT 1`);
    this.declaredSizeStmt = db.prepare<[string, string, string], { size: number }>(`
      SELECT r.size AS size FROM manifest_refs r
      JOIN repository_content m ON m.upstream = ? AND m.repository = ? AND m.digest = r.manifest
      WHERE r.child = ? AND r.size IS NOT NULL LIMIT 1`);
    const totals = this.totalsStmt.get() ?? { bytes: 0, objects: 0 };
    this.bytes = totals.bytes;
    this.objects = totals.objects;
  }

  content(digest: Digest): ContentRow | undefined {
    return this.getContentStmt.get(digest);
  }

  /** Size and media type of stored content, from memory when it was asked for before. */
  contentInfo(digest: Digest): ContentInfo | undefined {
    const cached = this.contentCache.get(digest);
    if (cached) return cached;
    const row = this.getContentStmt.get(digest);
    if (!row) return undefined;
    const info = { size: row.size, media_type: row.media_type };
    this.contentCache.set(digest, info);
    return info;
  }

  /** Records stored content (and, for a manifest, its references) in one transaction. */
  recordContent(record: ContentRecord): void {
    this.contentCache.delete(record.digest);
    this.db.transaction(() => {
      if (!this.getContentStmt.get(record.digest)) {
        this.bytes += record.size;
        this.objects++;
      }
      this.putContentStmt.run({ digest: record.digest, size: record.size, mediaType: record.mediaType ?? null, now: this.now() });
      this.linkStmt.run(record.upstream, record.repository, record.digest);
      if (record.refs) {
        for (const child of record.refs.blobs) this.refStmt.run(record.digest, child, 'blob', record.refs.sizes?.[child] ?? null);
        for (const child of record.refs.manifests) this.refStmt.run(record.digest, child, 'manifest', null);
      }
    })();
  }

  /** Notes that a repository holds already stored content (a blob shared across repositories). */
  linkRepository(upstream: string, repository: string, digest: Digest): void {
    this.linkStmt.run(upstream, repository, digest);
  }

  /** Forgets content, its repository links and the references it makes; returns whether it was known. */
  removeContent(digest: Digest): boolean {
    this.contentCache.delete(digest);
    return this.db.transaction(() => {
      const row = this.getContentStmt.get(digest);
      this.removeContentStmt.run(digest);
      this.removeLinksStmt.run(digest);
      this.removeRefsStmt.run(digest);
      if (row) {
        this.bytes -= row.size;
        this.objects--;
      }
      return row !== undefined;
    })();
  }

  /** Records a verified file found without a row (after a crash between rename and insert). */
  adopt(digest: Digest, size: number): void {
    const now = this.now();
    if (this.adoptStmt.run(digest, size, now, now).changes > 0) {
      this.bytes += size;
      this.objects++;
    }
  }

  /** Every stored digest with its recorded size (start-up reconciliation, verify). */
  allContent(): Array<{ digest: Digest; size: number }> {
    return this.allContentStmt.all();
  }

  /** The least recently wanted content first (see candidatesStmt). */
  evictionCandidates(limit: number): Array<{ digest: Digest; size: number; effective: number }> {
    return this.candidatesStmt.all(limit);
  }

  /** Digests a pin covers: the tags (glob) or the whole repository, with everything they reference. */
  pinned(upstream: string, repository: string, tagPattern: string | undefined): Set<Digest> {
    const roots = tagPattern === undefined
      ? this.pinnedRepoStmt.all(upstream, repository)
      : this.pinnedTagStmt.all(upstream, repository, tagPattern);
    const out = new Set<Digest>();
    for (const { digest } of roots) for (const row of this.closureStmt.all(digest)) out.add(row.digest);
    return out;
  }

  /** Repositories by the bytes of content they hold (a blob shared by two counts for both). */
  repositorySizes(limit: number): Array<{ upstream: string; repository: string; bytes: number; objects: number }> {
    return this.repoSizesStmt.all(limit);
  }

  /** A tag's resolutions, one per Accept key, the most recently checked first. */
  tags(upstream: string, repository: string, tag: string): readonly TagRow[] {
    const key = tagKey(upstream, repository, tag);
    let rows = this.tagCache.get(key);
    if (!rows) {
      rows = this.tagsStmt.all(upstream, repository, tag);
      this.tagCache.set(key, rows);
    }
    return rows;
  }

  putTag(upstream: string, repository: string, tag: string, acceptKey: string, digest: Digest, mediaType: string): void {
    this.tagCache.delete(tagKey(upstream, repository, tag));
    this.putTagStmt.run(upstream, repository, tag, acceptKey, digest, mediaType, this.now());
  }

  touchTag(upstream: string, repository: string, tag: string, acceptKey: string): void {
    this.tagCache.delete(tagKey(upstream, repository, tag));
    this.touchTagStmt.run(this.now(), upstream, repository, tag, acceptKey);
  }

  /** Every tag of a repository this mirror has resolved, sorted. */
  tagNames(upstream: string, repository: string): string[] {
    return this.tagNamesStmt.all(upstream, repository).map((r) => r.tag);
  }

  /** Bytes and objects recorded in the store (kept as running totals; no scan). */
  totals(): { bytes: number; objects: number } {
    return { bytes: this.bytes, objects: this.objects };
  }

  /** Whether a repository holds (was pushed, or fetched into) this content. */
  hasLink(upstream: string, repository: string, digest: Digest): boolean {
    return this.hasLinkStmt.get(upstream, repository, digest) !== undefined;
  }

  /** Removes a repository's hold on content; returns how many repositories still hold it. */
  unlink(upstream: string, repository: string, digest: Digest): number {
    this.unlinkStmt.run(upstream, repository, digest);
    return this.linkCountStmt.get(digest)?.n ?? 0;
  }

  deleteTag(upstream: string, repository: string, tag: string): boolean {
    this.tagCache.delete(tagKey(upstream, repository, tag));
    return this.deleteTagStmt.run(upstream, repository, tag).changes > 0;
  }

  /** Deletes every tag of a repository that points at `digest`. */
  deleteTagsOf(upstream: string, repository: string, digest: Digest): void {
    this.tagCache.clear(); // which tags pointed at the digest is not known without a query; deletes are rare
    this.deleteTagsOfStmt.run(upstream, repository, digest);
  }

  /** Repositories holding content under one upstream key, sorted. */
  repositories(upstream: string): string[] {
    return this.repositoriesStmt.all(upstream).map((r) => r.repository);
  }

  /** Whether the repository holds any content: for a local one, whether it exists. One index lookup. */
  holdsRepository(upstream: string, repository: string): boolean {
    return this.holdsRepositoryStmt.get(upstream, repository) !== undefined;
  }

  /** Every digest held by repositories of one upstream key (for local content: never evicted). */
  digestsOf(upstream: string): Digest[] {
    return this.upstreamDigestsStmt.all(upstream).map((r) => r.digest);
  }

  putReferrer(upstream: string, repository: string, subject: string, manifest: Digest, mediaType: string, size: number, artifactType: string | undefined, annotations: unknown): void {
    this.putReferrerStmt.run(upstream, repository, subject, manifest, mediaType, size, artifactType ?? null, annotations === undefined ? null : JSON.stringify(annotations));
  }

  referrers(upstream: string, repository: string, subject: string): ReferrerRow[] {
    return this.referrersStmt.all(upstream, repository, subject);
  }

  deleteReferrer(upstream: string, repository: string, manifest: Digest): void {
    this.deleteReferrerStmt.run(upstream, repository, manifest);
  }

  /** Blobs of `upstream`'s repositories that no manifest there references, older than `before` (ms). */
  unreferencedBlobs(upstream: string, before: number): Array<{ repository: string; digest: Digest }> {
    return this.unreferencedStmt.all(upstream, before);
  }

  /** Whether a manifest that `repository` holds references `digest` directly. */
  referencedBy(upstream: string, repository: string, digest: Digest): boolean {
    return this.referencedByStmt.get(upstream, repository, digest) !== undefined;
  }

  /** The size a manifest that `repository` holds declares for the blob, if one does. */
  declaredSize(upstream: string, repository: string, digest: Digest): number | undefined {
    return this.declaredSizeStmt.get(upstream, repository, digest)?.size;
  }

  /** True when repositories of `upstream` hold the content and no repository of another upstream does. */
  heldOnlyBy(upstream: string, digest: Digest): boolean {
    const row = this.holdersStmt.get({ upstream, digest });
    return (row?.mine ?? 0) > 0 && (row?.others ?? 0) === 0;
  }

  /** Counts a hit in memory; flush() persists it. */
  recordHit(digest: Digest): void {
    const entry = this.pendingHits.get(digest);
    const now = this.now();
    if (entry) {
      entry.count++;
      entry.last = now;
    } else {
      this.pendingHits.set(digest, { count: 1, last: now });
    }
  }

  /** Writes pending hits in one transaction; returns how many digests were updated. */
  flush(): number {
    if (this.pendingHits.size === 0) return 0;
    const batch = [...this.pendingHits];
    this.pendingHits.clear();
    this.db.transaction(() => {
      for (const [digest, { count, last }] of batch) this.hitStmt.run(count, last, digest);
    })();
    return batch.length;
  }
}

function tagKey(upstream: string, repository: string, tag: string): string {
  return `${upstream}\0${repository}\0${tag}`;
}
