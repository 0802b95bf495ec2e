// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever commit pushes
// the WAL past 1000 pages: that commit then copies pages into the database file and fsyncs it, which
// on a busy disk holds the event loop for 100 ms and more (bench --only=scale). The server turns the
// automatic checkpoint off on its connection and a worker thread, with a connection of its own, runs a
// PASSIVE checkpoint every second instead: it never blocks the server's readers or writers, it only
// copies what no reader still needs. Should the worker die, automatic checkpoints come back on.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';

/** How often the worker checkpoints. */
const INTERVAL_MS = 1_000;

// CommonJS evaluated in the worker: no file to resolve, under tsx or from the build alike.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage({ error: String(err && err.message) }); }
}, workerData.interval);
parentPort.on('message', () => { clearInterval(timer); db.close(); process.exit(0); });
`;

export class Checkpointer {
  private readonly worker: Worker;
  private stopped = false;

  constructor(db: Database.Database, path: string, log: Logger) {
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER, { eval: true, workerData: { module, path, interval: INTERVAL_MS } });
    this.worker.unref();
    db.pragma('wal_autocheckpoint = 0');
    const fallBack = (err?: unknown) => {
      if (this.stopped) return;
      this.stopped = true;
      log.warn({ err }, 'checkpoint worker stopped; checkpoints run in commits again');
      db.pragma('wal_autocheckpoint = 1000');
    };
    this.worker.on('message', (m: { error?: string }) => log.warn({ error: m.error }, 'wal checkpoint failed'));
    this.worker.once('error', fallBack);
    this.worker.once('exit', () => fallBack());
  }

  /** Stops the worker (the database's own close checkpoints what is left). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Referenced while it stops: an unreferenced worker's exit would not keep the process waiting for it.
    this.worker.ref();
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage('stop');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
    if (this.worker.threadId !== -1) await this.worker.terminate();
  }
}
