// Issue 17: background writes (hit flushes, eviction) run in slices that hold the event loop briefly, and
// what a slice promises must hold: its hits are written exactly once, its commit counts toward its time,
// the WAL it leaves behind stays bounded, and no single statement grows with the catalogue.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import pino from 'pino';
import { Catalog, LIFT_PARENTS } from '../../src/metadata/catalog.js';
import { Checkpointer } from '../../src/metadata/checkpointer.js';
import { openDatabase } from '../../src/metadata/database.js';
import { waitFor } from '../support/wait.js';
import type { Digest } from '../../src/registry/reference.js';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const hex = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;

function fill(db: Database.Database, rows: number, first = 1): void {
  const insert = db.prepare('INSERT INTO content (digest, size, media_type, created_at, last_access, hits, priority, frequency, keep) VALUES (?, 1000, NULL, 0, 0, 0, ?, 1, 0)');
  db.transaction(() => {
    for (let i = first; i < first + rows; i++) insert.run(hex(i), i % 97);
  })();
}

describe('catalog slices', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-slices-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the hits of a slice whose transaction failed pending, and writes each hit exactly once', async () => {
    const db = openDatabase(join(dir, 'fail.db'));
    try {
      fill(db, 50);
      const catalog = new Catalog(db, () => 1_000);
      for (let i = 1; i <= 50; i++) for (let n = 0; n < (i % 3) + 1; n++) catalog.recordHit(hex(i));
      // The 30th digest's update fails (as a busy or full database would): the slice rolls back.
      db.exec(`CREATE TEMP TRIGGER fail_once BEFORE UPDATE OF hits ON content WHEN OLD.digest = '${hex(30)}' BEGIN SELECT RAISE(ABORT, 'injected'); END`);
      assert.throws(() => catalog.flush(), /injected/);
      assert.equal(catalog.pendingCount, 50, 'a rolled-back slice forgets none of its hits');
      db.exec('DROP TRIGGER fail_once');
      assert.equal(await catalog.flushSlices(0), 50);
      assert.equal(catalog.pendingCount, 0);
      for (let i = 1; i <= 50; i++) assert.equal(catalog.content(hex(i))?.hits, (i % 3) + 1, `hits of row ${i}`);
    } finally {
      db.close();
    }
  });

  it('runs one flush at a time: callers who ask meanwhile wait for it, and no turn of the event loop gets two slices', async () => {
    const db = openDatabase(join(dir, 'single.db'));
    try {
      fill(db, 400);
      const catalog = new Catalog(db, () => 1_000);
      for (let i = 1; i <= 400; i++) catalog.recordHit(hex(i));
      // Count slices per turn: a turn ends when a setImmediate queued at its start runs.
      let slicesThisTurn = 0;
      let most = 0;
      let turns = 0;
      let running = true;
      const tick = () => {
        most = Math.max(most, slicesThisTurn);
        slicesThisTurn = 0;
        turns++;
        if (running) setImmediate(tick);
      };
      setImmediate(tick);
      const flush = catalog.flush.bind(catalog);
      catalog.flush = (budgetMs?: number) => {
        slicesThisTurn++;
        return flush(budgetMs);
      };
      // The timer, the evictor and the bench all asking while a flush runs (1 ms slices: several slices).
      const asked = [catalog.flushSlices(0), catalog.flushSlices(0), catalog.flushSlices(0)];
      let written: number[];
      try {
        written = await Promise.all(asked);
      } finally {
        running = false;
      }
      assert.equal(asked[0], asked[1], 'a second caller joins the running flush');
      assert.equal(asked[0], asked[2]);
      assert.deepEqual(written, [400, 400, 400]);
      assert.equal(catalog.pendingCount, 0);
      assert.ok(turns > 1, `the flush spanned turns of the event loop (${turns})`);
      assert.equal(most, 1, 'never two slices in one turn');
      for (let i = 1; i <= 400; i += 57) assert.equal(catalog.content(hex(i))?.hits, 1, `hits of row ${i}`);
      // Once it is done, a new call starts a new flush.
      catalog.recordHit(hex(1));
      assert.equal(await catalog.flushSlices(0), 1);
      assert.equal(catalog.content(hex(1))?.hits, 2);
    } finally {
      db.close();
    }
  });

  it('leaves room in a slice for its commit, as long as the last commits took', () => {
    const db = openDatabase(join(dir, 'commit.db'));
    try {
      const catalog = new Catalog(db, () => 1_000);
      assert.equal(catalog.commitEstimateMs, 0);
      const insert = db.prepare('INSERT INTO content (digest, size, media_type, created_at, last_access, hits, priority, frequency, keep) VALUES (?, 1, NULL, 0, 0, 0, 0, 1, 0)');
      // A slice that dirties thousands of pages: its commit writes them all into the WAL.
      catalog.inSlice(Infinity, () => {
        for (let i = 1; i <= 20_000; i++) insert.run(hex(i));
      });
      const estimate = catalog.commitEstimateMs;
      assert.ok(estimate > 0, 'the commit was timed');
      let room = Infinity;
      catalog.inSlice(100, (deadline) => {
        room = deadline - performance.now();
      });
      assert.ok(room <= 100 - estimate, `the deadline leaves the commit's ${estimate} ms (room ${room} ms)`);
      assert.ok(room > 0);
    } finally {
      db.close();
    }
  });

  it('bounds the WAL: between slices, a long WAL is checkpointed before the next write', async () => {
    const path = join(dir, 'wal.db');
    const db = openDatabase(path);
    const maxWalFrames = 500;
    const checkpointer = new Checkpointer(db, path, pino({ level: 'silent' }), { maxWalFrames });
    const seen: number[] = [];
    const catalog = new Catalog(db, () => 1_000, {
      writeRoom: () => {
        seen.push(checkpointer.walFrames());
        return checkpointer.writeRoom();
      },
    });
    try {
      fill(db, 30_000);
      db.pragma('wal_checkpoint(TRUNCATE)');
      for (let round = 0; round < 3; round++) for (let i = 1; i <= 30_000; i += 1) catalog.recordHit(hex(i));
      await catalog.flushSlices(1);
      assert.equal(catalog.pendingCount, 0);
      const restarts = seen.filter((frames, i) => i > 0 && frames < seen[i - 1]!).length;
      assert.ok(restarts > 0, `the WAL started again from its beginning (frames seen: ${seen.slice(0, 20).join(', ')} …)`);
      // One slice (1 ms of row updates) past the limit at most, never the whole flush.
      const total = seen.length;
      assert.ok(Math.max(...seen) < maxWalFrames * 4, `WAL frames stayed near ${maxWalFrames}: max ${Math.max(...seen)} over ${total} slices`);
    } finally {
      await checkpointer.stop();
      db.close();
    }
  });

  it('starts its checkpoint thread only once the WAL passes 1000 frames, and the thread then keeps the WAL short', async () => {
    const path = join(dir, 'lazy.db');
    const db = openDatabase(path);
    const checkpointer = new Checkpointer(db, path, pino({ level: 'silent' }));
    try {
      fill(db, 10);
      // Two looks at the WAL (one a second) while it is short: no thread (a thread is ~17 MB of RSS).
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.ok(checkpointer.walFrames() < 1_000);
      assert.equal(checkpointer.started, false);
      // Automatic checkpoints are off on this connection: the WAL only grows until the thread runs.
      let first = 11;
      while (checkpointer.walFrames() <= 1_000) {
        fill(db, 20_000, first);
        first += 20_000;
      }
      await waitFor(() => checkpointer.started, { what: 'the checkpoint thread to start', timeoutMs: 10_000 });
      // Once its passive checkpoint has copied every frame, the next write starts the WAL again from its beginning.
      await waitFor(() => {
        fill(db, 1, first++);
        return checkpointer.walFrames() < 100;
      }, { what: 'the WAL to start again after a checkpoint', timeoutMs: 15_000, intervalMs: 200 });
    } finally {
      await checkpointer.stop();
      db.close();
    }
  });

  it(`lifts a candidate to its image by looking at ${LIFT_PARENTS} of the manifests naming it, however many do`, () => {
    const db = openDatabase(join(dir, 'lift.db'));
    try {
      const catalog = new Catalog(db, () => 1_000);
      const base = hex(1);
      const content = db.prepare('INSERT INTO content (digest, size, media_type, created_at, last_access, hits, priority, frequency, keep) VALUES (?, 10, ?, 0, 0, 0, ?, 1, 0)');
      const ref = db.prepare("INSERT INTO manifest_refs (manifest, child, kind) VALUES (?, ?, 'blob')");
      content.run(base, null, 1);
      // 200 manifests name the base layer; only the one last in digest order ranks higher than it.
      for (let i = 0; i < 200; i++) {
        content.run(hex(1_000 + i), MANIFEST, i === 199 ? 50 : 0.5);
        ref.run(hex(1_000 + i), base);
      }
      const candidate = { digest: base, size: 10, priority: 1 };
      assert.equal(catalog.liftToImage(candidate), false, 'the 200th manifest is past the bound');
      db.prepare('UPDATE content SET priority = 50 WHERE digest = ?').run(hex(1_000));
      assert.equal(catalog.liftToImage(candidate), true, 'the first manifest is within it');
      assert.equal(catalog.content(base)?.priority, 50);
    } finally {
      db.close();
    }
  });
});
