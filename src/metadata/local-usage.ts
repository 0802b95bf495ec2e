// Bytes of content that local (pushed) repositories hold, for the quota `local.maxSize`: summed with one
// query when the mirror starts, then kept as a running number by LocalRegistry, which asks `holds` before
// and after each change of a local repository's links (no request scans the catalogue). Content held by
// several local repositories counts once; content held only by proxied repositories does not count.
import type Database from 'better-sqlite3';

export class LocalUsage {
  private readonly holdsStmt;
  /** Bytes of content held by at least one local repository. */
  private total: number;

  constructor(db: Database.Database, private readonly upstream: string) {
    this.holdsStmt = db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM repository_content WHERE upstream = ? AND digest = ? LIMIT 1');
    const row = db.prepare<[string], { bytes: number }>(`
      SELECT COALESCE(SUM(c.size), 0) AS bytes FROM content c
      WHERE c.digest IN (SELECT DISTINCT digest FROM repository_content WHERE upstream = ?)`).get(upstream);
    this.total = row?.bytes ?? 0;
  }

  get bytes(): number {
    return this.total;
  }

  /** Whether any local repository holds the content. */
  holds(digest: string): boolean {
    return this.holdsStmt.get(this.upstream, digest) !== undefined;
  }

  /** Content of `size` bytes became held by local repositories (it was not before). */
  added(size: number): void {
    this.total += size;
  }

  /** Content of `size` bytes is no longer held by any local repository. */
  removed(size: number): void {
    this.total = Math.max(0, this.total - size);
  }
}
