// containerd as a Longshore client: a private containerd, and `ctr images pull --hosts-dir DIR`
// where DIR/docker.io/hosts.toml names Longshore as docker.io's mirror (README, "containerd").
// containerd then sends Docker Hub names with `?ns=docker.io` on every request, which is how
// Longshore picks the upstream. The counting proxy in front of the upstream registry shows what
// Longshore fetched there.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Containerd, SNAPSHOTTER, writeHostsDir } from '../support/e2e/containerd.js';
import { allBlobs, platformOf, type TestImage } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startLongshoreOverStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

/** Safety bound for one step; a pull here moves a few MB over loopback. */
const STEP_TIMEOUT = 240_000;
const TOOLS = ['containerd', 'ctr', 'docker-registry', 'skopeo', 'openssl'] as const;

describeWithTools('ctr images pull through Longshore as docker.io mirror (hosts.toml)', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let containerd: Containerd;
  let hostsDir: string;

  before(async () => {
    ({ upstream, longshore } = await startLongshoreOverStack(teardown));
    containerd = teardown.add('containerd', await Containerd.start(), (c) => c.stop());
    const dir = teardown.tempDir('hosts dir', 'longshore-hosts-');
    hostsDir = writeHostsDir(dir, longshore.url);
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  /** What the rig saw, for failure messages. */
  const diagnose = (mark = 0) => diagnostics({ upstream: upstream.proxy }, { longshore, since: mark }, { process: containerd.process, label: 'containerd', lines: 20 });

  async function ctr(mark: number, ...args: string[]): Promise<string> {
    const result = await containerd.ctr(args);
    assert.equal(result.code, 0, `ctr ${args.join(' ')} failed: ${result.stderr.trim()}\n${result.stdout.split('\n').slice(-10).join('\n')}\n${diagnose(mark)}`);
    return result.stdout;
  }

  /** `ctr images pull` through the hosts dir; `platform` undefined pulls every platform. */
  async function pull(mark: number, ref: string, platform: string | undefined): Promise<void> {
    const platformArgs = platform === undefined ? ['--all-platforms'] : ['--platform', platform];
    await ctr(mark, 'images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', SNAPSHOTTER, ...platformArgs, ref);
  }

  /** Removes the image and lets GC take its content, so the next pull has to fetch everything. */
  async function removeImage(ref: string, image: TestImage): Promise<void> {
    await ctr(0, 'images', 'rm', '--sync', ref);
    const left = await containerd.contentDigests();
    const stillThere = allBlobs(image).map((b) => b.digest).filter((d) => left.includes(d));
    assert.deepEqual(stillThere, [], `content of ${ref} is still in containerd after ctr images rm --sync`);
  }

  async function expectImage(ref: string, image: TestImage): Promise<void> {
    const row = (await containerd.images()).find((r) => r.ref === ref);
    assert.ok(row, `ctr images ls has no ${ref}`);
    assert.deepEqual([row.mediaType, row.digest], [image.index.mediaType, image.index.digest], `${ref} is not the published index`);
  }

  /** Every request Longshore answered since `mark` carried containerd's `ns=docker.io`. */
  async function expectNamespaceOnEveryRequest(mark: number): Promise<void> {
    const served = (await longshore.requestsSince(mark));
    assert.ok(served.length > 0, `Longshore answered no request\n${diagnose(mark)}`);
    const withoutNs = served.filter((r) => new URL(r.path, 'http://x').searchParams.get('ns') !== 'docker.io');
    assert.deepEqual(withoutNs.map((r) => `${r.method} ${r.path}`), [], `requests without ?ns=docker.io\n${diagnose(mark)}`);
  }

  function blobDigests(image: TestImage, architectures: readonly string[]): string[] {
    const blobs = architectures.flatMap((arch) => {
      const p = platformOf(image, arch);
      return [p.config, ...p.layers].map((b) => b.digest);
    });
    return [...new Set(blobs)];
  }

  /** Each expected blob fetched from upstream exactly once (401 challenges aside), and nothing else. */
  function expectEachBlobFetchedOnce(expected: readonly string[], mark: number): void {
    const counts = upstream.proxy.blobFetchCounts();
    const seen = [...new Set([...expected, ...counts.keys()])].map((d) => `${d} x${counts.get(d) ?? 0}`).sort();
    assert.deepEqual(seen, expected.map((d) => `${d} x1`).sort(),
      `each blob must be fetched from upstream exactly once\n${diagnose(mark)}`);
  }

  /** Longshore answered a GET for each digest from its cache. */
  async function expectServedFromCache(image: TestImage, digests: readonly string[], mark: number): Promise<void> {
    const hits = new Set((await longshore.requestsSince(mark))
      .filter((r) => r.method === 'GET' && r.status === 200 && r.cache === 'hit')
      .map((r) => new URL(r.path, 'http://x').pathname));
    const missing = digests.filter((d) => !hits.has(`/v2/${image.repository}/blobs/${d}`));
    assert.deepEqual(missing, [], `blobs containerd did not get from Longshore's cache\n${diagnose(mark)}`);
  }

  it('pulls alpine for linux/amd64 cold with ?ns=docker.io on every request, fetching each blob upstream once', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    const ref = `docker.io/${image.repository}:${image.tag}`;
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    await pull(mark, ref, 'linux/amd64');
    await expectImage(ref, image);
    await expectNamespaceOnEveryRequest(mark);
    expectEachBlobFetchedOnce(blobDigests(image, ['amd64']), mark);
  });

  it('pulls alpine again after removing it and its content, with no blob GET upstream', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    const ref = `docker.io/${image.repository}:${image.tag}`;
    await removeImage(ref, image);
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    await pull(mark, ref, 'linux/amd64');
    await expectImage(ref, image);
    await expectNamespaceOnEveryRequest(mark);
    assert.deepEqual(upstream.proxy.blobGets(), [], `warm pull fetched blobs upstream\n${diagnose(mark)}`);
    await expectServedFromCache(image, blobDigests(image, ['amd64']), mark);
  });

  it('pulls the OCI image for all platforms cold, fetching each blob of both platforms upstream once', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.ocitest;
    const ref = `docker.io/${image.repository}:${image.tag}`;
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    await pull(mark, ref, undefined);
    await expectImage(ref, image);
    await expectNamespaceOnEveryRequest(mark);
    expectEachBlobFetchedOnce(blobDigests(image, ['amd64', 'arm64']), mark);
    const content = await containerd.contentDigests();
    const absent = allBlobs(image).map((b) => b.digest).filter((d) => !content.includes(d));
    assert.deepEqual(absent, [], `containerd lacks content of ${ref} after --all-platforms`);
  });

  it('pulls the OCI image by index digest from cache without any upstream request', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.ocitest;
    await removeImage(`docker.io/${image.repository}:${image.tag}`, image);
    const ref = `docker.io/${image.repository}@${image.index.digest}`;
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    await pull(mark, ref, 'linux/amd64');
    await expectImage(ref, image);
    await expectNamespaceOnEveryRequest(mark);
    // Digests are immutable: cached content addressed by digest is never revalidated.
    assert.deepEqual(upstream.proxy.requests.map((r) => `${r.method} ${r.path}`), [],
      `a pull by digest of cached content contacted the upstream\n${diagnose(mark)}`);
    await expectServedFromCache(image, blobDigests(image, ['amd64']), mark);
  });
});
