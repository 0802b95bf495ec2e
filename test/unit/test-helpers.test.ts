// The shared checks and runners in test/support that the integration and e2e suites lean on. A check
// must be able to fail, or the suites calling it assert nothing: each is shown passing on good input
// and failing on every kind of bad input it exists for.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { pullOnlyAuth } from '../support/e2e/client-accounts.js';
import { runCommand } from '../support/e2e/command.js';
import { expectSkopeoDir, writeSkopeoDir } from '../support/e2e/skopeo-dir.js';
import { Teardown } from '../support/e2e/teardown.js';
import { buildImage, sha256Digest } from '../support/images.js';
import { expectCatalogMatchesDisk } from '../support/store.js';

const root = mkdtempSync(join(tmpdir(), 'longshore-test-helpers-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => join(root, `d${++dirs}`);
const hex = (digest: string): string => digest.slice('sha256:'.length);

describe('expectSkopeoDir', () => {
  const image = buildImage({ repository: 'library/tiny', tag: '1', format: 'oci' }, {
    shared: [{ label: 'base', files: [300] }],
    own: { amd64: [{ label: 'amd64', files: [200] }], arm64: [{ label: 'arm64', files: [100] }] },
  });
  const copyOf = (): string => {
    const dir = newDir();
    writeSkopeoDir(image, dir);
    return dir;
  };

  it('passes on the image written in the dir: layout', () => {
    expectSkopeoDir(copyOf(), image, 'the copy');
  });

  it('fails on a flipped byte in a layer, and on another index under manifest.json', () => {
    const flipped = copyOf();
    const layer = join(flipped, hex(image.platforms[0]!.layers[1]!.digest));
    const bytes = readFileSync(layer);
    bytes[10] = bytes[10]! ^ 0xff;
    writeFileSync(layer, bytes);
    assert.throws(() => expectSkopeoDir(flipped, image, 'the copy'), /files of the copy whose content does not hash to their digest/);
    const otherIndex = copyOf();
    writeFileSync(join(otherIndex, 'manifest.json'), '{"schemaVersion":2,"manifests":[]}');
    assert.throws(() => expectSkopeoDir(otherIndex, image, 'the copy'), /files of the copy whose content does not hash to their digest/);
  });

  it('fails on a missing file and on a file the image does not have', () => {
    const missing = copyOf();
    rmSync(join(missing, `${hex(image.platforms[1]!.manifest.digest)}.manifest.json`));
    assert.throws(() => expectSkopeoDir(missing, image, 'the copy'), { message: /^files of the copy\n/ });
    const extra = copyOf();
    const stray = Buffer.from('not in the image');
    writeFileSync(join(extra, hex(sha256Digest(stray))), stray);
    assert.throws(() => expectSkopeoDir(extra, image, 'the copy'), { message: /^files of the copy\n/ });
  });
});

describe('expectCatalogMatchesDisk', () => {
  const a = Buffer.from('content a');
  const b = Buffer.from('content b, longer');
  /** A data dir holding `blobs` under blobs/sha256/<2 hex>/<hex>, and a catalog listing `rows`. */
  function store(blobs: Buffer[], rows: Array<{ digest: string; size: number }>, totals = { bytes: rows.reduce((n, r) => n + r.size, 0), objects: rows.length }) {
    const dataDir = newDir();
    for (const blob of blobs) {
      const name = hex(sha256Digest(blob));
      mkdirSync(join(dataDir, 'blobs', 'sha256', name.slice(0, 2)), { recursive: true });
      writeFileSync(join(dataDir, 'blobs', 'sha256', name.slice(0, 2), name), blob);
    }
    const catalog = { allContent: () => rows.map((r) => ({ digest: r.digest as `sha256:${string}`, size: r.size })), totals: () => totals };
    return { dataDir, catalog };
  }
  const row = (blob: Buffer) => ({ digest: sha256Digest(blob), size: blob.length });

  it('passes when rows, files and totals agree', async () => {
    const { dataDir, catalog } = store([a, b], [row(a), row(b)]);
    await expectCatalogMatchesDisk(catalog, dataDir);
  });

  it('fails on a row without its file, a file without its row, a wrong size and wrong totals', async () => {
    const cases = [
      store([a], [row(a), row(b)]),
      store([a, b], [row(a)]),
      store([a, b], [row(a), { ...row(b), size: b.length + 1 }]),
      store([a, b], [row(a), row(b)], { bytes: a.length + b.length + 1, objects: 2 }),
      store([a, b], [row(a), row(b)], { bytes: a.length + b.length, objects: 3 }),
    ];
    for (const [i, { dataDir, catalog }] of cases.entries()) {
      await assert.rejects(expectCatalogMatchesDisk(catalog, dataDir), assert.AssertionError, `case ${i}`);
    }
  });
});

describe('runCommand', () => {
  const env = process.env;

  it('answers a non-zero exit with its code and output instead of rejecting', async () => {
    const result = await runCommand('sh', ['-c', 'printf out; printf err >&2; exit 3'], { env, timeoutMs: 60_000 });
    assert.deepEqual({ ...result, stdout: result.stdout.toString('utf8') }, { code: 3, stdout: 'out', stderr: 'err' });
  });

  it('keeps stdout as raw bytes', async () => {
    const result = await runCommand('printf', ['\\377\\376'], { env, timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout, Buffer.from([0xff, 0xfe]));
  });

  it('answers a timeout with code -1 and a note naming the arguments, the leading ones left out', async () => {
    const result = await runCommand('sh', ['sleep 60'], { leading: ['-c'], env, timeoutMs: 100 });
    assert.equal(result.code, -1);
    assert.match(result.stderr, /\n\(sh sleep 60 killed after 100 ms\)$/);
  });

  it('rejects when the program cannot be run at all', async () => {
    await assert.rejects(runCommand('longshore-no-such-program', [], { env, timeoutMs: 60_000 }), /ENOENT/);
  });
});

describe('pullOnlyAuth', () => {
  it('hashes each password, gives each account pull on its repositories only, and nothing to anonymous', () => {
    const alice = { username: 'alice', password: 'alice-pw' };
    const bob = { username: 'bob', password: 'bob-pw' };
    const auth = pullOnlyAuth([{ account: alice, pull: ['docker.io/library/*', 'docker.io/private/*'] }, { account: bob, pull: ['docker.io/team/*'] }], 4) as {
      enabled: boolean; users: Array<{ username: string; passwordHash: string }>; rules: unknown[];
    };
    assert.equal(auth.enabled, true);
    assert.deepEqual(auth.users.map((u) => u.username), ['alice', 'bob']);
    assert.ok(bcrypt.compareSync('alice-pw', auth.users[0]!.passwordHash));
    assert.ok(bcrypt.compareSync('bob-pw', auth.users[1]!.passwordHash));
    assert.ok(!bcrypt.compareSync('alice-pw', auth.users[1]!.passwordHash));
    assert.equal(bcrypt.getRounds(auth.users[0]!.passwordHash), 4);
    assert.deepEqual(auth.rules, [
      { users: ['alice'], repositories: ['docker.io/library/*', 'docker.io/private/*'], actions: ['pull'] },
      { users: ['bob'], repositories: ['docker.io/team/*'], actions: ['pull'] },
    ]);
  });
});

describe('Teardown.tempDir', () => {
  it('makes a directory named by the prefix that runAll() removes with its contents', async () => {
    const teardown = new Teardown();
    const dir = teardown.tempDir('scratch', 'longshore-teardown-');
    assert.match(dir, /longshore-teardown-[^/]+$/);
    writeFileSync(join(dir, 'file'), 'x');
    await teardown.runAll();
    assert.equal(existsSync(dir), false);
  });
});
