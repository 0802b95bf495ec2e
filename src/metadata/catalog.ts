// What the mirror knows about stored content and tags, over the metadata database. Every statement is
// prepared once here. Access recording is batched: a cache hit only bumps an in-memory counter, and
// flush() writes all pending hits in one transaction (on a timer and at shutdown).
import type Database from 'better-sqlite3';
import type { Digest } from '../registry/reference.js';

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

export interface ContentRecord {
  digest: Digest;
  size: number;
  mediaType?: string | undefined;
  upstream: string;
  repository: string;
  /** For manifests: what they reference. */
  refs?: { blobs: readonly string[]; manifests: readonly string[] } | undefined;
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
  private readonly pendingHits = new Map<string, { count: number; last: number }>();

  constructor(private readonly db: Database.Database, private readonly now: () => number = Date.now) {
    this.getContentStmt = db.prepare<[string], ContentRow>('SELECT * FROM content WHERE digest = ?');
    this.putContentStmt = db.prepare(
      `INSERT INTO content (digest, size, media_type, created_at, last_access, hits)
       VALUES (@digest, @size, @mediaType, @now, @now, 0)
       ON CONFLICT (digest) DO UPDATE SET media_type = COALESCE(excluded.media_type, content.media_type)`,
    );
    this.linkStmt = db.prepare('INSERT OR IGNORE INTO repository_content (upstream, repository, digest) VALUES (?, ?, ?)');
    this.refStmt = db.prepare('INSERT OR IGNORE INTO manifest_refs (manifest, child, kind) VALUES (?, ?, ?)');
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
  }

  content(digest: Digest): ContentRow | undefined {
    return this.getContentStmt.get(digest);
  }

  /** Records stored content (and, for a manifest, its references) in one transaction. */
  recordContent(record: ContentRecord): void {
    this.db.transaction(() => {
      this.putContentStmt.run({ digest: record.digest, size: record.size, mediaType: record.mediaType ?? null, now: this.now() });
      this.linkStmt.run(record.upstream, record.repository, record.digest);
      if (record.refs) {
        for (const child of record.refs.blobs) this.refStmt.run(record.digest, child, 'blob');
        for (const child of record.refs.manifests) this.refStmt.run(record.digest, child, 'manifest');
      }
    })();
  }

  /** Notes that a repository holds already stored content (a blob shared across repositories). */
  linkRepository(upstream: string, repository: string, digest: Digest): void {
    this.linkStmt.run(upstream, repository, digest);
  }

  removeContent(digest: Digest): void {
    this.removeContentStmt.run(digest);
  }

  tags(upstream: string, repository: string, tag: string): TagRow[] {
    return this.tagsStmt.all(upstream, repository, tag);
  }

  putTag(upstream: string, repository: string, tag: string, acceptKey: string, digest: Digest, mediaType: string): void {
    this.putTagStmt.run(upstream, repository, tag, acceptKey, digest, mediaType, this.now());
  }

  touchTag(upstream: string, repository: string, tag: string, acceptKey: string): void {
    this.touchTagStmt.run(this.now(), upstream, repository, tag, acceptKey);
  }

  /** Every tag of a repository this mirror has resolved, sorted. */
  tagNames(upstream: string, repository: string): string[] {
    return this.tagNamesStmt.all(upstream, repository).map((r) => r.tag);
  }

  /** Bytes and objects recorded in the store. */
  totals(): { bytes: number; objects: number } {
    return this.totalsStmt.get() ?? { bytes: 0, objects: 0 };
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
