import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { BlobFill } from '../../src/registry/blob-fill.js';
import type { Digest } from '../../src/registry/reference.js';
import { ChunkPool } from '../../src/storage/chunk-pool.js';
import { ContentStore } from '../../src/storage/content-store.js';
import { StorePaths } from '../../src/storage/paths.js';
import { Scavenger } from '../../src/storage/scavenger.js';
import { waitFor } from '../support/wait.js';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

function collect(stream: Readable): Promise<{ data: Buffer; error?: Error }> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ data: Buffer.concat(chunks) }));
    stream.on('error', (error) => resolve({ data: Buffer.concat(chunks), error }));
  });
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('BlobFill', () => {
  let dir: string;
  let store: ContentStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-fill-'));
    store = new ContentStore(new StorePaths(dir));
    await store.init();
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function fill(content: Buffer, declared: Digest = digestOf(content), size: number | undefined = content.length) {
    const source = new PassThrough();
    const commits: number[] = [];
    const writer = await store.createWriter(declared, size);
    const blob = new BlobFill(declared, size, writer, source, (n) => void commits.push(n));
    return { source, blob, commits };
  }

  it('holds the last byte back from readers until the digest is verified', async () => {
    const content = Buffer.from('0123456789abcdef'.repeat(1000));
    const { source, blob, commits } = await fill(content);
    const reader = blob.reader();
    let received = 0;
    reader.on('data', (c: Buffer) => (received += c.length));
    source.write(content);
    await waitFor(() => received >= content.length - 1, { what: 'bytes reach the reader', timeoutMs: 30_000 });
    await tick();
    assert.equal(received, content.length - 1, 'all but the last byte, until the body ends and is verified');
    source.end();
    await blob.done;
    await waitFor(() => received === content.length, { what: 'last byte released', timeoutMs: 30_000 });
    assert.deepEqual(commits, [content.length]);
    assert.deepEqual(await readFile(store.paths.content(digestOf(content))), content);
  });

  it('stored() counts every byte as it is written and resolves once the blob is committed, with no reader', async () => {
    const content = Buffer.alloc(3 * 1024 * 1024 + 3, 9);
    const { source, blob, commits } = await fill(content);
    let counted = 0;
    const stored = blob.stored((n) => (counted += n));
    source.write(content.subarray(0, 1024 * 1024));
    await waitFor(() => counted >= 1024 * 1024, { what: 'progress before the end', timeoutMs: 30_000 });
    assert.equal(blob.readers, 0, 'nothing reads the bytes back');
    source.end(content.subarray(1024 * 1024));
    assert.equal(await stored, content.length);
    assert.equal(counted, content.length, 'each byte counted once');
    assert.deepEqual(commits, [content.length], 'resolved after the commit');
    assert.deepEqual(await readFile(store.paths.content(digestOf(content))), content);
  });

  it('stored() throws when the download turns out corrupt', async () => {
    const content = Buffer.from('not what the digest names');
    const { source, blob } = await fill(content, digestOf(Buffer.from('something else')));
    const stored = blob.stored();
    source.end(content);
    await assert.rejects(stored, /does not match digest/);
  });

  it('streams to a late joiner and to ranged readers from the same download', async () => {
    const content = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 0xff;
    const { source, blob } = await fill(content);
    const early = collect(blob.reader());
    source.write(content.subarray(0, 1024 * 1024));
    await tick();
    const late = collect(blob.reader());
    const ranged = collect(blob.reader({ start: 100, end: 2 * 1024 * 1024 + 5 }));
    source.end(content.subarray(1024 * 1024));
    await blob.done;
    assert.deepEqual((await early).data, content);
    assert.deepEqual((await late).data, content);
    assert.deepEqual((await ranged).data, content.subarray(100, 2 * 1024 * 1024 + 6));
  });

  it('reports every downloaded byte to its pool\'s scavenger once it is on disk', async () => {
    class Counting extends Scavenger {
      total = 0;
      override dropped(bytes: number): void {
        this.total += bytes;
      }
    }
    const counting = new Counting(undefined);
    const content = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    const source = new PassThrough();
    const writer = await store.createWriter(digestOf(content), content.length);
    const blob = new BlobFill(digestOf(content), content.length, writer, source, () => undefined, {
      chunks: new ChunkPool({ chunkSize: 1024 * 1024, maxFree: 2, scavenger: counting }),
    });
    source.write(content.subarray(0, 1024 * 1024));
    await waitFor(() => counting.total === 1024 * 1024, { what: 'first part on disk', timeoutMs: 30_000 });
    source.end(content.subarray(1024 * 1024));
    await blob.done;
    assert.equal(counting.total, content.length);
  });

  it('commits a download that spans several background flushes, and cancels one that fails after them', async () => {
    const content = Buffer.alloc(40 * 1024 * 1024 + 17);
    for (let i = 0; i < content.length; i += 4096) content[i] = (i / 4096) & 0xff;
    const { source, blob, commits } = await fill(content);
    const reader = collect(blob.reader());
    for (let at = 0; at < content.length; at += 4 * 1024 * 1024) source.write(content.subarray(at, at + 4 * 1024 * 1024));
    source.end();
    await blob.done;
    assert.deepEqual(commits, [content.length]);
    assert.ok((await reader).data.equals(content));
    assert.ok((await readFile(store.paths.content(digestOf(content)))).equals(content));

    const other = Buffer.alloc(20 * 1024 * 1024, 1);
    const failing = await fill(other, digestOf(Buffer.from('not it')));
    failing.source.end(other);
    await assert.rejects(failing.blob.done, { code: 'LS_CONTENT_MISMATCH' });
    await waitFor(async () => (await readdir(store.paths.tmp)).length === 0, { what: 'temp file removed', timeoutMs: 30_000 });
  });

  it('fails every reader and removes the temp file when the digest does not match', async () => {
    const content = Buffer.from('the real content');
    const wrong = digestOf(Buffer.from('something else'));
    const { source, blob, commits } = await fill(content, wrong);
    const readers = [collect(blob.reader()), collect(blob.reader())];
    source.end(content);
    await assert.rejects(blob.done, { code: 'LS_CONTENT_MISMATCH' });
    for (const r of await Promise.all(readers)) {
      assert.ok(r.error, 'reader must fail');
      assert.ok(r.data.length < content.length, 'never the whole body');
    }
    assert.deepEqual(commits, []);
    assert.deepEqual(await readdir(store.paths.tmp), []);
    assert.equal(await store.size(wrong), undefined);
  });

  it('fails readers when the source breaks, and a size mismatch is an error', async () => {
    const content = Buffer.alloc(100_000, 1);
    const { source, blob } = await fill(content);
    const reader = collect(blob.reader());
    source.write(content.subarray(0, 50_000));
    await tick();
    source.destroy(new Error('connection reset'));
    await assert.rejects(blob.done);
    const r = await reader;
    assert.ok(r.error);
    assert.ok(r.data.length < content.length);

    const short = await fill(content, digestOf(content), content.length + 1);
    short.source.end(content);
    await assert.rejects(short.blob.done, { code: 'LS_CONTENT_MISMATCH' });
    assert.deepEqual(await readdir(store.paths.tmp), []);
  });

  it('keeps downloading for other readers when one reader goes away', async () => {
    const content = Buffer.alloc(2 * 1024 * 1024, 9);
    const { source, blob } = await fill(content);
    const leaving = blob.reader();
    const staying = collect(blob.reader());
    leaving.resume();
    source.write(content.subarray(0, 1024));
    await tick();
    leaving.destroy();
    source.end(content.subarray(1024));
    await blob.done;
    assert.deepEqual((await staying).data, content);
    assert.deepEqual(await readFile(store.paths.content(digestOf(content))), content);
  });
});
