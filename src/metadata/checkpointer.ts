// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever commit pushes
// the WAL past 1000 pages: that commit then copies pages into the database file and fsyncs it, which
// on a busy disk holds the event loop for 100 ms and more (bench --only=scale). The server turns the
// automatic checkpoint off on its connection and a worker thread, with a connection of its own, runs a
// PASSIVE checkpoint every second instead: it never blocks the server's readers or writers, it only
// copies what no reader still needs. Should the worker die, automatic checkpoints come back on.
//
// A passive checkpoint alone does not bound the WAL: the WAL starts again from its beginning only when a
// write transaction begins after a checkpoint copied every frame, and background work that commits a
// slice per turn of the event loop (a hit flush, an eviction) always has written more by then. The WAL
// then grew by hundreds of megabytes per flush (bench --only=scale --quick: 700 MB for 14,000 manifest
// hits), which every page lookup and the disk pay for. So background writers call writeRoom() between
// slices: past maxWalFrames it asks the worker for a checkpoint now and waits for it, writing nothing
// meanwhile (the event loop stays free), and the next write restarts the WAL; journal_size_limit then
// truncates the file.
//
// The worker (a thread with its own V8 heap and SQLite connection, ~17 MB of RSS) starts only when the
// WAL first passes START_FRAMES (SQLite's own automatic checkpoint threshold), looked at once a second
// with one pread, or when a background writer asks for room: a mirror that writes little never pays for
// it.
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';

/** How often the worker checkpoints (and, before it runs, how often the WAL's length is looked at). */
const INTERVAL_MS = 1_000;
/** WAL frames past which the worker is started: 1000, SQLite's wal_autocheckpoint default (4 MiB). */
const START_FRAMES = 1_000;
/** WAL frames (pages of 4 KiB) past which background writers wait for a checkpoint: 64 MiB. */
const MAX_WAL_FRAMES = 16_384;
/** What a WAL restarted from its beginning is truncated to (bytes). */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;
/** A checkpoint asked for is waited for at most this long. */
const CHECKPOINT_WAIT_MS = 5_000;

// CommonJS evaluated in the worker: no file to resolve, under tsx or from the build alike.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
const checkpoint = (id) => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    if (id !== undefined) parentPort.postMessage({ id, log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message) });
  }
};
const timer = setInterval(() => checkpoint(undefined), workerData.interval);
parentPort.on('message', (m) => {
  if (m && m.checkpoint !== undefined) return checkpoint(m.checkpoint);
  clearInterval(timer); db.close(); process.exit(0);
});
`;

export interface CheckpointerOptions {
  /** WAL frames past which writeRoom() waits for a checkpoint (default MAX_WAL_FRAMES). */
  maxWalFrames?: number;
}

export class Checkpointer {
  private worker: Worker | undefined;
  /** Until the worker runs: the once-a-second look at the WAL's length. */
  private watch: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly maxWalFrames: number;
  /** The -shm file, whose header holds the WAL's length in frames (mxFrame). */
  private shm: number | undefined;
  private readonly shmPath: string;
  private nextId = 0;
  private readonly waiting = new Map<number, () => void>();
  private pending: Promise<void> | undefined;

  constructor(private readonly db: Database.Database, private readonly path: string, private readonly log: Logger, options: CheckpointerOptions = {}) {
    this.maxWalFrames = options.maxWalFrames ?? MAX_WAL_FRAMES;
    this.shmPath = `${path}-shm`;
    db.pragma('wal_autocheckpoint = 0');
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
    this.watch = setInterval(() => {
      if (this.walFrames() > START_FRAMES) this.startWorker();
    }, INTERVAL_MS);
    this.watch.unref();
  }

  /** Whether the worker thread has been started. */
  get started(): boolean {
    return this.worker !== undefined;
  }

  private startWorker(): Worker {
    if (this.worker) return this.worker;
    clearInterval(this.watch);
    this.watch = undefined;
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER, { eval: true, workerData: { module, path: this.path, interval: INTERVAL_MS } });
    this.worker = worker;
    worker.unref();
    const fallBack = (err?: unknown) => {
      this.release();
      if (this.stopped) return;
      this.stopped = true;
      this.log.warn({ err }, 'checkpoint worker stopped; checkpoints run in commits again');
      this.db.pragma('wal_autocheckpoint = 1000');
    };
    worker.on('message', (m: { id?: number; error?: string }) => {
      if (m.error !== undefined) this.log.warn({ error: m.error }, 'wal checkpoint failed');
      if (m.id !== undefined) {
        this.waiting.get(m.id)?.();
        this.waiting.delete(m.id);
      }
    });
    worker.once('error', fallBack);
    worker.once('exit', () => fallBack());
    return worker;
  }

  /**
   * The WAL's length in frames, from the wal-index header (mxFrame, a native-endian u32 at byte 16 of
   * the -shm file; https://www.sqlite.org/walformat.html). One pread; 0 when there is no WAL yet.
   */
  walFrames(): number {
    try {
      this.shm ??= openSync(this.shmPath, 'r');
      const header = Buffer.alloc(4);
      if (readSync(this.shm, header, 0, 4, 16) < 4) return 0;
      return endianness() === 'LE' ? header.readUInt32LE(0) : header.readUInt32BE(0);
    } catch {
      return 0;
    }
  }

  /**
   * For background writers, between two slices: undefined when the WAL is short, else a promise settled
   * when the worker has checkpointed it (or after CHECKPOINT_WAIT_MS), after which the next write
   * starts the WAL again from its beginning.
   */
  writeRoom(): Promise<void> | undefined {
    if (this.stopped || this.walFrames() <= this.maxWalFrames) return undefined;
    return (this.pending ??= this.checkpointNow().finally(() => (this.pending = undefined)));
  }

  private checkpointNow(): Promise<void> {
    const id = this.nextId++;
    let timer: NodeJS.Timeout | undefined;
    return new Promise<void>((resolve) => {
      this.waiting.set(id, resolve);
      timer = setTimeout(() => {
        this.waiting.delete(id);
        this.log.warn({ waitedMs: CHECKPOINT_WAIT_MS }, 'wal checkpoint took too long; writing on');
        resolve();
      }, CHECKPOINT_WAIT_MS);
      this.startWorker().postMessage({ checkpoint: id });
    }).finally(() => clearTimeout(timer));
  }

  private release(): void {
    for (const resolve of this.waiting.values()) resolve();
    this.waiting.clear();
  }

  /** Stops the worker (the database's own close checkpoints what is left). */
  async stop(): Promise<void> {
    if (this.shm !== undefined) closeSync(this.shm);
    this.shm = undefined;
    clearInterval(this.watch);
    this.watch = undefined;
    if (this.stopped) return;
    this.stopped = true;
    this.release();
    const worker = this.worker;
    if (!worker) return;
    // Referenced while it stops: an unreferenced worker's exit would not keep the process waiting for it.
    worker.ref();
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage('stop');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
    if (worker.threadId !== -1) await worker.terminate();
  }
}
