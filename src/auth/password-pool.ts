// Password checks off the event loop. A bcrypt comparison costs ~100 ms of CPU at cost 10 — by design —
// and bcryptjs's async API runs it on the main thread in 100 ms slices, so a burst of logins (or an
// attacker's) stalled every request of the mirror for seconds. Here a few worker threads do the
// comparisons, one each at a time, and a bounded queue waits for them; beyond it a login is refused with
// 429 at once rather than queued without end. Threads start on the first check, so a mirror nobody logs
// in to pays nothing, and `close` terminates them.
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import { ConfigError, LongshoreError } from '../errors.js';
import type { CheckReply } from './bcrypt-worker.js';

export interface PasswordChecker {
  /** Whether `password` matches the bcrypt `hash`. */
  check(password: string, hash: string): Promise<boolean>;
}

/** bcryptjs on the calling thread: for tools and tests, never for the server. */
export const inlineChecker: PasswordChecker = {
  check: (password, hash) => bcrypt.compare(password, hash),
};

export interface PasswordPoolOptions {
  /** Checks that run at once, one thread each. */
  threads: number;
  /** Checks that may wait for a thread; one more is refused with LS_LOGIN_QUEUE_FULL. */
  maxWaiting: number;
}

/** Seconds a client refused for a full queue is told to wait: the queue drains in about that. */
const QUEUE_FULL_RETRY_AFTER = '1';

// Compiled, this module is dist/auth/password-pool.js next to bcrypt-worker.js. Under tsx (tests, bench)
// it is src/auth/password-pool.ts, and the worker needs tsx's loader too — which Node 20 does not apply
// to a worker's entry module when given as `execArgv: ['--import', 'tsx']`, so the worker registers it.
const UNDER_TSX = extname(fileURLToPath(import.meta.url)) === '.ts';
const WORKER_URL = new URL(`./bcrypt-worker${UNDER_TSX ? '.ts' : '.js'}`, import.meta.url);

// The worker needs no flag of the process's (some, e.g. --input-type, would even stop it from starting).
function startWorker(): Worker {
  if (!UNDER_TSX) return new Worker(WORKER_URL, { execArgv: [] });
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;
  return new Worker(bootstrap, { eval: true, execArgv: [] });
}

interface Job {
  id: number;
  password: string;
  hash: string;
  resolve(matches: boolean): void;
  reject(err: Error): void;
}

export class PasswordPool implements PasswordChecker {
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly running = new Map<Worker, Job>();
  private readonly waiting: Job[] = [];
  private nextId = 0;
  private closed = false;
  /** Checks accepted so far (for tests and metrics). */
  checks = 0;

  constructor(private readonly options: PasswordPoolOptions = { threads: 2, maxWaiting: 64 }) {
    if (options.threads < 1 || options.maxWaiting < 0) throw new ConfigError('a password pool needs a thread and a queue of 0 or more');
  }

  /** Threads alive now: 0 before the first check and after `close`. */
  get threads(): number {
    return this.workers.size;
  }

  check(password: string, hash: string): Promise<boolean> {
    if (this.closed) return Promise.reject(new LongshoreError('LS_INTERNAL', 'password checks are closed'));
    if (this.running.size + this.waiting.length >= this.options.threads + this.options.maxWaiting) {
      return Promise.reject(new LongshoreError('LS_LOGIN_QUEUE_FULL', 'too many logins at once; try again shortly', { retryAfter: QUEUE_FULL_RETRY_AFTER }));
    }
    this.checks++;
    return new Promise((resolve, reject) => {
      this.waiting.push({ id: this.nextId++, password, hash, resolve, reject });
      this.dispatch();
    });
  }

  /** Refuses waiting checks and terminates the threads. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.reject(new LongshoreError('LS_INTERNAL', 'password checks are closed'));
    await Promise.all([...this.workers].map((worker) => worker.terminate()));
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const worker = this.idle.pop() ?? (this.workers.size < this.options.threads ? this.spawn() : undefined);
      if (!worker) return;
      const job = this.waiting.shift()!;
      this.running.set(worker, job);
      worker.ref();
      worker.postMessage({ id: job.id, password: job.password, hash: job.hash });
    }
  }

  private spawn(): Worker {
    const worker = startWorker();
    this.workers.add(worker);
    worker.on('message', (reply: CheckReply) => {
      const job = this.running.get(worker);
      if (job?.id !== reply.id) return;
      this.running.delete(worker);
      // An idle thread must not keep the process alive.
      worker.unref();
      this.idle.push(worker);
      job.resolve(reply.matches);
      this.dispatch();
    });
    const lost = (cause: unknown) => {
      if (!this.workers.delete(worker)) return;
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
      const job = this.running.get(worker);
      this.running.delete(worker);
      job?.reject(new LongshoreError('LS_INTERNAL', 'password check failed', undefined, { cause }));
      // A replacement thread takes the waiting checks.
      if (!this.closed) this.dispatch();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`password thread exited with code ${code}`)));
    return worker;
  }
}
