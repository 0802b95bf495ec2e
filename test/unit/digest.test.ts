// Digest algorithms are one registry (src/digest.ts): sha256 and sha512 are parsed, hashed,
// stored, verified and reconciled the same way, and nothing else in src/ spells an algorithm.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { reconcile } from '../../src/cache/recovery.js';
import { Catalog } from '../../src/metadata/catalog.js';
import { openDatabase } from '../../src/metadata/database.js';
import { algorithmOf, Digester, digestOf, encodedOf, isDigest, parseDigest, type Digest } from '../../src/digest.js';
import { manifestReferences } from '../../src/registry/media-types.js';
import { DigestVerifier } from '../../src/registry/verifying-stream.js';
import { ContentStore } from '../../src/storage/content-store.js';
import { StorePaths } from '../../src/storage/paths.js';

const SRC = join(dirname(new URL(import.meta.url).pathname), '..', '..', 'src');
const hex = (algorithm: 'sha256' | 'sha512', data: string | Buffer) => createHash(algorithm).update(data).digest('hex');

describe('digest registry', () => {
  it('parses sha256 and sha512 in canonical form only', () => {
    const s256 = `sha256:${hex('sha256', 'x')}`;
    const s512 = `sha512:${hex('sha512', 'x')}`;
    assert.equal(parseDigest(s256), s256);
    assert.equal(parseDigest(s512), s512);
    assert.equal(algorithmOf(s512 as Digest), 'sha512');
    assert.equal(encodedOf(s512 as Digest), hex('sha512', 'x'));
    for (const bad of [`sha512:${'A'.repeat(128)}`, `sha512:${'a'.repeat(127)}`, `sha512:${'a'.repeat(64)}`, `sha256:${'a'.repeat(128)}`, 'sha512:', ':abc', 'sha512:../../x']) {
      assert.equal(isDigest(bad), false, bad);
      assert.throws(() => parseDigest(bad), { code: 'LS_DIGEST_INVALID' }, bad);
    }
    assert.throws(() => parseDigest(`sha384:${'a'.repeat(96)}`), { code: 'LS_DIGEST_UNSUPPORTED' });
    // Prototype keys are no algorithms.
    assert.throws(() => parseDigest('constructor:abc'), { code: 'LS_DIGEST_UNSUPPORTED' });
  });

  it('hashes with the algorithm asked for, canonical sha256 by default', () => {
    assert.equal(digestOf('abc'), `sha256:${hex('sha256', 'abc')}`);
    assert.equal(digestOf('abc', 'sha512'), `sha512:${hex('sha512', 'abc')}`);
    assert.equal(new Digester('sha512').update(Buffer.from('a')).update(Buffer.from('bc')).digest(), `sha512:${hex('sha512', 'abc')}`);
  });

  it('is the only module in src/ that spells a digest algorithm or hex-hashes content', async () => {
    const offenders: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.name.endsWith('.ts') && relative(SRC, path) !== 'digest.ts') {
          const lines = (await readFile(path, 'utf8')).split('\n');
          lines.forEach((line, i) => {
            // Credential cache keys hash with sha256 into base64: no content digest, allowed.
            if (/sha(256|512):|\/\^sha|digest\('hex'\)|\[a-f0-9\]\{(64|128)\}/.test(line)) offenders.push(`${relative(SRC, path)}:${i + 1}: ${line.trim()}`);
          });
        }
      }
    };
    await walk(SRC);
    assert.deepEqual(offenders, []);
  });
});

