// ContentWriter is the one way content enters the store (storage/content-store.ts): pulls and imports,
// whose digest is known from the start, and pushes, whose digest is named at the end of an upload that
// may span many requests and a restart. Nothing reaches a digest path unverified, a failed append
// leaves no trace in the file or the hash, and a lost hash costs one read-back, never a wrong answer.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Digester, digestOf } from '../../src/digest.js';
import { copyAdmitted } from '../../src/storage/admitted-copy.js';
import { ContentStore } from '../../src/storage/content-store.js';
import { StorePaths } from '../../src/storage/paths.js';
import { waitFor } from '../support/wait.js';

describe('ContentWriter', () => {
  let dir: string;
  let store: ContentStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-writer-'));
    store = new ContentStore(new StorePaths(dir));
    await store.init();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const exists = (path: string) => stat(path).then(() => true, () => false);

  /** One request's chunk: the body piped through the writer's stream, as LocalRegistry.appendUpload does. */
  async function append(id: string, offset: number, digester: Digester | undefined, body: Buffer) {
    const writer = await store.appendToUpload(id, offset, digester);
    await copyAdmitted(Readable.from([body.subarray(0, body.length >> 1), body.subarray(body.length >> 1)]), writer.stream(1024 * 1024), () => undefined);
    await writer.close();
    return writer;
  }

  describe('content whose digest is known from the start', () => {
    it('refuses bytes of another digest, and of another size, and leaves nothing at the digest path', async () => {
      const body = randomBytes(1000);
      const named = digestOf('something else');
      const writer = await store.createWriter(named, body.length);
      await writer.write([body]);
      assert.throws(() => writer.verify(), { code: 'LS_CONTENT_MISMATCH' });
      await assert.rejects(writer.commit(), { code: 'LS_INTERNAL' }, 'an unverified writer is never committed');
      await writer.cancel();
      await writer.close();
      assert.equal(await exists(store.paths.content(named)), false);

      const short = await store.createWriter(digestOf(body), body.length + 1);
      await short.write([body]);
      assert.throws(() => short.verify(), { code: 'LS_CONTENT_MISMATCH' });
      await assert.rejects(short.write([Buffer.alloc(2)]), { code: 'LS_CONTENT_MISMATCH' }, 'nothing past the declared size is written');
      await short.cancel();
      await short.close();
      assert.equal(await exists(short.tempPath), false);
    });

    it('commits verified bytes by rename: the temp file becomes the digest path', async () => {
      const body = randomBytes(3 * 1024 * 1024);
      const digest = digestOf(body);
      const writer = await store.createWriter(digest, body.length);
      await writer.write([body.subarray(0, 100), body.subarray(100)]);
      writer.verify();
      await writer.commit();
      await writer.close();
      assert.deepEqual(await readFile(store.paths.content(digest)), body);
      assert.equal(await exists(writer.tempPath), false);
    });

    it('commits after an early flush and close (an import stages many blobs), but not after a close without one', async () => {
      const body = Buffer.from('staged blob');
      const staged = await store.createWriter(digestOf(body), body.length);
      await staged.write([body]);
      staged.verify();
      await staged.sync();
      await staged.close();
      await staged.commit();
      assert.deepEqual(await store.read(digestOf(body)), body);

      const other = Buffer.from('not flushed');
      const unsynced = await store.createWriter(digestOf(other), other.length);
      await unsynced.write([other]);
      unsynced.verify();
      await unsynced.close();
      await assert.rejects(unsynced.commit(), { code: 'LS_INTERNAL' });
      await unsynced.cancel();
      assert.equal(await store.size(digestOf(other)), undefined);
    });
  });

  describe('an upload: the digest is named at the end, the bytes come in requests', () => {
    it('hashes across requests and commits without reading the file back', async () => {
      const id = randomUUID();
      const parts = [randomBytes(700_000), randomBytes(1_300_000), randomBytes(5)];
      const whole = Buffer.concat(parts);
      await store.createUpload(id);
      let digester: Digester | undefined = new Digester();
      let offset = 0;
      for (const part of parts) {
        const writer = await append(id, offset, digester, part);
        digester = writer.digester;
        offset = writer.written;
      }
      assert.equal(offset, whole.length);
      const final = await store.appendToUpload(id, offset, digester);
      assert.equal(final.hashes(digestOf(whole)), true, 'the running hash answers: nothing is read back');
      await final.verifyAs(digestOf(whole));
      await final.commit();
      await final.close();
      assert.deepEqual(await store.read(digestOf(whole)), whole);
      assert.equal(await store.uploadSize(id), undefined, 'the upload file became the content');
    });

    it('a failed append is rolled back: the file and the hash are as before it', async () => {
      const id = randomUUID();
      const first = randomBytes(500_000);
      const rest = randomBytes(600_000);
      await store.createUpload(id);
      const start = await append(id, 0, new Digester(), first);
      const before = start.digester!;

      // The second request breaks after some of its bytes were written.
      const writer = await store.appendToUpload(id, first.length, before);
      const body = new PassThrough();
      const copied = copyAdmitted(body, writer.stream(64 * 1024), () => undefined);
      body.write(randomBytes(300_000));
      await waitFor(() => writer.written > first.length, { what: 'part of the chunk on disk' });
      body.destroy(new Error('client went away'));
      await assert.rejects(copied, /client went away/);
      assert.ok(writer.written > first.length, 'some of the broken chunk was written');
      await writer.rollback();
      await writer.close();
      assert.equal(writer.written, first.length);
      assert.equal(await store.uploadSize(id), first.length, 'the file is cut back');

      // The caller's digester was never changed, and the writer's own is back at the same state.
      assert.equal(before.copy().digest(), digestOf(first));
      const resent = await append(id, first.length, writer.digester, rest);
      const final = await store.appendToUpload(id, resent.written, resent.digester);
      assert.equal(final.hashes(digestOf(Buffer.concat([first, rest]))), true);
      await final.verifyAs(digestOf(Buffer.concat([first, rest])));
      await final.commit();
      await final.close();
      assert.deepEqual(await store.read(digestOf(Buffer.concat([first, rest]))), Buffer.concat([first, rest]));
    });

    it('after a restart (no hash) or for another algorithm, reads the file back once and still refuses a wrong digest', async () => {
      const id = randomUUID();
      const body = randomBytes(2_000_000);
      await store.createUpload(id);
      await append(id, 0, new Digester(), body);

      const restarted = await store.appendToUpload(id, body.length, undefined);
      assert.equal(restarted.hashes(digestOf(body)), false);
      await assert.rejects(restarted.verifyAs(digestOf('not these bytes')), { code: 'LS_DIGEST_INVALID' });
      await assert.rejects(restarted.commit(), { code: 'LS_INTERNAL' });
      assert.equal(await store.size(digestOf('not these bytes')), undefined);
      assert.equal(await store.uploadSize(id), body.length, 'a wrong digest alone does not remove the file: the session decides');

      const sha512 = digestOf(body, 'sha512');
      assert.equal(restarted.hashes(sha512), false);
      await restarted.verifyAs(sha512);
      await restarted.commit();
      await restarted.close();
      assert.deepEqual(await store.read(sha512), body);
    });

    it('cuts off bytes past the session offset (an append a crash interrupted) and refuses a file shorter than it', async () => {
      const id = randomUUID();
      await store.createUpload(id);
      await writeFile(store.paths.upload(id), Buffer.from('counted|not counted'));
      const writer = await store.appendToUpload(id, 'counted'.length, undefined);
      await writer.close();
      assert.equal(await store.uploadSize(id), 'counted'.length);
      await assert.rejects(store.appendToUpload(id, 100, undefined), { code: 'LS_INTERNAL' });
      assert.equal(await store.uploadSize(id), 'counted'.length, 'a short file is never padded');
      await store.removeUpload(id);
      assert.equal(await store.uploadSize(id), undefined);
    });

    it('a stream destroyed mid-write reports close only after the write is down, so a rollback is never overtaken', async () => {
      const id = randomUUID();
      await store.createUpload(id);
      for (let round = 0; round < 5; round++) {
        const writer = await store.appendToUpload(id, 0, new Digester());
        const out = writer.stream(64 * 1024 * 1024);
        out.write(randomBytes(16 * 1024 * 1024));
        const closed = new Promise((resolve) => out.once('close', resolve));
        out.destroy();
        await closed;
        assert.equal(writer.written, 16 * 1024 * 1024, 'the write in flight was down before close');
        await writer.rollback();
        // Had the write still been in flight, it would land after the cut.
        await new Promise((resolve) => setTimeout(resolve, 30));
        assert.equal(await store.uploadSize(id), 0, `round ${round}`);
        await writer.close();
      }
    });
  });
});
