// Opens the SQLite metadata database the undici way: WAL, statements prepared once (catalog.ts),
// a versioned schema applied in order inside transactions, tracked in PRAGMA user_version.
import Database from 'better-sqlite3';
import { LongshoreError } from '../errors.js';

/** Each entry moves the schema one version up. Never edit a shipped entry: append a new one. */
const MIGRATIONS: readonly string[] = [
  // 1: content, which repositories hold it, what manifests reference, tag resolutions.
  `
  CREATE TABLE content (
    digest       TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    -- set when the content is a manifest (its Content-Type); NULL for plain blobs
    media_type   TEXT,
    created_at   INTEGER NOT NULL,   -- ms since epoch
    last_access  INTEGER NOT NULL,   -- ms since epoch
    hits         INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;

  CREATE TABLE repository_content (
    upstream    TEXT NOT NULL,
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    PRIMARY KEY (upstream, repository, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repository_content_digest ON repository_content (digest);

  CREATE TABLE manifest_refs (
    manifest  TEXT NOT NULL,
    child     TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (manifest, child)
  ) WITHOUT ROWID;
  CREATE INDEX manifest_refs_child ON manifest_refs (child);

  -- A tag's resolution as the upstream answered it for one Accept list (accept_key, see media-types.ts).
  CREATE TABLE tags (
    upstream    TEXT NOT NULL,
    repository  TEXT NOT NULL,
    tag         TEXT NOT NULL,
    accept_key  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    checked_at  INTEGER NOT NULL,  -- last time the upstream confirmed it, ms since epoch
    PRIMARY KEY (upstream, repository, tag, accept_key)
  ) WITHOUT ROWID;
  `,
  // 2: OCI 1.1 referrers of pushed manifests that name a subject.
  `
  CREATE TABLE referrers (
    upstream       TEXT NOT NULL,
    repository     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    manifest       TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    size           INTEGER NOT NULL,
    artifact_type  TEXT,
    annotations    TEXT,   -- JSON object, or NULL
    PRIMARY KEY (upstream, repository, subject, manifest)
  ) WITHOUT ROWID;
  CREATE INDEX referrers_manifest ON referrers (manifest);
  `,
  // 3: blob upload sessions of local repositories, so that a restart does not end them.
  `
  CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    received    INTEGER NOT NULL,  -- bytes in <dataDir>/uploads/<id> that a request completed
    touched     INTEGER NOT NULL   -- last write, ms since epoch (uploadTimeout counts from here)
  ) WITHOUT ROWID;
  `,
  // 4: who opened each upload session, so that local.maxUploadsPerClient counts resumed sessions too.
  `
  ALTER TABLE uploads ADD COLUMN client TEXT NOT NULL DEFAULT '';  -- 'user:<name>', else 'address:<ip>'
  `,
  // 5: the size a manifest's descriptor declares for each blob it references, so that a download of
  // that blob is cut off at the declared size (an upstream sending more is lying); NULL when unknown.
  `
  ALTER TABLE manifest_refs ADD COLUMN size INTEGER;
  `,
  // 6: eviction without scans (cache/policy.ts). Each row carries its eviction priority, kept up to date
  // as hits are flushed (a manifest's hits reach the content it names), so that choosing a batch is an
  // index range; content a local repository holds or a pin covers is flagged in "keep" and left out of
  // that index. The totals are kept by triggers, so that start-up does not sum a million rows.
  `
  ALTER TABLE content ADD COLUMN priority REAL NOT NULL DEFAULT 0;   -- lowest is evicted first
  ALTER TABLE content ADD COLUMN frequency INTEGER NOT NULL DEFAULT 0; -- requests for it or an image naming it
  ALTER TABLE content ADD COLUMN keep INTEGER NOT NULL DEFAULT 0;    -- bit 1: held by a local repository; bit 2: pinned
  UPDATE content SET frequency = hits + 1, priority = hits + 1;
  UPDATE content SET keep = 1 WHERE digest IN (SELECT digest FROM repository_content WHERE upstream = '@local');
  CREATE INDEX content_eviction ON content (priority, digest) WHERE keep = 0;
  CREATE INDEX content_kept ON content (keep) WHERE keep <> 0;

  CREATE TABLE content_totals (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    bytes    INTEGER NOT NULL,
    objects  INTEGER NOT NULL
  );
  INSERT INTO content_totals SELECT 0, COALESCE(SUM(size), 0), COUNT(*) FROM content;
  CREATE TRIGGER content_totals_insert AFTER INSERT ON content BEGIN
    UPDATE content_totals SET bytes = bytes + NEW.size, objects = objects + 1 WHERE id = 0;
  END;
  CREATE TRIGGER content_totals_delete AFTER DELETE ON content BEGIN
    UPDATE content_totals SET bytes = bytes - OLD.size, objects = objects - 1 WHERE id = 0;
  END;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function openDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a commit survives a process crash; only an OS crash can lose the last ones,
  // and content files are fsynced before their rows are written, so the worst case is an orphan file.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  // 32 MiB of page cache (the default is 2 MiB): eviction and hit flushes touch rows all over a
  // catalogue of a million rows, and every page read from the OS costs a system call.
  db.pragma('cache_size = -32768');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new LongshoreError('LS_DATABASE_TOO_NEW', `database schema version ${current} is newer than this Longshore (${SCHEMA_VERSION}); refusing to open it`, { version: current, supported: SCHEMA_VERSION });
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
