// Issues 16 and 17: admin commands beside a serving mirror go through it (POST /api/v1/jobs/*), so its
// accounting stays equal to the disk; warm, export and import carry images across an air gap. The CLI
// runs as a child process, as an operator runs it, against an in-process mirror that announced its
// admin URL in the data directory's lock.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scanTar } from '../../src/jobs/bundle/tar.js';
import { FakeRegistry, digestOf, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { MediaType } from '../../src/registry/media-types.js';
import { bundleBlobs, cli, onDisk, reported, serving, servingOffline, startAirGap, type AirGap, type ServingMirror } from '../support/admin-cli.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';


async function pullAll(mirror: TestMirror, repository: string, tag: string, blobs: Iterable<string>): Promise<void> {
  assert.equal((await get(`${mirror.url}/v2/${repository}/manifests/${tag}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
  for (const digest of blobs) {
    assert.equal((await get(`${mirror.url}/v2/${repository}/blobs/${digest}`)).status, 200);
    await waitFor(() => mirror.longshore.catalog.content(digest as `sha256:${string}`) !== undefined);
  }
}

describe('gc and verify --quarantine beside a serving mirror', () => {
  let fake: FakeRegistry;
  let served: ServingMirror;
  let mirror: TestMirror;
  let configFile: string;

  before(async () => {
    fake = await FakeRegistry.start();
    // protectRecent 0: `gc --to 0` runs right after the pulls, which the cache would otherwise keep for 10 s.
    served = await serving({ upstreams: { 'docker.io': { url: fake.registryUrl } }, ui: { enabled: false }, cache: { protectRecent: 0 } });
    ({ mirror, configFile } = served);
  });
  after(async () => {
    await served.close();
    await fake.close();
  });

  it('refuses job requests without the data directory\'s admin token, even with the dashboard off', async () => {
    const res = await fetch(`${mirror.url}/api/v1/jobs/gc`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 401);
    const token = await readFile(join(mirror.dataDir, 'admin.token'), 'utf8');
    assert.equal((statSync(join(mirror.dataDir, 'admin.token')).mode & 0o077), 0, 'only the mirror\'s account may read the token');
    const ok = await fetch(`${mirror.url}/api/v1/jobs/gc`, { method: 'POST', body: '{"dryRun":true}', headers: { 'x-longshore-admin-token': token } });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse((await ok.text()).trim().split('\n').at(-1)!).event, 'result');
  });

  it('verify --quarantine goes through the server: the corrupt object is gone from its accounting and from disk', async () => {
    const image = publishImage(fake, 'library/app', '1', 'docker', 100_000);
    await pullAll(mirror, 'library/app', '1', image.blobs.keys());
    // a layer: 100 000 random bytes, tarred and gzipped
    const [victim] = [...image.blobs].find(([, bytes]) => bytes.length >= 100_000)!;
    const path = join(mirror.dataDir, 'blobs', 'sha256', victim.slice(7, 9), victim.slice(7));
    const bytes = await readFile(path);
    bytes[500] = bytes[500]! ^ 0xff; // same size: only hashing finds it
    await writeFile(path, bytes);

    const result = await cli(configFile, 'verify', '--quarantine', '--json');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.lines[0]!.corrupt, [victim]);
    assert.deepEqual(readdirSync(join(mirror.dataDir, 'quarantine')), [victim.slice(7)]);
    assert.equal(mirror.longshore.catalog.content(victim as `sha256:${string}`), undefined);
    assert.deepEqual(await reported(mirror), onDisk(mirror.dataDir));
    // The mirror fetches it afresh, right.
    assert.equal(sha256((await get(`${mirror.url}/v2/library/app/blobs/${victim}`)).body), victim);
  });

  it('gc goes through the server: /metrics equals what is on disk afterwards', async () => {
    const image = publishImage(fake, 'library/big', '1', 'docker', 200_000);
    await pullAll(mirror, 'library/big', '1', image.blobs.keys());
    assert.ok((await reported(mirror)).objects > 5);
    const result = await cli(configFile, 'gc', '--to', '0', '--json');
    assert.equal(result.code, 0, result.stderr);
    const report = result.lines[0] as { evicted: number; remaining: number };
    assert.ok(report.evicted > 5);
    assert.equal(report.remaining, 0);
    assert.deepEqual(await reported(mirror), onDisk(mirror.dataDir));
    assert.deepEqual(onDisk(mirror.dataDir), { bytes: 0, objects: 0 });
  });
});

describe('warm, export and import across an air gap', () => {
  let fake: FakeRegistry;
  let gap: AirGap;
  let connected: ServingMirror;
  let gapped: ServingMirror;
  let work: string;

  before(async () => {
    fake = await FakeRegistry.start();
    gap = await startAirGap({ url: fake.registryUrl }, 'longshore-bundles-');
    ({ connected, gapped, work } = gap);
  });
  after(async () => {
    await gap.close();
    await fake.close();
  });

  it('warm fetches one platform of a multi-arch image, each blob once, and a second warm fetches nothing', async () => {
    const image = publishImage(fake, 'library/node', '20', 'oci', 150_000);
    const blobGets = () => fake.count({ host: 'registry', method: 'GET', path: /\/blobs\// });
    const before = blobGets();
    const result = await cli(connected.configFile, 'warm', '--platform', 'linux/arm64', '--json', 'node:20');
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const [line, summary] = result.lines;
    assert.equal(line!.ref, 'docker.io/library/node:20');
    assert.deepEqual(line!.platforms, ['linux/arm64']);
    assert.equal(summary!.event, 'summary');
    const arm = JSON.parse(fake.manifests.get(image.platforms['linux/arm64']!)!.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
    const wanted = [arm.config.digest, ...arm.layers.map((l) => l.digest)];
    const fetched = fake.requests.filter((r) => r.host === 'registry' && /\/blobs\//.test(r.path) && r.method === 'GET').map((r) => r.path.split('/').pop());
    assert.equal(blobGets() - before, wanted.length, 'each arm64 blob once, nothing of amd64');
    assert.deepEqual(new Set(fetched.slice(-wanted.length)), new Set(wanted));
    const again = await cli(connected.configFile, 'warm', '--platform', 'linux/arm64', '--json', 'docker.io/library/node:20');
    assert.equal(again.code, 0);
    assert.equal(blobGets() - before, wanted.length);
    assert.equal(again.lines.at(-1)!.fetchedBytes, 0);
  });

  let first = '';
  it('exports two images, and an offline mirror imports them while serving and serves them with no upstream', async () => {
    const app = publishImage(fake, 'team/app', '1.0', 'docker', 50_000);
    first = join(work, 'first.tar');
    const result = await cli(connected.configFile, 'export', '--output', first, '--platform', 'linux/amd64', '--json', 'node:20', 'team/app:1.0');
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.ok(existsSync(first));
    assert.deepEqual(readdirSync(work), ['first.tar'], 'no partial file left behind');
    const handle = await open(first, 'r');
    const index = JSON.parse((await scanTar(handle, new Set(['index.json']))).bodies.get('index.json')!.toString()) as { manifests: Array<{ annotations: Record<string, string> }> };
    await handle.close();
    assert.deepEqual(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']), ['docker.io/library/node:20', 'docker.io/team/app:1.0']);

    const imported = await cli(gapped.configFile, 'import', '--json', first);
    assert.equal(imported.code, 0, imported.stderr + imported.stdout);
    assert.equal(imported.lines.filter((l) => l.event === 'image' && !l.error).length, 2);
    const amd = JSON.parse(fake.manifests.get(app.platforms['linux/amd64']!)!.body.toString()) as { layers: Array<{ digest: string }> };
    const index2 = await get(`${gapped.mirror.url}/v2/team/app/manifests/1.0`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(index2.status, 200);
    assert.equal(sha256(index2.body), app.index);
    assert.equal((await get(`${gapped.mirror.url}/v2/team/app/manifests/${app.platforms['linux/amd64']}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    for (const layer of amd.layers) assert.equal(sha256((await get(`${gapped.mirror.url}/v2/team/app/blobs/${layer.digest}`)).body), layer.digest);
    // Content isolation: node's blobs are not served under team/app.
    const nodeLayer = (await bundleBlobs(first)).find((d) => !app.blobs.has(d) && !fake.manifests.has(d))!;
    assert.equal((await get(`${gapped.mirror.url}/v2/team/app/blobs/${nodeLayer}`)).status, 404);
    assert.deepEqual(await reported(gapped.mirror), onDisk(gapped.mirror.dataDir));

    const totals = await reported(gapped.mirror);
    const twice = await cli(gapped.configFile, 'import', '--json', first);
    assert.equal(twice.code, 0);
    assert.deepEqual(await reported(gapped.mirror), totals, 'importing twice changes nothing');
  });

  it('refuses a bundle with one flipped byte, naming the entry, and serves nothing of it', async () => {
    const bad = publishImage(fake, 'team/bad', '1', 'docker', 70_000);
    const file = join(work, 'bad.tar');
    assert.equal((await cli(connected.configFile, 'export', '--output', file, 'team/bad:1')).code, 0);
    const bytes = await readFile(file);
    const amd = JSON.parse(fake.manifests.get(bad.platforms['linux/amd64']!)!.body.toString()) as { layers: Array<{ digest: string }> };
    const layer = amd.layers[1]!.digest;
    const at = bytes.indexOf(bad.blobs.get(layer)!.subarray(0, 64));
    assert.ok(at > 0);
    bytes[at + 1000] = bytes[at + 1000]! ^ 0x01;
    await writeFile(file, bytes);
    const result = await cli(gapped.configFile, 'import', '--json', file);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`bundle entry blobs/sha256/${layer.slice(7)} is damaged: content does not match digest`));
    assert.equal((await get(`${gapped.mirror.url}/v2/team/bad/manifests/1`, { accept: ALL_MANIFEST_TYPES })).status, 404);
    assert.equal((await get(`${gapped.mirror.url}/v2/team/bad/blobs/${amd.layers[0]!.digest}`)).status, 404);
    assert.deepEqual(readdirSync(join(gapped.mirror.dataDir, 'tmp')), [], 'staged files removed');
    assert.deepEqual(await reported(gapped.mirror), onDisk(gapped.mirror.dataDir));

    const cut = join(work, 'cut.tar');
    await writeFile(cut, bytes.subarray(0, at + 5000));
    const truncated = await cli(gapped.configFile, 'import', cut);
    assert.notEqual(truncated.code, 0);
    assert.match(truncated.stderr, /ends early|truncated/);
  });

  it('an incremental bundle holds only the new image\'s blobs, imports on top of the first, and names what is missing elsewhere', async () => {
    const fresh = publishImage(fake, 'team/new', '2', 'docker', 40_000);
    const delta = join(work, 'delta.tar');
    const result = await cli(connected.configFile, 'export', '--output', delta, '--since', first, '--json', 'node:20', 'team/new:2');
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const amd = JSON.parse(fake.manifests.get(fresh.platforms['linux/amd64']!)!.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
    // Everything of team/new:2 that the first bundle did not carry (the platform configs' bytes are alike across test images).
    const carried = new Set(await bundleBlobs(first));
    const expected = [fresh.index, fresh.platforms['linux/amd64']!, amd.config.digest, ...amd.layers.map((l) => l.digest)].filter((d) => !carried.has(d)).sort();
    assert.ok(expected.length >= 4);
    assert.deepEqual(await bundleBlobs(delta), expected);

    const imported = await cli(gapped.configFile, 'import', '--json', delta);
    assert.equal(imported.code, 0, imported.stderr + imported.stdout);
    assert.equal((await get(`${gapped.mirror.url}/v2/team/new/manifests/2`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    assert.equal((await get(`${gapped.mirror.url}/v2/library/node/manifests/20`, { accept: ALL_MANIFEST_TYPES })).status, 200);

    // A mirror that never got the first bundle: node:20's content is missing, and the message says so.
    const { mirror: empty, configFile, close } = await servingOffline();
    try {
      const refused = await cli(configFile, 'import', '--json', delta);
      assert.equal(refused.code, 1);
      const node = refused.lines.find((l) => l.ref === 'docker.io/library/node:20')!;
      assert.equal((node.error as { code: string }).code, 'LS_BUNDLE_CONTENT_MISSING');
      assert.match((node.error as { message: string }).message, /import the bundle that carried them first/);
      // team/new:2 needs the config the first bundle carried, so it is refused the same way; nothing is served.
      const team = refused.lines.find((l) => l.ref === 'docker.io/team/new:2')!;
      assert.equal((team.error as { code: string }).code, 'LS_BUNDLE_CONTENT_MISSING');
      assert.equal((await get(`${empty.url}/v2/team/new/manifests/2`, { accept: ALL_MANIFEST_TYPES })).status, 404);
      assert.equal((await get(`${empty.url}/v2/team/new/blobs/${amd.layers[1]!.digest}`)).status, 404);
      assert.deepEqual(await reported(empty), onDisk(empty.dataDir));
      assert.deepEqual(onDisk(empty.dataDir), { bytes: 0, objects: 0 });
    } finally {
      await close();
    }
  });

  it('carries an image whose manifest, config and layers are sha512 digests, and refuses a corrupt sha512 blob naming its entry', async () => {
    // An index (sha256, tagged) → a platform manifest named by sha512 → a config and two layers named by sha512.
    const repository = 'team/wide';
    const blob = (content: Buffer) => {
      const digest = fake.addBlob(content, 'sha512');
      fake.grant(repository, digest);
      return { digest, size: content.length };
    };
    const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })));
    const layers = [blob(randomBytes(60_000)), blob(randomBytes(30_000))];
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MediaType.OciManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
    }));
    const platform = fake.addManifest(repository, MediaType.OciManifest, manifest, undefined, 'sha512');
    const index = fake.addManifest(repository, MediaType.OciIndex, {
      schemaVersion: 2, mediaType: MediaType.OciIndex,
      manifests: [{ mediaType: MediaType.OciManifest, digest: platform, size: manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
    }, '1');
    assert.match(platform, /^sha512:[0-9a-f]{128}$/);

    const file = join(work, 'wide.tar');
    const exported = await cli(connected.configFile, 'export', '--output', file, '--platform', 'linux/amd64', '--json', `${repository}:1`);
    assert.equal(exported.code, 0, exported.stderr + exported.stdout);
    const entries = await bundleBlobs(file);
    for (const d of [index, platform, config.digest, ...layers.map((l) => l.digest)]) assert.ok(entries.includes(d), `the bundle carries ${d.slice(0, 20)}… as blobs/${d.split(':')[0]}/<hex>`);
    assert.equal(entries.filter((e) => e.startsWith('sha512:')).length, 4);

    const imported = await cli(gapped.configFile, 'import', '--json', file);
    assert.equal(imported.code, 0, imported.stderr + imported.stdout);
    assert.equal(imported.lines.find((l) => l.event === 'image')!.error, undefined);
    assert.equal(imported.lines.at(-1)!.blobs, 5, 'the summary counts the blobs read: index, manifest, config, two layers');
    const top = await get(`${gapped.mirror.url}/v2/${repository}/manifests/1`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(top.status, 200);
    assert.equal(sha256(top.body), index);
    const served = await get(`${gapped.mirror.url}/v2/${repository}/manifests/${platform}`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(served.status, 200);
    assert.equal(digestOf(served.body, 'sha512'), platform);
    for (const b of [config, ...layers]) {
      const got = await get(`${gapped.mirror.url}/v2/${repository}/blobs/${b.digest}`);
      assert.equal(got.status, 200);
      assert.equal(digestOf(got.body, 'sha512'), b.digest);
    }
    assert.deepEqual(await reported(gapped.mirror), onDisk(gapped.mirror.dataDir));

    // The same bundle with one byte of a sha512 layer flipped, into a fresh offline mirror: refused, nothing served.
    const bytes = await readFile(file);
    const victim = layers[0]!;
    const at = bytes.indexOf(fake.blobs.get(victim.digest)!.subarray(0, 64));
    assert.ok(at > 0);
    bytes[at + 1000] = bytes[at + 1000]! ^ 0x01;
    const bad = join(work, 'wide-bad.tar');
    await writeFile(bad, bytes);
    const { mirror: fresh, configFile, close } = await servingOffline();
    try {
      const refused = await cli(configFile, 'import', '--json', bad);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`bundle entry blobs/sha512/${victim.digest.slice(7)} is damaged: content does not match digest`));
      assert.equal((await get(`${fresh.url}/v2/${repository}/manifests/1`, { accept: ALL_MANIFEST_TYPES })).status, 404);
      assert.equal((await get(`${fresh.url}/v2/${repository}/blobs/${config.digest}`)).status, 404);
      assert.deepEqual(onDisk(fresh.dataDir), { bytes: 0, objects: 0 });
      assert.deepEqual(readdirSync(join(fresh.dataDir, 'tmp')), [], 'staged files removed');
    } finally {
      await close();
    }
  });

  it('works alone when no server holds the data directory, holding its lock meanwhile', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'longshore-alone-'));
    const configFile = `${dataDir}.json`;
    await writeFile(configFile, JSON.stringify({ dataDir, offline: true, upstreams: { 'docker.io': { url: 'http://127.0.0.1:9' } }, cache: { minFreeSpace: 0 } }));
    try {
      const result = await cli(configFile, 'import', '--json', first);
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.ok(!existsSync(join(dataDir, 'longshore.lock')), 'the lock is released');
      const mirror = await startMirror({ upstreams: { 'docker.io': { url: 'http://127.0.0.1:9' } }, offline: true }, dataDir);
      try {
        assert.equal((await get(`${mirror.url}/v2/team/app/manifests/1.0`, { accept: ALL_MANIFEST_TYPES })).status, 200);
        assert.deepEqual(await reported(mirror), onDisk(dataDir));
      } finally {
        await mirror.close();
      }
    } finally {
      await rm(configFile, { force: true });
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('one owner at a time', () => {
  it('a command finding another command\'s lock stops with LS_DATA_DIR_LOCKED (exit 2), and so does a server', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'longshore-owned-'));
    const configFile = `${dataDir}.json`;
    await writeFile(configFile, JSON.stringify({ dataDir, upstreams: { 'docker.io': { url: 'http://127.0.0.1:9' } } }));
    // A live process that is not us: our parent, as a running `longshore import`.
    await writeFile(join(dataDir, 'longshore.lock'), JSON.stringify({ pid: process.ppid, host: hostname(), role: 'command', task: 'import', since: new Date().toISOString() }));
    try {
      const result = await cli(configFile, 'gc', '--json');
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`in use by a running longshore import \\(pid ${process.ppid}`));
      assert.equal(result.lines[0]!.code, 'LS_DATA_DIR_LOCKED');
      await assert.rejects(startMirror({ upstreams: { 'docker.io': { url: 'http://127.0.0.1:9' } } }, dataDir), /running longshore import/);
    } finally {
      await rm(configFile, { force: true });
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