describe('content store with sha512', () => {
  let dir: string;
  let store: ContentStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-digest-'));
    store = new ContentStore(new StorePaths(dir));
    await store.init();
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('keeps sha256 content where it always was and sha512 content beside it', () => {
    const paths = new StorePaths(dir);
    const s256 = digestOf('a');
    const s512 = digestOf('a', 'sha512');
    assert.equal(paths.content(s256), join(dir, 'blobs', 'sha256', encodedOf(s256).slice(0, 2), encodedOf(s256)));
    assert.equal(paths.content(s512), join(dir, 'blobs', 'sha512', encodedOf(s512).slice(0, 2), encodedOf(s512)));
  });

  it('verifies and commits sha512 content, and refuses bytes of another digest', async () => {
    const body = Buffer.from('sha512 content');
    const digest = digestOf(body, 'sha512');
    await store.put(digest, body);
    assert.deepEqual(await store.read(digest), body);
    assert.equal(await store.hash(digest), digest);
    // The sha256 of the same bytes names other content; a sha512 writer checks with sha512.
    await assert.rejects(store.put(digestOf('other', 'sha512'), body), { code: 'LS_CONTENT_MISMATCH' });
  });

  it('lists and adopts sha512 files at start-up, and removes a sha512 file whose bytes do not match', async () => {
    const db = openDatabase(join(dir, 'meta.db'));
    try {
      const catalog = new Catalog(db);
      const good = Buffer.from('adopt me');
      const goodDigest = digestOf(good, 'sha512');
      const badDigest = digestOf('what the name says', 'sha512');
      for (const [digest, bytes] of [[goodDigest, good], [badDigest, Buffer.from('something else')]] as const) {
        await mkdir(store.paths.contentDir(digest), { recursive: true });
        await writeFile(store.paths.content(digest), bytes);
      }
      const files = await store.list();
      assert.equal(files.get(goodDigest), good.length);
      assert.equal(files.get(badDigest), 'something else'.length);
      const result = await reconcile(store, catalog, pino({ level: 'silent' }));
      assert.ok(result.filesAdopted >= 1);
      assert.equal(catalog.contentInfo(goodDigest)?.size, good.length);
      assert.equal(await store.size(badDigest), undefined);
      assert.equal(catalog.contentInfo(badDigest), undefined);
    } finally {
      db.close();
    }
  });

  it('verifies a sha512 stream as it passes and breaks it on a mismatch', async () => {
    const body = Buffer.alloc(100_000, 7);
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => chunks.push(c));
    await pipeline(Readable.from([body.subarray(0, 50_000), body.subarray(50_000)]), new DigestVerifier(digestOf(body, 'sha512'), body.length), sink);
    assert.deepEqual(Buffer.concat(chunks), body);
    await assert.rejects(
      pipeline(Readable.from([body]), new DigestVerifier(digestOf('not this', 'sha512'), body.length), new PassThrough().resume()),
      { code: 'LS_CONTENT_MISMATCH' },
    );
  });
});

describe('non-distributable layers', () => {
  const layer = (mediaType: string, digest: string, urls?: unknown) => ({ mediaType, digest, size: 1, ...(urls === undefined ? {} : { urls }) });
  const manifest = (...layers: object[]) => Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:c', size: 1 }, layers }));

  it('names layers that say where they live as external; everything else must be held', () => {
    const refs = manifestReferences(manifest(
      layer('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', 'sha256:nd', ['https://store.example.com/blobs/x']),
      layer('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 'sha256:foreign', ['http://example.com/x']),
      layer('application/vnd.oci.image.layer.nondistributable.v1.tar', 'sha256:nourls'),
      layer('application/vnd.oci.image.layer.nondistributable.v1.tar', 'sha256:badurl', ['file:///etc/passwd']),
      layer('application/vnd.oci.image.layer.nondistributable.v1.tar', 'sha256:fragment', ['https://example.com/x#y']),
      layer('application/vnd.oci.image.layer.v1.tar+gzip', 'sha256:plain', ['https://example.com/x']),
    ));
    assert.deepEqual(refs.external, ['sha256:nd', 'sha256:foreign']);
    assert.ok(refs.blobs.includes('sha256:nd'));
  });

  it('is not external when another descriptor names the same digest as an ordinary layer', () => {
    const refs = manifestReferences(manifest(
      layer('application/vnd.oci.image.layer.nondistributable.v1.tar', 'sha256:same', ['https://example.com/x']),
      layer('application/vnd.oci.image.layer.v1.tar', 'sha256:same'),
    ));
    assert.equal(refs.external, undefined);
  });
});
