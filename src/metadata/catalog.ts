// What the mirror knows about stored content and tags, over the metadata database. Every statement is
// prepared once here. Access recording is batched: a cache hit only bumps an in-memory counter, and
// flush() writes all pending hits in one transaction (on a timer and at shutdown).
//
// The two reads of a warm pull by tag, its tag resolutions and its manifest's row, are served from
// memory: every write to those rows goes through this class, which drops the cached copy as it writes.
// This process must therefore be the only writer of the database while it runs.
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import { RULES, type PolicyName, type PolicyRules } from '../cache/policy.js';
import type { Digest } from '../digest.js';
import type { ContentIndex, EvictionIndex, LocalRepositoryIndex, MaintenanceIndex, RecoveryIndex } from './interfaces.js';
import { LOCAL } from '../registry/routing.js';

export interface ContentRow {
  digest: Digest;
  size: number;
  media_type: string | null;
  created_at: number;
  last_access: number;
  hits: number;
  /** Eviction priority (cache/policy.ts): the lowest goes first. */
  priority: number;
  /** Requests for the content or for an image naming it. */
  frequency: number;
  /** KEEP_LOCAL | KEEP_PINNED bits: out of the eviction index when not 0. */
  keep: number;
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
/** At most this many recently asked-for digests are remembered (about 150 bytes each). */
const RECENT_ENTRIES = 100_000;
/** Expired recent entries are dropped at most this often. */
const RECENT_PRUNE_MS = 1_000;
/** Manifests naming a candidate that liftToImage looks at (and, for each, the indexes naming it). */
export const LIFT_PARENTS = 64;
/** Bits of content.keep: rows with any bit set are out of the eviction index. */
export const KEEP_LOCAL = 1;
export const KEEP_PINNED = 2;

export interface EvictionCandidate {
  digest: Digest;
  size: number;
  priority: number;
}

export interface CatalogOptions {
  /** The eviction policy whose priorities the rows carry (cache/policy.ts). Default image-lfuda. */
  policy?: PolicyName;
  /** Content asked for within this many ms counts as recently wanted (cache.protectRecent). Default 10 s. */
  recentMs?: number;
  /**
   * Awaited by background writers between two slices (Checkpointer.writeRoom: waits while the WAL is
   * long). Default: never waits.
   */
  writeRoom?: () => Promise<void> | undefined;
}

export interface ContentRecord {
  digest: Digest;
  size: number;
  mediaType?: string | undefined;
  upstream: string;
  repository: string;
  /** For manifests: what they reference. */
  refs?: { blobs: readonly string[]; manifests: readonly string[]; sizes?: Readonly<Record<string, number>> | undefined } | undefined;
}

export class Catalog implements ContentIndex, EvictionIndex, LocalRepositoryIndex, MaintenanceIndex, RecoveryIndex {
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
  private readonly parentFrequencyStmt;
  private readonly namedHitStmt;
  private readonly inheritedStmt;
  private readonly liftStmt;
  private readonly keepLocalStmt;
  private readonly unkeepLocalStmt;
  private readonly setKeepStmt;
  private readonly clearKeepStmt;
  private readonly keptStmt;
  private readonly lowestStmt;
  private readonly contentPageStmt;
  private readonly rules: PolicyRules;
  /** L of the aging policies: the priority of the last evicted content (see cache/policy.ts). */
  private ageValue = 0;
  private readonly recentMs: number;
  /** Digests asked for within recentMs, by time, oldest first. */
  private readonly recent = new Map<Digest, number>();
  private recentPruned = 0;
  private readonly writeRoomHook: (() => Promise<void> | undefined) | undefined;
  /** Average commit time of the last sliced transactions (ms), see inSlice. */
  private commitMs = 0;
  /** Running totals of the content table, so budget checks never scan it. */
  private bytes = 0;
  private objects = 0;
  private readonly pendingHits = new Map<string, { count: number; last: number }>();
  /** The flushSlices() loop running, if any. */
  private flushing: Promise<number> | undefined;
  private readonly tagCache = new LRUCache<string, readonly TagRow[]>({ max: CACHED_TAGS });
  private readonly contentCache = new LRUCache<Digest, ContentInfo>({ max: CACHED_CONTENT });

