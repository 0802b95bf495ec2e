// Issue 6: two real upstreams. Two distribution registries, each behind its own token server and
// counting proxy, with different mirror accounts: one configured as docker.io, one as ghcr.io.
// containerd reaches both through hosts.toml (it adds ?ns=<host>), skopeo through the path prefix
// (127.0.0.1:PORT/ghcr.io/…), dockerd as a docker.io registry mirror. The ghcr.io image is built on
// the docker.io alpine's base layer, byte for byte: the mirror fetches that layer once, from whichever
// upstream asked first. A host that is not configured causes no connection anywhere.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { Containerd, SNAPSHOTTER, writeHostsDir } from '../support/e2e/containerd.js';
import { Dockerd } from '../support/e2e/dockerd.js';
import { buildImageOnBase, buildMultiArchImage, platformOf, type TestImage } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const STEP_TIMEOUT = 300_000;
const TOOLS = ['dockerd', 'docker', 'containerd', 'ctr', 'docker-registry', 'skopeo', 'openssl'] as const;
const HUB_ACCOUNT = { username: 'hub-mirror', password: 'hub-mirror-Secret-7781' };
const GHCR_ACCOUNT = { username: 'ghcr-mirror', password: 'ghcr-mirror-Secret-3319' };

describeWithTools('two upstreams (docker.io and ghcr.io) through one Longshore', TOOLS, () => {
  const teardown = new Teardown();
  let hub: UpstreamStack;
  let ghcr: UpstreamStack;
  /** ghcr.io/owner/img:1.0 — alpine's base layer plus one of its own. */
  let ownerImg: TestImage;
  /** ghcr.io/owner/tool:2.0 — shares nothing with docker.io. */
  let ownerTool: TestImage;
  let longshore: Longshore;
  let containerd: Containerd;
  let dockerd: Dockerd;
  let hostsDir: string;
  let skopeo: Skopeo;

  before(async () => {
    hub = teardown.add('docker.io upstream', await startUpstreamStack({ mirrorCredentials: HUB_ACCOUNT }), (s) => s.stop());
    ownerImg = buildImageOnBase({ repository: 'owner/img', tag: '1.0', format: 'docker' }, hub.alpine);
    ownerTool = buildMultiArchImage({ repository: 'owner/tool', tag: '2.0', format: 'oci' });
    ghcr = teardown.add('ghcr.io upstream', await startUpstreamStack({ mirrorCredentials: GHCR_ACCOUNT, extraImages: [ownerImg, ownerTool] }), (s) => s.stop());
    longshore = teardown.add('longshore', await Longshore.start({
      upstreamUrl: hub.proxy.url,
      ...HUB_ACCOUNT,
      logLevel: 'debug',
      config: {
        upstreams: {
          'docker.io': { url: hub.proxy.url, ...HUB_ACCOUNT },
          'ghcr.io': { url: ghcr.proxy.url, ...GHCR_ACCOUNT },
        },
      },
    }), (l) => l.stop());
    containerd = teardown.add('containerd', await Containerd.start(), (c) => c.stop());
    const dir = teardown.tempDir('client dir', 'longshore-multi-');
    hostsDir = writeHostsDir(join(dir, 'hosts'), longshore.url, 'docker.io');
    writeHostsDir(hostsDir, longshore.url, 'ghcr.io');
    skopeo = new Skopeo(dir);
    dockerd = teardown.add('dockerd', await Dockerd.start({ mirror: longshore }), (d) => d.stop());
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnose = (mark = 0) => diagnostics({ upstream: hub.proxy, label: 'docker.io upstream' }, { upstream: ghcr.proxy, label: 'ghcr.io upstream' }, { longshore, since: mark, lines: 30 });

  /** Upstream request and connection counts start again; token requests are kept for the last test. */
  function resetCounters(): void {
    for (const stack of [hub, ghcr]) stack.proxy.reset();
  }

  function amd64Blobs(image: TestImage): string[] {
    const p = platformOf(image, 'amd64');
    return [p.config, ...p.layers].map((b) => b.digest);
  }

  /** Blob digests fetched from one upstream, each with its count (401 challenges aside). */
  function fetched(stack: UpstreamStack): string[] {
    return [...stack.proxy.blobFetchCounts()].map(([digest, count]) => `${digest} x${count}`).sort();
  }

  async function ctrPull(mark: number, ref: string): Promise<void> {
    const result = await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', SNAPSHOTTER, '--platform', 'linux/amd64', ref]);
    assert.equal(result.code, 0, `ctr pull ${ref} failed: ${result.stderr.trim()}\n${diagnose(mark)}`);
    const row = (await containerd.images()).find((r) => r.ref === ref);
    assert.ok(row, `ctr images ls has no ${ref}`);
  }

  async function expectNamespace(mark: number, ns: string): Promise<void> {
    const served = (await longshore.requestsSince(mark));
    assert.ok(served.length > 0);
    const other = served.filter((r) => new URL(r.path, 'http://x').searchParams.get('ns') !== ns);
    assert.deepEqual(other.map((r) => `${r.method} ${r.path}`), [], `requests without ?ns=${ns}\n${diagnose(mark)}`);
  }

  it('containerd pulls docker.io/library/alpine through hosts.toml, fetching from the docker.io upstream only', { timeout: STEP_TIMEOUT }, async () => {
    resetCounters();
    const mark = await longshore.settledMark();
    await ctrPull(mark, `docker.io/${hub.alpine.repository}:${hub.alpine.tag}`);
    await expectNamespace(mark, 'docker.io');
    assert.deepEqual(fetched(hub), amd64Blobs(hub.alpine).map((d) => `${d} x1`).sort(), diagnose(mark));
    assert.equal(ghcr.proxy.connections, 0, `the ghcr.io upstream was contacted\n${diagnose(mark)}`);
  });

  it('containerd pulls ghcr.io/owner/img through hosts.toml; the base layer shared with alpine comes from the cache', { timeout: STEP_TIMEOUT }, async () => {
    const shared = platformOf(hub.alpine, 'amd64').layers[0]!.digest;
    // containerd would not ask for a layer it holds: drop alpine and its content first.
    const removed = await containerd.ctr(['images', 'rm', '--sync', `docker.io/${hub.alpine.repository}:${hub.alpine.tag}`]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.ok(!(await containerd.contentDigests()).includes(shared), 'containerd still holds the shared layer');
    resetCounters();
    const mark = await longshore.settledMark();
    await ctrPull(mark, `ghcr.io/${ownerImg.repository}:${ownerImg.tag}`);
    await expectNamespace(mark, 'ghcr.io');
    assert.equal(platformOf(ownerImg, 'amd64').layers[0]!.digest, shared);
    const own = amd64Blobs(ownerImg).filter((d) => d !== shared);
    assert.deepEqual(fetched(ghcr), own.map((d) => `${d} x1`).sort(), `only the blobs docker.io did not already bring\n${diagnose(mark)}`);
    assert.deepEqual(fetched(hub), [], diagnose(mark));
    const sharedServed = (await longshore.requestsSince(mark)).find((r) => r.method === 'GET' && r.path.startsWith(`/v2/${ownerImg.repository}/blobs/${shared}`));
    assert.equal(sharedServed?.cache, 'hit', diagnose(mark));
  });

  it('skopeo copies 127.0.0.1:PORT/ghcr.io/owner/tool by path prefix, from the ghcr.io upstream only', { timeout: STEP_TIMEOUT }, async () => {
    resetCounters();
    const mark = await longshore.settledMark();
    const ref = `docker://${longshore.host}/ghcr.io/${ownerTool.repository}:${ownerTool.tag}`;
    const raw = await skopeo.run(['inspect', '--raw', '--tls-verify=false', ref]);
    assert.equal(raw.code, 0, `${raw.stderr}\n${diagnose(mark)}`);
    assert.deepEqual(raw.stdout, ownerTool.index.bytes);
    const dest = mkdtempSync(join(tmpdir(), 'longshore-skopeo-dest-'));
    try {
      const copy = await skopeo.run(['copy', '--all', '--preserve-digests', '--src-tls-verify=false', ref, `dir:${join(dest, 'img')}`]);
      assert.equal(copy.code, 0, `${copy.stderr}\n${diagnose(mark)}`);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
    const blobs = [...new Set(ownerTool.platforms.flatMap((p) => [p.config, ...p.layers]).map((b) => b.digest))];
    assert.deepEqual(fetched(ghcr), blobs.map((d) => `${d} x1`).sort(), diagnose(mark));
    assert.equal(hub.proxy.connections, 0, `the docker.io upstream was contacted\n${diagnose(mark)}`);
  });

  it('dockerd pulls ocitest through the mirror from the docker.io upstream', { timeout: STEP_TIMEOUT }, async () => {
    resetCounters();
    const mark = await longshore.settledMark();
    const ref = `${hub.ocitest.repository.replace(/^library\//, '')}:${hub.ocitest.tag}`;
    const pulled = await dockerd.docker(['pull', ref]);
    assert.equal(pulled.code, 0, `${pulled.stderr}\n${diagnose(mark)}`);
    assert.deepEqual(fetched(hub), amd64Blobs(hub.ocitest).map((d) => `${d} x1`).sort(), diagnose(mark));
    assert.equal(ghcr.proxy.connections, 0, `the ghcr.io upstream was contacted\n${diagnose(mark)}`);
  });

  it('refuses a host that is not configured, by ns or by path, without connecting to any upstream', { timeout: STEP_TIMEOUT }, async () => {
    resetCounters();
    const tokenRequests = [hub.tokens.requestCount, ghcr.tokens.requestCount];
    const mark = await longshore.settledMark();
    for (const path of [
      '/v2/library/alpine/manifests/3.19?ns=quay.io',
      `/v2/owner/img/blobs/${platformOf(ownerImg, 'amd64').layers[1]!.digest}?ns=evil.example:443`,
      '/v2/quay.io/owner/img/manifests/1.0',
      '/v2/127.0.0.1:1/owner/img/manifests/1.0',
      '/v2/quay.io/owner/img/tags/list',
    ]) {
      const res = await fetch(`${longshore.url}${path}`);
      const body = await res.json() as { errors: Array<{ code: string }> };
      assert.equal(res.status, 404, path);
      assert.equal(body.errors[0]?.code, 'NAME_UNKNOWN', path);
    }
    const inspect = await skopeo.run(['inspect', '--raw', '--tls-verify=false', `docker://${longshore.host}/quay.io/owner/img:1.0`]);
    assert.notEqual(inspect.code, 0);
    assert.deepEqual([hub.proxy.connections, ghcr.proxy.connections], [0, 0], diagnose(mark));
    assert.deepEqual([hub.tokens.requestCount, ghcr.tokens.requestCount], tokenRequests, 'a token server was asked');
  });

  it('sent each upstream\'s account to its own token server only, and logged neither password', () => {
    const accounts = (stack: UpstreamStack) => [...new Set(stack.tokens.requests.map((r) => r.account))];
    assert.deepEqual(accounts(hub), [HUB_ACCOUNT.username]);
    assert.deepEqual(accounts(ghcr), [GHCR_ACCOUNT.username]);
    const realms = new Set(longshore.records.filter((r) => r.msg === 'token request').map((r) => String(r.realm)));
    assert.ok(realms.has(hub.tokens.realm) && realms.has(ghcr.tokens.realm), `token requests went to ${[...realms].join(', ')}`);
    for (const account of [...accounts(hub), ...accounts(ghcr)]) assert.ok(account === null || [HUB_ACCOUNT.username, GHCR_ACCOUNT.username].includes(account));
    assert.ok(!accounts(ghcr).includes(HUB_ACCOUNT.username), 'the ghcr.io token server saw the docker.io account');
    assert.ok(!accounts(hub).includes(GHCR_ACCOUNT.username), 'the docker.io token server saw the ghcr.io account');
    const log = JSON.stringify(longshore.records);
    for (const { username, password } of [HUB_ACCOUNT, GHCR_ACCOUNT]) {
      assert.ok(!log.includes(password), 'a password is in the log');
      assert.ok(!log.includes(Buffer.from(`${username}:${password}`).toString('base64')), 'Basic credentials are in the log');
    }
  });
});
