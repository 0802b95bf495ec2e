import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { copyAdmitted } from '../../src/storage/admitted-copy.js';

describe('copyAdmitted', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-admitted-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('copies a body whose every chunk is admitted', async () => {
    const body = new PassThrough();
    const path = join(dir, 'whole');
    const copied = copyAdmitted(body, createWriteStream(path), () => undefined);
    for (let i = 0; i < 5; i++) body.write(Buffer.alloc(1000, i));
    body.end();
    await copied;
    assert.equal((await readFile(path)).length, 5000);
  });

  it('stops before the first refused chunk: nothing past the limit reaches the file, the body is left paused, not destroyed', async () => {
    const body = new PassThrough();
    const path = join(dir, 'limited');
    let admitted = 0;
    const refusal = new Error('over the limit');
    const copied = copyAdmitted(body, createWriteStream(path), (bytes) => {
      if (admitted + bytes > 3500) throw refusal;
      admitted += bytes;
    });
    for (let i = 0; i < 10; i++) body.write(Buffer.alloc(1000, i));
    await assert.rejects(copied, (err) => err === refusal);
    assert.equal(admitted, 3000);
    // Writes still buffered when the copy stops are dropped; the caller truncates to where it started anyway.
    assert.ok((await stat(path)).size <= 3000, 'nothing beyond the admitted bytes reached the file');
    assert.equal(body.destroyed, false);
    assert.equal(body.isPaused(), true);
  });

  it('rejects a body that broke before the copy began (the client left while the file was being opened)', async () => {
    const aborted = new PassThrough();
    aborted.on('error', () => undefined); // Node's HTTP server has its own listener on a request
    aborted.write(Buffer.alloc(100));
    aborted.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    await new Promise((resolve) => aborted.once('close', resolve));
    const out = createWriteStream(join(dir, 'late'));
    await assert.rejects(copyAdmitted(aborted, out, () => undefined), { code: 'ECONNRESET' });
    assert.equal(out.closed, true);

    const closed = new PassThrough();
    closed.destroy();
    await new Promise((resolve) => closed.once('close', resolve));
    await assert.rejects(copyAdmitted(closed, createWriteStream(join(dir, 'late2')), () => undefined), /ended early/);
  });

  it('rejects when the body breaks, after the file is closed', async () => {
    const body = new PassThrough();
    const out = createWriteStream(join(dir, 'broken'));
    const copied = copyAdmitted(body, out, () => undefined);
    body.write(Buffer.alloc(100));
    body.destroy(new Error('aborted'));
    await assert.rejects(copied, /aborted/);
    assert.equal(out.closed, true);
  });
});
