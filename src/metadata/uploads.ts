// Blob upload sessions of local repositories, as rows: which repository, who opened it (for the per-client
// cap), how many bytes the session's file holds that a request completed, and when it was last written.
// LocalRegistry keeps the live sessions in memory and writes each change here, so that a restart resumes them.
import type Database from 'better-sqlite3';

export interface UploadRow {
  id: string;
  repository: string;
  /** 'user:<name>' with client auth on, else 'address:<remote address>'; '' for sessions of an older version. */
  client: string;
  received: number;
  touched: number;
}

export class UploadTable {
  private readonly insertStmt;
  private readonly updateStmt;
  private readonly deleteStmt;
  private readonly allStmt;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare('INSERT INTO uploads (id, repository, client, received, touched) VALUES (@id, @repository, @client, @received, @touched)');
    this.updateStmt = db.prepare('UPDATE uploads SET received = ?, touched = ? WHERE id = ?');
    this.deleteStmt = db.prepare('DELETE FROM uploads WHERE id = ?');
    this.allStmt = db.prepare('SELECT id, repository, client, received, touched FROM uploads');
  }

  insert(row: UploadRow): void {
    this.insertStmt.run(row);
  }

  update(id: string, received: number, touched: number): void {
    this.updateStmt.run(received, touched, id);
  }

  delete(id: string): void {
    this.deleteStmt.run(id);
  }

  all(): UploadRow[] {
    return this.allStmt.all() as UploadRow[];
  }
}
