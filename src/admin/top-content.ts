// Which repositories and tags the cache serves most, and which hold the most bytes, straight from the
// catalog's tables. Each query reads every row of repository_content (or tags) once, which is fine for
// an operator's page polled every few seconds. Access counts reach the tables when the catalog flushes
// them (every few seconds), so the newest may be missing. Content shared by several repositories (a
// base layer) counts in each of them.
import type Database from 'better-sqlite3';

export interface RepositoryUsage {
  upstream: string;
  repository: string;
  /** Accesses recorded on the content it holds: manifests served, blobs served from the cache. */
  pulls: number;
  bytes: number;
  objects: number;
  /** ms since epoch */
  lastAccess: number;
}

export interface TagUsage {
  upstream: string;
  repository: string;
  tag: string;
  /** Accesses recorded on the manifests the tag resolves to, however they were asked for. */
  pulls: number;
}

const REPOSITORIES = `
  SELECT rc.upstream, rc.repository, SUM(c.hits) AS pulls, SUM(c.size) AS bytes, COUNT(*) AS objects, MAX(c.last_access) AS lastAccess
  FROM repository_content rc JOIN content c ON c.digest = rc.digest
  GROUP BY rc.upstream, rc.repository`;

export class TopContent {
  private readonly byPullsStmt;
  private readonly bySizeStmt;
  private readonly tagsStmt;

  constructor(db: Database.Database) {
    this.byPullsStmt = db.prepare<[number], RepositoryUsage>(`${REPOSITORIES} ORDER BY pulls DESC, bytes DESC LIMIT ?`);
    this.bySizeStmt = db.prepare<[number], RepositoryUsage>(`${REPOSITORIES} ORDER BY bytes DESC, pulls DESC LIMIT ?`);
    // One row per digest a tag resolves to (tags has one row per Accept list), then summed per tag.
    this.tagsStmt = db.prepare<[number], TagUsage>(`
      SELECT t.upstream, t.repository, t.tag, SUM(c.hits) AS pulls
      FROM (SELECT DISTINCT upstream, repository, tag, digest FROM tags) t JOIN content c ON c.digest = t.digest
      GROUP BY t.upstream, t.repository, t.tag
      ORDER BY pulls DESC LIMIT ?`);
  }

  repositories(by: 'pulls' | 'size', limit: number): RepositoryUsage[] {
    return (by === 'pulls' ? this.byPullsStmt : this.bySizeStmt).all(limit);
  }

  tags(limit: number): TagUsage[] {
    return this.tagsStmt.all(limit);
  }
}
