import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/cli/main.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

describe('longshore du / gc / verify', () => {
  let fake: FakeRegistry;
  let dataDir: string;
  let configFile: string;
  let blobBytes = 0;

  before(async () => {
    fake = await FakeRegistry.start();
    const image = publishImage(fake, 'library/app', '1', 'docker', 100_000);
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    await get(`${mirror.url}/v2/library/app/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    for (const [digest, content] of image.blobs) {
      await get(`${mirror.url}/v2/library/app/blobs/${digest}`);
      blobBytes += content.length;
      await waitFor(() => mirror.longshore.catalog.content(digest as `sha256:${string}`) !== undefined);
    }
    const other = fake.addBlob(randomBytes(50_000));
    await get(`${mirror.url}/v2/team/other/blobs/${other}`);
    await waitFor(() => mirror.longshore.catalog.content(other as `sha256:${string}`) !== undefined);
    blobBytes += 50_000;
    dataDir = mirror.dataDir;
    await mirror.close({ keepData: true });
    configFile = join(dataDir, '..', `${dataDir.split('/').pop()}.json`);
    await writeFile(configFile, JSON.stringify({ dataDir, upstreams: { 'docker.io': { url: fake.registryUrl } } }));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
    await rm(configFile, { force: true });
    await fake.close();
  });

  async function cli(...argv: string[]): Promise<{ code: number; out: string[] }> {
    const out: string[] = [];
    const code = await run([...argv, '--config', configFile], (line) => out.push(line));
    return { code, out };
  }

  it('du reports totals and repositories by size', async () => {
    const { code, out } = await cli('du', '--json');
    assert.equal(code, 0);
    const report = JSON.parse(out[0]!) as { bytes: number; objects: number; manifests: number; blobs: number; repositories: Array<{ repository: string; bytes: number }> };
    assert.equal(report.manifests, 1, 'the index');
    assert.equal(report.blobs, 6, 'a shared layer, 2 own layers and 2 configs, and the other repository\'s blob');
    assert.ok(report.bytes > blobBytes);
    assert.deepEqual(report.repositories.map((r) => r.repository), ['library/app', 'team/other']);
    const text = await cli('du');
    assert.match(text.out[0]!, /^cache: .* in 7 objects \(6 blobs, 1 manifests\)$/);
  });

  it('verify finds a corrupt file and quarantines it', async () => {
    const [victim] = [...fake.blobs.keys()];
    const path = join(dataDir, 'blobs', 'sha256', victim!.slice(7, 9), victim!.slice(7));
    await writeFile(path, 'bit rot');
    const report = await cli('verify', '--json');
    assert.equal(report.code, 1);
    assert.deepEqual(JSON.parse(report.out[0]!).corrupt, [victim]);
    const fixed = await cli('verify', '--quarantine', '--json');
    assert.equal(fixed.code, 0);
    assert.deepEqual(await readdir(join(dataDir, 'quarantine')), [victim!.slice(7)]);
    const clean = await cli('verify', '--json');
    assert.equal(clean.code, 0);
    assert.deepEqual(JSON.parse(clean.out[0]!).corrupt, []);
  });

  it('gc evicts down to a size and says what it freed', async () => {
    const dry = await cli('gc', '--to', '0', '--dry-run', '--json');
    assert.equal(dry.code, 0);
    assert.ok(JSON.parse(dry.out[0]!).wouldFree > 0);
    const before = JSON.parse((await cli('du', '--json')).out[0]!) as { objects: number };
    const { code, out } = await cli('gc', '--to', '0', '--json');
    assert.equal(code, 0);
    const result = JSON.parse(out[0]!) as { evicted: number; remaining: number };
    assert.equal(result.evicted, before.objects);
    assert.equal(result.remaining, 0);
    const du = JSON.parse((await cli('du', '--json')).out[0]!) as { bytes: number; objects: number };
    assert.deepEqual([du.bytes, du.objects], [0, 0]);
    const bad = await run(['gc', '--to', 'lots', '--config', configFile], () => undefined).catch((err: Error) => err.message);
    assert.match(String(bad), /--to: expected a size/);
  });

  it('prints usage for an unknown command', async () => {
    const out: string[] = [];
    assert.equal(await run(['frobnicate'], (l) => out.push(l)), 2);
    assert.match(out[0]!, /^usage: longshore/);
  });
});

describe('longshore health', () => {
  it('exits 0 while the server of its config answers /healthz, and 1 once it is gone', async () => {
    const fake = await FakeRegistry.start();
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    const configFile = join(mirror.dataDir, '..', `${mirror.dataDir.split('/').pop()}-health.json`);
    try {
      const listen = new URL(mirror.url).host;
      await writeFile(configFile, JSON.stringify({ listen, upstreams: { 'docker.io': { url: fake.registryUrl } } }));
      const out: string[] = [];
      assert.equal(await run(['health', '--config', configFile], (line) => out.push(line)), 0);
      assert.deepEqual(out, [`http://${listen}/healthz: 200`]);
      await mirror.close();
      out.length = 0;
      assert.equal(await run(['health', '--config', configFile], (line) => out.push(line)), 1);
      assert.match(out[0]!, new RegExp(`^http://${listen}/healthz: `));
    } finally {
      await rm(configFile, { force: true });
      await fake.close();
    }
  });
});

describe('longshore verify with sha512 content', () => {
  it('re-hashes sha512 content with sha512: a good file passes, a corrupt one is found and quarantined', async () => {
    const fake = await FakeRegistry.start();
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    const dataDir = mirror.dataDir;
    const configFile = join(dataDir, '..', `${dataDir.split('/').pop()}-512.json`);
    let closed = false;
    try {
      const good = fake.addBlob(randomBytes(20_000), 'sha512');
      const bad = fake.addBlob(randomBytes(20_000), 'sha512');
      for (const digest of [good, bad]) {
        assert.equal((await get(`${mirror.url}/v2/library/s512/blobs/${digest}`)).status, 200);
        await waitFor(() => mirror.longshore.catalog.content(digest as `sha512:${string}`) !== undefined);
      }
      await mirror.close({ keepData: true });
      closed = true;
      await writeFile(configFile, JSON.stringify({ dataDir, upstreams: { 'docker.io': { url: fake.registryUrl } } }));
      const cli = async (...argv: string[]) => {
        const out: string[] = [];
        return { code: await run([...argv, '--config', configFile], (line) => out.push(line)), out };
      };
      const clean = await cli('verify', '--json');
      assert.equal(clean.code, 0, clean.out.join('\n'));
      assert.equal(JSON.parse(clean.out[0]!).checked, 2);
      const hex = bad.slice('sha512:'.length);
      await writeFile(join(dataDir, 'blobs', 'sha512', hex.slice(0, 2), hex), 'bit rot');
      const found = await cli('verify', '--quarantine', '--json');
      assert.deepEqual(JSON.parse(found.out[0]!).corrupt, [bad]);
      assert.deepEqual(await readdir(join(dataDir, 'quarantine')), [hex]);
    } finally {
      if (!closed) await mirror.close({ keepData: true });
      await rm(dataDir, { recursive: true, force: true });
      await rm(configFile, { force: true });
      await fake.close();
    }
  });
});
