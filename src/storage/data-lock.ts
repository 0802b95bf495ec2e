// Who owns a data directory. Exactly one process may write its database and store at a time: a serving
// mirror, or an admin command run while no mirror serves it. The owner holds <dataDir>/longshore.lock,
// created with O_EXCL and holding JSON: pid, host, role and, for a server, the URL of its admin API, so
// that a command finding a server there sends it the work instead of writing beside it.
//
// A lock whose process is gone (kill -9, a crash, a container restarted) is stale and taken over: the
// pid is checked with signal 0, on this host only. A pid equal to ours is stale too (a container's
// pid 1 after a restart). A lock written on another host (a shared volume) is never taken over.
import { hostname } from 'node:os';
import { open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { LongshoreError } from '../errors.js';

export interface LockOwner {
  pid: number;
  host: string;
  role: 'server' | 'command';
  /** For a server: where its admin API answers (set once it listens). */
  adminUrl?: string;
  /**
   * For a server whose admin URL is HTTPS: the SHA-256 fingerprint of the certificate it serves there.
   * The certificate names the host clients use, not loopback, so a command checks this instead.
   */
  adminCertificate?: string;
  /** What a command is doing, for the message others see ("gc", "import"). */
  task?: string;
  since: string;
}

export class DataLock {
  private released = false;

  private constructor(readonly path: string, private owner: LockOwner) {}

  /**
   * Takes the lock, or throws LS_DATA_DIR_LOCKED naming its live owner. `isAlive` is injectable for
   * tests; by default signal 0 tells whether a local pid exists.
   */
  static async acquire(path: string, role: LockOwner['role'], task?: string, isAlive: (pid: number) => boolean = processExists): Promise<DataLock> {
    const owner: LockOwner = { pid: process.pid, host: hostname(), role, ...(task ? { task } : {}), since: new Date().toISOString() };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o644);
        try {
          await handle.writeFile(`${JSON.stringify(owner)}\n`);
        } finally {
          await handle.close();
        }
        return new DataLock(path, owner);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const current = await readOwner(path);
      if (current && !isStale(current, isAlive)) throw lockedError(path, current);
      // Stale or unreadable (a crash mid-write): remove it and try again; O_EXCL settles a race.
      await rm(path, { force: true });
    }
    throw lockedError(path, await readOwner(path));
  }

  /** The live owner of the lock at `path`, if any: a command asks it before doing work itself. */
  static async owner(path: string, isAlive: (pid: number) => boolean = processExists): Promise<LockOwner | undefined> {
    const current = await readOwner(path);
    return current && !isStale(current, isAlive) ? current : undefined;
  }

  /** Records where the server's admin API answers (after it listens) and, for HTTPS, its certificate's fingerprint, atomically. */
  async announce(adminUrl: string, adminCertificate?: string): Promise<void> {
    const { adminCertificate: _earlier, ...owner } = this.owner;
    this.owner = { ...owner, adminUrl, ...(adminCertificate ? { adminCertificate } : {}) };
    const temp = `${this.path}.${process.pid}.tmp`;
    await writeFile(temp, `${JSON.stringify(this.owner)}\n`);
    await rename(temp, this.path);
  }

  /** Removes the lock if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const current = await readOwner(this.path);
    if (current && current.pid === this.owner.pid && current.host === this.owner.host) await rm(this.path, { force: true });
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockOwner>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return undefined;
    return parsed as LockOwner;
  } catch {
    return undefined;
  }
}

function isStale(owner: LockOwner, isAlive: (pid: number) => boolean): boolean {
  if (owner.host !== hostname()) return false;
  if (owner.pid === process.pid) return true;
  return !isAlive(owner.pid);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockedError(path: string, owner: LockOwner | undefined): LongshoreError {
  const who = owner
    ? owner.role === 'server'
      ? `a running Longshore server (pid ${owner.pid} on ${owner.host}${owner.adminUrl ? `, ${owner.adminUrl}` : ''})`
      : `a running longshore ${owner.task ?? 'command'} (pid ${owner.pid} on ${owner.host})`
    : 'another process';
  return new LongshoreError('LS_DATA_DIR_LOCKED', `the data directory is in use by ${who}; lock file ${path}`, { path, ...(owner ? { pid: owner.pid, host: owner.host, role: owner.role } : {}) });
}
