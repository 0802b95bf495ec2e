// One owner per data directory: a live owner blocks others, a dead one's lock is taken over.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLongshoreError } from '../../src/errors.js';
import { DataLock } from '../../src/storage/data-lock.js';

describe('DataLock', () => {
  let dir: string;
  let path: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-lock-'));
    path = join(dir, 'longshore.lock');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('refuses a second owner while the first lives, naming it, and lets it go on release', async () => {
    const server = await DataLock.acquire(path, 'server');
    await server.announce('http://127.0.0.1:5000');
    // another process's view: the owner is a live server with its admin URL
    const otherPid = process.pid + 1;
    const asSeen = JSON.parse(await readFile(path, 'utf8')) as { adminUrl: string };
    assert.equal(asSeen.adminUrl, 'http://127.0.0.1:5000');
    await writeFile(path, JSON.stringify({ ...asSeen, pid: otherPid }));
    await assert.rejects(DataLock.acquire(path, 'command', 'gc', () => true), (err: unknown) =>
      isLongshoreError(err, 'LS_DATA_DIR_LOCKED') && /running Longshore server \(pid \d+ on .*, http:\/\/127\.0\.0\.1:5000\)/.test(err.message));
    assert.equal((await DataLock.owner(path, () => true))?.adminUrl, 'http://127.0.0.1:5000');
    // release removes only a lock that is still ours: this one now names another pid
    await server.release();
    assert.ok(await DataLock.owner(path, () => true));
    await rm(path);
  });

  it('takes over the lock of a process that is gone (kill -9), and of our own pid (a restarted container)', async () => {
    await writeFile(path, JSON.stringify({ pid: 999_999, host: hostname(), role: 'server', since: 'x' }));
    assert.equal(await DataLock.owner(path, () => false), undefined);
    const lock = await DataLock.acquire(path, 'command', 'import', () => false);
    assert.equal(JSON.parse(await readFile(path, 'utf8')).task, 'import');
    await lock.release();
    await writeFile(path, JSON.stringify({ pid: process.pid, host: hostname(), role: 'server', since: 'x' }));
    const again = await DataLock.acquire(path, 'server', undefined, () => true);
    await again.release();
    await assert.rejects(readFile(path), { code: 'ENOENT' });
  });

  it('never takes over a lock written on another host (a shared volume)', async () => {
    await writeFile(path, JSON.stringify({ pid: 1, host: 'some-other-host', role: 'server', since: 'x' }));
    await assert.rejects(DataLock.acquire(path, 'command', 'gc', () => false), (err: unknown) => isLongshoreError(err, 'LS_DATA_DIR_LOCKED'));
    await rm(path);
  });

  it('replaces an unreadable lock (a crash while writing it)', async () => {
    await writeFile(path, '{"pid": 12');
    const lock = await DataLock.acquire(path, 'server');
    await lock.release();
  });
});
