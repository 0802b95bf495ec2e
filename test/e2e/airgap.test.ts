// Issue 16 end to end with real parts: a connected Longshore (real docker-registry upstream behind token
// auth, a counting proxy in front) warms a multi-arch image for one platform and exports it with a
// second image; skopeo reads the bundle; a second Longshore, offline with no reachable upstream, imports
// it while serving, and real dockerd, containerd (ctr) and skopeo pull both images through it. A bundle
// with one flipped byte is refused and nothing of it is served; an incremental bundle of an
// already-carried image plus a new one holds only the new one's blobs. The CLI runs as an operator runs
// it: a child process that finds each server through its data directory's lock.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { scanTar } from '../../src/jobs/bundle/tar.js';
import { Containerd, SNAPSHOTTER, writeHostsDir } from '../support/e2e/containerd.js';
import { Dockerd } from '../support/e2e/dockerd.js';
import { buildMultiArchImage, platformOf, type TestImage } from '../support/images.js';
import { Longshore, REPO_ROOT } from '../support/e2e/longshore.js';
import { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const STEP_TIMEOUT = 300_000;
const TOOLS = ['dockerd', 'containerd', 'ctr', 'docker', 'docker-registry', 'skopeo', 'openssl'] as const;

describeWithTools('air gap: warm, export, import, and pulls from an offline mirror', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let connected: Longshore;
  let gapped: Longshore;
  let dockerd: Dockerd;
  let containerd: Containerd;
  let skopeo: Skopeo;
  let work: string;
  let extra: TestImage;
  let newer: TestImage;
  let viaSkopeo: TestImage;
  let first: string;

  before(async () => {
    extra = buildMultiArchImage({ repository: 'library/extra', tag: '1', format: 'docker' });
    newer = buildMultiArchImage({ repository: 'library/newer', tag: '2', format: 'oci' });
    viaSkopeo = buildMultiArchImage({ repository: 'library/viaskopeo', tag: '3', format: 'oci' });
    upstream = teardown.add('upstream stack', await startUpstreamStack({ extraImages: [extra, newer, viaSkopeo] }), (s) => s.stop());
    connected = teardown.add('connected longshore', await Longshore.start({ upstreamUrl: upstream.proxy.url, ...upstream.mirrorCredentials }), (l) => l.stop());
    // Nothing listens on port 9, and the mirror is offline anyway.
    gapped = teardown.add('offline longshore', await Longshore.start({ upstreamUrl: 'http://127.0.0.1:9', username: 'x', password: 'y', config: { offline: true } }), (l) => l.stop());
    dockerd = teardown.add('dockerd', await Dockerd.start({ mirror: gapped }), (d) => d.stop());
    containerd = teardown.add('containerd', await Containerd.start(), (c) => c.stop());
    work = teardown.tempDir('work dir', 'longshore-airgap-');
    skopeo = new Skopeo(work);
    first = join(work, 'first.tar');
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnose = () => diagnostics({ upstream: upstream.proxy }, { longshore: connected, label: 'connected longshore', lines: 30 }, { longshore: gapped, label: 'offline longshore', lines: 30 });

  function cli(server: Longshore, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), ...args, '--config', join(server.dir, 'config.json')],
        { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, timeout: STEP_TIMEOUT }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
        });
    });
  }

  async function cliOk(server: Longshore, ...args: string[]): Promise<Array<Record<string, unknown>>> {
    const result = await cli(server, ...args);
    assert.equal(result.code, 0, `longshore ${args.join(' ')} failed:\n${result.stderr}\n${result.stdout}\n${diagnose()}`);
    return result.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async function bundleBlobs(file: string): Promise<string[]> {
    const handle = await open(file, 'r');
    try {
      return [...(await scanTar(handle, new Set())).files.keys()].filter((n) => n.startsWith('blobs/')).map((n) => n.slice(6).replace('/', ':')).sort();
    } finally {
      await handle.close();
    }
  }

  const amd64Blobs = (image: TestImage) => {
    const p = platformOf(image, 'amd64');
    return [p.config, ...p.layers];
  };

  it('warms a multi-arch image for one platform: upstream blob bytes are that platform\'s, each once', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.ocitest;
    upstream.proxy.reset();
    const lines = await cliOk(connected, 'warm', '--platform', 'linux/amd64', '--json', `docker.io/${image.repository}:${image.tag}`);
    assert.equal(lines[0]!.ref, `docker.io/${image.repository}:${image.tag}`);
    const expected = amd64Blobs(image);
    const counts = upstream.proxy.blobFetchCounts();
    assert.deepEqual([...counts].map(([d, n]) => `${d} x${n}`).sort(), expected.map((b) => `${b.digest} x1`).sort(), diagnose());
    assert.equal(upstream.proxy.blobBytes(), expected.reduce((s, b) => s + b.size, 0));
  });

  it('exports it with a second image into a bundle that skopeo reads', { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    const lines = await cliOk(connected, 'export', '--output', first, '--json', 'ocitest:1.0', 'docker.io/library/alpine:3.19');
    assert.equal(lines.at(-1)!.event, 'summary');
    // ocitest was warm: only alpine's amd64 blobs came from upstream.
    assert.deepEqual([...upstream.proxy.blobFetchCounts().keys()].sort(), amd64Blobs(upstream.alpine).map((b) => b.digest).sort());
    for (const image of [upstream.ocitest, upstream.alpine]) {
      const ref = `oci-archive:${first}:docker.io/${image.repository}:${image.tag}`;
      const raw = await skopeo.run(['inspect', '--raw', ref]);
      assert.equal(raw.code, 0, raw.stderr);
      assert.deepEqual(raw.stdout, image.index.bytes, 'the index, byte for byte');
      const copy = await skopeo.run(['copy', '--override-arch', 'amd64', '--override-os', 'linux', ref, `dir:${join(work, `copy-${image.tag}`)}`]);
      assert.equal(copy.code, 0, copy.stderr);
      for (const blob of amd64Blobs(image)) assert.deepEqual(readFileSync(join(work, `copy-${image.tag}`, blob.digest.slice(7))), blob.bytes);
    }
  });

  it('an offline mirror imports the bundle while serving; dockerd, ctr and skopeo pull both images from it', { timeout: STEP_TIMEOUT }, async () => {
    const lines = await cliOk(gapped, 'import', '--json', first);
    assert.equal(lines.filter((l) => l.event === 'image' && !l.error).length, 2, JSON.stringify(lines));
    for (const image of [upstream.ocitest, upstream.alpine]) {
      const short = image.repository.replace(/^library\//, '');
      const pulled = await dockerd.docker(['pull', `${short}:${image.tag}`]);
      assert.equal(pulled.code, 0, `docker pull ${short}:${image.tag}: ${pulled.stderr}\n${diagnose()}`);
      const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', `${short}:${image.tag}`]);
      assert.equal(id.stdout.trim(), platformOf(image, 'amd64').config.digest);
    }
    const hostsDir = writeHostsDir(mkdtempSync(join(work, 'hosts-')), gapped.url);
    for (const image of [upstream.ocitest, upstream.alpine]) {
      const ref = `docker.io/${image.repository}:${image.tag}`;
      const pulled = await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', SNAPSHOTTER, '--platform', 'linux/amd64', ref]);
      assert.equal(pulled.code, 0, `ctr pull ${ref}: ${pulled.stderr}\n${diagnose()}`);
      const row = (await containerd.images()).find((r) => r.ref === ref);
      assert.equal(row?.digest, image.index.digest);
      const copy = await skopeo.run(['copy', '--src-tls-verify=false', '--override-arch', 'amd64', '--override-os', 'linux', `docker://${gapped.host}/${image.repository}:${image.tag}`, `dir:${join(work, `gapped-${image.tag}`)}`]);
      assert.equal(copy.code, 0, copy.stderr);
    }
    // Nothing was ever asked of an upstream.
    const metrics = await (await fetch(`${gapped.url}/metrics`)).text();
    assert.doesNotMatch(metrics, /^longshore_upstream_requests_total\{/m);
  });

  it('refuses a bundle with one flipped byte, naming the entry, and serves nothing of it', { timeout: STEP_TIMEOUT }, async () => {
    const file = join(work, 'extra.tar');
    await cliOk(connected, 'export', '--output', file, 'extra:1');
    const bytes = readFileSync(file);
    const layer = platformOf(extra, 'amd64').layers[1]!;
    const at = bytes.indexOf(layer.bytes.subarray(0, 256));
    assert.ok(at > 0);
    bytes[at + 4096] = bytes[at + 4096]! ^ 0x40;
    writeFileSync(file, bytes);
    const result = await cli(gapped, 'import', file);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`bundle entry blobs/sha256/${layer.digest.slice(7)} is damaged`));
    const pulled = await dockerd.docker(['pull', 'extra:1']);
    assert.notEqual(pulled.code, 0, 'nothing of the refused bundle is served');
    const blob = await fetch(`${gapped.url}/v2/library/extra/blobs/${platformOf(extra, 'amd64').layers[0]!.digest}`);
    assert.equal(blob.status, 404);
  });

  it('an incremental bundle of an already-carried image plus a new one holds only the new one\'s blobs', { timeout: STEP_TIMEOUT }, async () => {
    const delta = join(work, 'delta.tar');
    await cliOk(connected, 'export', '--output', delta, '--since', first, 'ocitest:1.0', 'newer:2');
    const own = [newer.index, platformOf(newer, 'amd64').manifest, ...amd64Blobs(newer)].map((b) => b.digest).sort();
    assert.deepEqual(await bundleBlobs(delta), own);
    await cliOk(gapped, 'import', delta);
    const pulled = await dockerd.docker(['pull', 'newer:2']);
    assert.equal(pulled.code, 0, `${pulled.stderr}\n${diagnose()}`);
  });

  it('imports a plain `skopeo copy … oci-archive:` bundle', { timeout: STEP_TIMEOUT }, async () => {
    const file = join(work, 'skopeo.tar');
    const name = `docker.io/${viaSkopeo.repository}:${viaSkopeo.tag}`;
    const copied = await skopeo.run(['copy', '--src-tls-verify=false', '--override-arch', 'amd64', '--override-os', 'linux', `docker://${connected.host}/${viaSkopeo.repository}:${viaSkopeo.tag}`, `oci-archive:${file}:${name}`]);
    assert.equal(copied.code, 0, copied.stderr);
    const lines = await cliOk(gapped, 'import', '--json', file);
    assert.equal(lines.find((l) => l.event === 'image')?.ref, name);
    const pulled = await dockerd.docker(['pull', 'viaskopeo:3']);
    assert.equal(pulled.code, 0, `${pulled.stderr}\n${diagnose()}`);
    const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', 'viaskopeo:3']);
    assert.equal(id.stdout.trim(), platformOf(viaSkopeo, 'amd64').config.digest);
  });
});
