// The hand-written tar of bundles (jobs/bundle/tar.ts) against GNU tar, both ways, and its refusals.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isLongshoreError } from '../../src/errors.js';
import { TAR_END, readTar, scanTar, tarEntrySize, tarHeader, tarPadding } from '../../src/jobs/bundle/tar.js';

function archive(files: Array<[string, Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, body] of files) parts.push(tarHeader(name, body.length), body, tarPadding(body.length));
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

async function entries(bytes: Buffer, chunk = 777): Promise<Array<[string, Buffer]>> {
  const chunks = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  const out: Array<[string, Buffer]> = [];
  for await (const entry of readTar(Readable.from(chunks))) {
    if (entry.type !== 'file') continue;
    const parts = [];
    for await (const c of entry.body()) parts.push(Buffer.from(c));
    out.push([entry.name, Buffer.concat(parts)]);
  }
  return out;
}

describe('bundle tar', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-tar-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const sha512Path = `blobs/sha512/${'ab'.repeat(64)}`;
  const files: Array<[string, Buffer]> = [
    ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
    [`blobs/sha256/${'cd'.repeat(32)}`, randomBytes(1500)],
    [sha512Path, randomBytes(512)],
    ['index.json', Buffer.from('{}')],
  ];

  it('reads back what it writes, in chunks of any size, a 141-character sha512 path included (PAX)', async () => {
    const bytes = archive(files);
    assert.equal(bytes.length, files.reduce((s, [n, b]) => s + tarEntrySize(n, b.length), 0) + 1024);
    for (const chunk of [1, 511, 512, 4096]) assert.deepEqual(await entries(bytes, chunk), files);
  });

  it('writes what GNU tar extracts, and reads what GNU tar writes', async () => {
    const mine = join(dir, 'mine.tar');
    await writeFile(mine, archive(files));
    const out = join(dir, 'out');
    await mkdir(out);
    execFileSync('tar', ['-xf', mine, '-C', out]);
    for (const [name, body] of files) assert.deepEqual(await readFile(join(out, name)), body);
    const theirs = join(dir, 'theirs.tar');
    execFileSync('tar', ['--format=posix', '-cf', theirs, '-C', out, '.']);
    const read = await entries(await readFile(theirs));
    assert.deepEqual(new Map(read), new Map(files), 'GNU tar\'s ./ prefixes and PAX headers are understood');
    const handle = await open(theirs, 'r');
    try {
      const { files: listed, bodies } = await scanTar(handle, new Set(['index.json']));
      assert.equal(listed.get(sha512Path), 512);
      assert.deepEqual(bodies.get('index.json'), Buffer.from('{}'));
    } finally {
      await handle.close();
    }
  });

  it('sizes past 8 GiB go in a PAX record, and base-256 sizes are read', async () => {
    const header = tarHeader('blobs/sha256/big', 9 * 1024 ** 3);
    assert.match(header.subarray(512, 1024).toString(), /size=9663676416\n/);
    const gnu = Buffer.from(tarHeader('x', 0));
    gnu.fill(0, 124, 136);
    gnu[124] = 0x80;
    gnu.writeUIntBE(5, 130, 6);
    // fix the checksum after the edit
    gnu.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of gnu) sum += b;
    gnu.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
    const read = await entries(Buffer.concat([gnu, Buffer.from('hello'), Buffer.alloc(507), TAR_END]));
    assert.deepEqual(read, [['x', Buffer.from('hello')]]);
  });

  it('refuses an archive cut short, and a header with one flipped byte', async () => {
    const bytes = archive(files);
    for (const cut of [100, 512 + 10, bytes.length - 1024]) {
      await assert.rejects(entries(bytes.subarray(0, cut)), (err: unknown) => isLongshoreError(err, 'LS_BUNDLE_INVALID') && /ends early|truncated/.test(err.message));
    }
    const header = Buffer.from(bytes);
    header[10] = header[10]! ^ 1;
    await assert.rejects(entries(header), (err: unknown) => isLongshoreError(err, 'LS_BUNDLE_INVALID') && /checksum/.test(err.message));
  });
});