  constructor(private readonly db: Database.Database, private readonly now: () => number = Date.now, options: CatalogOptions = {}) {
    this.rules = RULES[options.policy ?? 'image-lfuda'];
    this.recentMs = options.recentMs ?? 10_000;
    this.writeRoomHook = options.writeRoom;
    this.getContentStmt = db.prepare<[string], ContentRow>('SELECT * FROM content WHERE digest = ?');
    this.putContentStmt = db.prepare(
      `INSERT INTO content (digest, size, media_type, created_at, last_access, hits, priority, frequency, keep)
       VALUES (@digest, @size, @mediaType, @now, @now, 0, @priority, @frequency, 0)
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
    this.hitStmt = db.prepare(`UPDATE content SET hits = hits + @n, last_access = MAX(last_access, @t), frequency = frequency + @n,
      priority = MAX(priority, ${this.rules.self}) WHERE digest = @digest`);
    // What a manifest names (an index: its platform manifests; a platform manifest: its config and
    // layers), a primary-key range of manifest_refs. One level: a pull asks for the platform manifest
    // too, whose hit reaches the layers; an index asked for alone reaches them through liftToImage.
    this.namedHitStmt = this.rules.named === undefined ? undefined : db.prepare(`
      UPDATE content SET frequency = frequency + @n, priority = MAX(priority, ${this.rules.named})
      WHERE digest IN (SELECT child FROM manifest_refs WHERE manifest = @digest)`);
    // The highest priority among the manifests naming the content and the manifests naming those (an
    // index of a platform manifest of a layer); both steps are index lookups on manifest_refs_child.
    // Bounded like parentFrequencyStmt: a base layer named by thousands of manifests looks at
    // LIFT_PARENTS of them (in digest order, an arbitrary sample), each with the indexes naming it. Its
    // cost grew with the catalogue, in one statement an eviction slice cannot cut (at 1M rows a base
    // layer is named by ~360 manifests: ~1,000 scattered row lookups); the flush writes every manifest
    // hit to what the manifest names anyway, so the lift only catches what that misses.
    this.inheritedStmt = db.prepare<[string, string], { p: number | null }>(`
      SELECT MAX(p) AS p FROM (
        SELECT m.priority AS p FROM (SELECT manifest FROM manifest_refs WHERE child = ? LIMIT ${LIFT_PARENTS}) r
        JOIN content m ON m.digest = r.manifest
        UNION ALL
        SELECT i.priority FROM (SELECT manifest FROM manifest_refs WHERE child = ? LIMIT ${LIFT_PARENTS}) r
        JOIN manifest_refs r2 ON r2.child = r.manifest JOIN content i ON i.digest = r2.manifest)`);
    this.liftStmt = db.prepare('UPDATE content SET priority = ? WHERE digest = ? AND priority < ?');
    // Bounded: a base layer named by thousands of manifests looks at 64 of them.
    this.parentFrequencyStmt = db.prepare<[string], { f: number | null }>(`
      SELECT MAX(f) AS f FROM (SELECT p.frequency AS f FROM manifest_refs r JOIN content p ON p.digest = r.manifest WHERE r.child = ? LIMIT 64)`);
    this.keepLocalStmt = db.prepare(`UPDATE content SET keep = keep | ${KEEP_LOCAL} WHERE digest = ? AND keep & ${KEEP_LOCAL} = 0`);
    this.unkeepLocalStmt = db.prepare(`UPDATE content SET keep = keep & ~${KEEP_LOCAL} WHERE digest = ? AND keep & ${KEEP_LOCAL} <> 0
      AND NOT EXISTS (SELECT 1 FROM repository_content WHERE upstream = '${LOCAL}' AND digest = ?)`);
    this.setKeepStmt = db.prepare('UPDATE content SET keep = keep | ? WHERE digest = ?');
    this.clearKeepStmt = db.prepare('UPDATE content SET keep = keep & ~? WHERE digest = ?');
    this.keptStmt = db.prepare<[number], { digest: Digest }>('SELECT digest FROM content WHERE keep <> 0 AND keep & ? <> 0');
    this.lowestStmt = db.prepare<[], { priority: number }>('SELECT priority FROM content WHERE keep = 0 ORDER BY priority LIMIT 1');
    this.contentPageStmt = db.prepare<[string, number], { digest: Digest; size: number }>('SELECT digest, size FROM content WHERE digest > ? ORDER BY digest LIMIT ?');
    this.removeContentStmt = db.prepare('DELETE FROM content WHERE digest = ?');
    this.tagNamesStmt = db.prepare<[string, string], { tag: string }>('SELECT DISTINCT tag FROM tags WHERE upstream = ? AND repository = ? ORDER BY tag');
    // Kept by triggers (migration 6): start-up reads one row instead of summing the catalogue.
    this.totalsStmt = db.prepare<[], { bytes: number; objects: number }>('SELECT bytes, objects FROM content_totals WHERE id = 0');
    // The lowest priorities after a cursor: a range of the partial index content_eviction, which holds
    // no pinned or local rows, so skipping them costs nothing and a batch costs its own size.
    this.candidatesStmt = db.prepare<[number, string, number], EvictionCandidate>(`
      SELECT digest, size, priority FROM content
      WHERE keep = 0 AND (priority, digest) > (?, ?)
      ORDER BY priority, digest LIMIT ?`);
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
    this.adoptStmt = db.prepare('INSERT OR IGNORE INTO content (digest, size, media_type, created_at, last_access, hits, priority, frequency) VALUES (?, ?, NULL, ?, ?, 0, ?, ?)');
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
    // L resumes where the last run left it: the lowest priority still stored is at least the last victim's.
    this.ageValue = this.lowestStmt.get()?.priority ?? 0;
  }

  /** L of the aging policies; the evictor raises it to each victim's priority. */
  get age(): number {
    return this.ageValue;
  }

  set age(value: number) {
    if (value > this.ageValue) this.ageValue = value;
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
    const now = this.now();
    this.noteRecent(record.digest, now);
    this.db.transaction(() => {
      if (!this.getContentStmt.get(record.digest)) {
        this.bytes += record.size;
        this.objects++;
      }
      const parentFrequency = this.parentFrequencyStmt.get(record.digest)?.f ?? 0;
      const initial = this.rules.initial(record.size, now, this.ageValue, parentFrequency);
      this.putContentStmt.run({ digest: record.digest, size: record.size, mediaType: record.mediaType ?? null, now, ...initial });
      this.link(record.upstream, record.repository, record.digest);
      if (record.refs) {
        for (const child of record.refs.blobs) this.refStmt.run(record.digest, child, 'blob', record.refs.sizes?.[child] ?? null);
        for (const child of record.refs.manifests) this.refStmt.run(record.digest, child, 'manifest', null);
      }
    })();
  }

  /** Notes that a repository holds already stored content (a blob shared across repositories). */
  linkRepository(upstream: string, repository: string, digest: Digest): void {
    this.link(upstream, repository, digest);
  }

  private link(upstream: string, repository: string, digest: Digest): void {
    this.linkStmt.run(upstream, repository, digest);
    // Content of local (pushed) repositories is primary data, not cache: out of the eviction index.
    if (upstream === LOCAL) this.keepLocalStmt.run(digest);
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

  /** Runs `work` in one transaction (nested calls join the outer one). */
  inTransaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  /**
   * Runs `work` in one transaction meant to hold the event loop for at most `budgetMs`, its commit
   * included: `work` is given the time after which it should start no more statements, which leaves
   * room for the commit (the average of the last ones). A commit writes every page the slice dirtied
   * into the WAL; on a large catalogue those pages are scattered (a row, its eviction-index entries,
   * what a manifest names), and the commit took as long as the statements before it (bench --only=scale).
   */
  inSlice<T>(budgetMs: number, work: (deadline: number) => T): T {
    const start = performance.now();
    const deadline = start + Math.max(budgetMs / 4, budgetMs - this.commitMs);
    let statementsDone = start;
    const result = this.db.transaction(() => {
      const out = work(deadline);
      statementsDone = performance.now();
      return out;
    })();
    if (!this.db.inTransaction) this.commitMs = 0.75 * this.commitMs + 0.25 * (performance.now() - statementsDone);
    return result;
  }

  /**
   * For background work that writes a slice per turn of the event loop (hit flushes, eviction), before
   * each slice: undefined, or a promise to wait for while the WAL is checkpointed (CatalogOptions).
   */
  writeRoom(): Promise<void> | undefined {
    return this.writeRoomHook?.();
  }

  /** The average time (ms) the last sliced transactions took to commit; inSlice leaves it for the commit. */
  get commitEstimateMs(): number {
    return this.commitMs;
  }

  /**
   * Forgets content in one transaction (an eviction batch; see removeContent): all of it, or as much as
   * fits in `budgetMs` (at least one); returns how many digests were removed, from the front.
   */
  removeContents(digests: readonly Digest[], budgetMs = Infinity): number {
    if (digests.length === 0) return 0;
    let removed = 0;
    this.inSlice(budgetMs, (deadline) => {
      while (removed < digests.length) {
        this.removeContent(digests[removed++]!);
        if (performance.now() > deadline) break;
      }
    });
    return removed;
  }

  /** Records a verified file found without a row (after a crash between rename and insert). */
  adopt(digest: Digest, size: number): void {
    const now = this.now();
    const { priority, frequency } = this.rules.initial(size, now, this.ageValue, 0);
    if (this.adoptStmt.run(digest, size, now, now, priority, frequency).changes > 0) {
      this.bytes += size;
      this.objects++;
    }
  }

  /** Every stored digest with its recorded size (start-up reconciliation, verify). */
  allContent(): Array<{ digest: Digest; size: number }> {
    return this.allContentStmt.all();
  }

  /** Content rows in digest order after `after` (start-up reconciliation walks them page by page). */
  contentPage(after: string, limit: number): Array<{ digest: Digest; size: number }> {
    return this.contentPageStmt.all(after, limit);
  }

  /**
   * The evictable content of lowest priority after `cursor` (exclusive), lowest first: pinned and local
   * content is not in the index at all. Cost: the batch, whatever the size of the catalogue.
   */
  evictionCandidates(limit: number, cursor?: { priority: number; digest: string }): EvictionCandidate[] {
    const priority = cursor?.priority ?? -Infinity;
    return this.candidatesStmt.all(priority, cursor?.digest ?? '', limit);
  }

  /**
   * For the image policies: when a manifest naming the candidate (or naming such a manifest) ranks
   * higher, lifts the candidate to that priority and returns true — it is not the next victim.
   */
  liftToImage(candidate: EvictionCandidate): boolean {
    if (this.rules.named === undefined) return false;
    const inherited = this.inheritedStmt.get(candidate.digest, candidate.digest)?.p ?? null;
    if (inherited === null || inherited <= candidate.priority) return false;
    this.liftStmt.run(inherited, candidate.digest, inherited);
    return true;
  }

  /** Sets (`on`) or clears a keep bit (KEEP_PINNED) on the given digests. */
  setKeep(bit: number, digests: Iterable<Digest>, on: boolean): void {
    this.db.transaction(() => {
      for (const digest of digests) (on ? this.setKeepStmt : this.clearKeepStmt).run(bit, digest);
    })();
  }

  /** Digests with a keep bit set (through the small partial index content_kept). */
  kept(bit: number): Digest[] {
    return this.keptStmt.all(bit).map((r) => r.digest);
  }

  /** Whether the content was asked for (or stored) within recentMs. */
  recentlyWanted(digest: Digest): boolean {
    const at = this.recent.get(digest);
    return at !== undefined && this.now() - at < this.recentMs;
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
    if (upstream === LOCAL) this.unkeepLocalStmt.run(digest, digest);
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
    this.noteRecent(digest, now);
    if (entry) {
      entry.count++;
      entry.last = now;
    } else {
      this.pendingHits.set(digest, { count: 1, last: now });
    }
  }

  private noteRecent(digest: Digest, now: number): void {
    if (this.recentMs <= 0) return;
    // Re-inserted, so that the map stays ordered by time and is pruned from its front.
    this.recent.delete(digest);
    this.recent.set(digest, now);
    // Expired entries are harmless until pruned (recentlyUsed checks the age), so the walk from the front
    // runs when the map is full or once per RECENT_PRUNE_MS, not on every hit.
    if (this.recent.size <= RECENT_ENTRIES && now - this.recentPruned < RECENT_PRUNE_MS) return;
    this.recentPruned = now;
    for (const [oldest, at] of this.recent) {
      if (this.recent.size <= RECENT_ENTRIES && now - at < this.recentMs) break;
      this.recent.delete(oldest);
    }
  }

  /** Digests with hits not yet written. */
  get pendingCount(): number {
    return this.pendingHits.size;
  }

  /**
   * Writes pending hits, oldest first, in one transaction: all of them, or as many as fit in `budgetMs`
   * (at least one); returns how many digests were written. flushSlices() writes them all a slice per
   * turn of the event loop.
   */
  flush(budgetMs = Infinity): number {
    if (this.pendingHits.size === 0) return 0;
    const age = this.ageValue;
    const written: string[] = [];
    this.inSlice(budgetMs, (deadline) => {
      for (const [digest, { count, last }] of this.pendingHits) {
        const params = { n: count, t: last, age, digest };
        this.hitStmt.run(params);
        this.namedHitStmt?.run(params);
        written.push(digest);
        if (written.length % 4 === 0 && performance.now() > deadline) break;
      }
    });
    // Forgotten only once committed: a slice that fails (a busy database) leaves its hits pending.
    for (const digest of written) this.pendingHits.delete(digest);
    return written.length;
  }

  /** Writes every pending hit, a slice per turn of the event loop. */
  flushSlices(sliceMs = FLUSH_SLICE_MS): Promise<number> {
    // One flush at a time: the 5 s timer, the evictor and an admin job may all ask while a large flush
    // runs, and two loops would each take a slice per turn of the event loop (measured: 51-53 ms gaps
    // at a million rows, three slices a turn). A later caller waits for the running flush, which goes on
    // until nothing is pending, hits counted meanwhile included.
    this.flushing ??= this.flushEverySlice(sliceMs).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushEverySlice(sliceMs: number): Promise<number> {
    let written = 0;
    while (this.pendingHits.size > 0) {
      written += this.flush(sliceMs);
      if (this.pendingHits.size === 0) break;
      await new Promise((resolve) => setImmediate(resolve));
      await this.writeRoom();
    }
    return written;
  }
}

/** Time one flushSlices transaction may take before the event loop gets a turn. */
const FLUSH_SLICE_MS = 8;

function tagKey(upstream: string, repository: string, tag: string): string {
  return `${upstream}\0${repository}\0${tag}`;
}
