// Many clients, one cold cache: two dockerds, each configured with Longshore as its registry mirror,
// pull four tags that share their base layers, all at once. Each dockerd coalesces its own downloads
// of a shared layer, so only Longshore can keep the second daemon's requests from reaching the
// upstream: the counting proxy must see every blob and manifest fetched exactly once.
// Then the upstream fails, and a removed tag is pulled again from the cache: served stale (tagTTL 0,
// so the tag is revalidated on every pull and the revalidation fails), and once more after a restart
// in offline mode on the same port and cache, which must not contact the upstream at all.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Dockerd, type DockerResult } from '../support/e2e/dockerd.js';
import { buildImageFamily, platformOf, type TestImage } from '../support/images.js';
import { Longshore, type LongshoreOptions } from '../support/e2e/longshore.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

/** Safety bound for one step; the parallel pulls move about 20 MB over loopback in all. */
const STEP_TIMEOUT = 300_000;
const TOOLS = ['dockerd', 'containerd', 'docker', 'docker-registry', 'skopeo', 'openssl'] as const;
const DAEMONS = 2;

describeWithTools('parallel docker pulls of tags sharing layers through Longshore', TOOLS, () => {
  const teardown = new Teardown();
  const family = buildImageFamily({ repository: 'library/app', tags: ['1', '2', '3', '4'], format: 'docker' });
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let longshoreOptions: LongshoreOptions;
  const dockerds: Dockerd[] = [];

  before(async () => {
    upstream = teardown.add('upstream stack', await startUpstreamStack({ extraImages: family }), (s) => s.stop());
    longshoreOptions = {
      upstreamUrl: upstream.proxy.url,
      ...upstream.mirrorCredentials,
      // Every pull revalidates its tag, so a pull while the upstream is down has to take the stale path.
      upstream: { tagTTL: 0 },
    };
    longshore = teardown.add('longshore', await Longshore.start(longshoreOptions), (l) => l.stop());
    for (let i = 0; i < DAEMONS; i++) {
      dockerds.push(teardown.add(`dockerd ${i}`, await Dockerd.start({ mirror: longshore }), (d) => d.stop()));
    }
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  /** What the rig saw, for failure messages. */
  const diagnose = (mark = 0) => diagnostics({ upstream: upstream.proxy }, { longshore, since: mark }, ...dockerds.map((d, i) => ({ process: d.process, label: `dockerd ${i}`, lines: 20 })));

  function reference(image: TestImage): string {
    return `${image.repository.replace(/^library\//, '')}:${image.tag}`;
  }

  function expectSucceeded(what: string, result: DockerResult, mark: number): void {
    assert.equal(result.code, 0, `${what} failed: ${result.stderr.trim()}\n${diagnose(mark)}`);
  }

  async function imageId(dockerd: Dockerd, ref: string): Promise<string> {
    return (await dockerd.dockerOk(['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
  }

  async function removeImage(dockerd: Dockerd, ref: string): Promise<void> {
    await dockerd.dockerOk(['image', 'rm', ref]);
    const gone = await dockerd.docker(['image', 'inspect', ref]);
    assert.notEqual(gone.code, 0, `${ref} is still present after docker image rm`);
  }

  /** `digest xN` for every digest fetched (non-401 GET) or expected, so a diff shows both kinds of surprise. */
  function fetchCounts(kind: 'blob' | 'manifest', expected: readonly string[]): { seen: string[]; wanted: string[] } {
    const counts = new Map<string, number>(expected.map((digest) => [digest, 0]));
    for (const r of upstream.proxy.ofKind(kind, 'GET')) {
      if (r.status !== 401) counts.set(r.reference!, (counts.get(r.reference!) ?? 0) + 1);
    }
    const seen = [...counts].map(([digest, n]) => `${digest} x${n}`).sort();
    const wanted = [...new Set(expected)].map((digest) => `${digest} x1`).sort();
    return { seen, wanted };
  }

  it(`pulls ${family.length} tags on ${DAEMONS} daemons at once, fetching each blob and manifest upstream once`, { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    const pulls = dockerds.flatMap((dockerd, d) => family.map(async (image) => ({
      what: `dockerd ${d}: docker pull ${reference(image)}`,
      result: await dockerd.docker(['pull', reference(image)]),
    })));
    for (const { what, result } of await Promise.all(pulls)) {
      expectSucceeded(what, result, mark);
      assert.match(result.stdout, /Downloaded newer image/, `${what} did not download:\n${result.stdout}`);
    }
    for (const [d, dockerd] of dockerds.entries()) {
      for (const image of family) {
        assert.equal(await imageId(dockerd, reference(image)), platformOf(image, 'amd64').config.digest,
          `dockerd ${d} has the wrong image for ${reference(image)}`);
      }
    }

    const blobs = family.flatMap((image) => {
      const amd64 = platformOf(image, 'amd64');
      return [amd64.config, ...amd64.layers].map((b) => b.digest);
    });
    const blobCounts = fetchCounts('blob', blobs);
    assert.deepEqual(blobCounts.seen, blobCounts.wanted,
      `each blob (${blobCounts.wanted.length}, two base layers shared by all tags) must be fetched from upstream exactly once\n${diagnose(mark)}`);
    const manifests = family.flatMap((image) => [image.index.digest, platformOf(image, 'amd64').manifest.digest]);
    const manifestCounts = fetchCounts('manifest', manifests);
    assert.deepEqual(manifestCounts.seen, manifestCounts.wanted,
      `each index and manifest must be fetched (GET) from upstream exactly once\n${diagnose(mark)}`);
  });

  it('pulls a removed tag again from cache while the upstream answers 503, serving the tag stale', { timeout: STEP_TIMEOUT }, async () => {
    const image = family[1]!;
    const dockerd = dockerds[0]!;
    await removeImage(dockerd, reference(image));
    upstream.proxy.fault = { kind: 'unavailable' };
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    try {
      const result = await dockerd.docker(['pull', reference(image)]);
      expectSucceeded(`docker pull ${reference(image)} with the upstream down`, result, mark);
      assert.match(result.stdout, /Downloaded newer image/, `docker pull did not download:\n${result.stdout}`);
      assert.equal(await imageId(dockerd, reference(image)), platformOf(image, 'amd64').config.digest);
      assert.deepEqual(upstream.proxy.blobGets(), [], `a pull from cache sent blob GETs upstream\n${diagnose(mark)}`);

      const served = (await longshore.requestsSince(mark));
      const tagPath = `/v2/${image.repository}/manifests/${image.tag}`;
      assert.ok(served.some((r) => r.path === tagPath && r.status === 200 && r.cache === 'stale'),
        `Longshore must answer the tag ${tagPath} from cache as stale while the upstream fails\n${diagnose(mark)}`);
      // The image's own layers went with `docker image rm` (the base layers stay, shared with the
      // other tags): dockerd must have fetched them again, and Longshore served them from disk.
      const own = platformOf(image, 'amd64').layers.slice(2).map((l) => l.digest);
      for (const digest of [platformOf(image, 'amd64').config.digest, ...own]) {
        assert.ok(served.some((r) => r.method === 'GET' && r.path === `/v2/${image.repository}/blobs/${digest}` && r.status === 200 && r.cache === 'hit'),
          `Longshore must serve blob ${digest} from cache\n${diagnose(mark)}`);
      }
    } finally {
      upstream.proxy.fault = null;
    }
  });

  it('restarted with offline: true on the same cache and port, pulls a removed tag without contacting the upstream', { timeout: STEP_TIMEOUT }, async () => {
    const image = family[2]!;
    const dockerd = dockerds[1]!;
    await removeImage(dockerd, reference(image));
    // Stop the online instance but keep its cache; its teardown step still removes the files.
    await longshore.process.stop(10_000);
    longshore = teardown.add('offline longshore', await Longshore.start({
      ...longshoreOptions,
      config: { listen: longshore.host, dataDir: longshore.dataDir, offline: true },
    }), (l) => l.stop());
    // The upstream is broken as well: an instance that does contact it would at least be seen trying.
    upstream.proxy.fault = { kind: 'unavailable' };
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    try {
      const result = await dockerd.docker(['pull', reference(image)]);
      expectSucceeded(`docker pull ${reference(image)} from the offline mirror`, result, mark);
      assert.match(result.stdout, /Downloaded newer image/, `docker pull did not download:\n${result.stdout}`);
      assert.equal(await imageId(dockerd, reference(image)), platformOf(image, 'amd64').config.digest);

      // Never pulled, so not cached: the offline mirror must say so without asking the upstream.
      const uncached = upstream.ocitest;
      const manifest = await fetch(`${longshore.url}/v2/${uncached.repository}/manifests/${uncached.tag}`, {
        headers: { accept: uncached.index.mediaType },
      });
      const manifestError = await manifest.json() as { errors?: Array<{ code?: string }> };
      assert.deepEqual([manifest.status, manifestError.errors?.[0]?.code], [404, 'MANIFEST_UNKNOWN'],
        `an uncached manifest must be MANIFEST_UNKNOWN offline\n${diagnose(mark)}`);
      const blob = await fetch(`${longshore.url}/v2/${uncached.repository}/blobs/${platformOf(uncached, 'amd64').config.digest}`);
      const blobError = await blob.json() as { errors?: Array<{ code?: string }> };
      assert.deepEqual([blob.status, blobError.errors?.[0]?.code], [404, 'BLOB_UNKNOWN'],
        `an uncached blob must be BLOB_UNKNOWN offline\n${diagnose(mark)}`);

      assert.deepEqual(upstream.proxy.requests.map((r) => `${r.method} ${r.path}`), [],
        `an offline Longshore must not send any request upstream\n${diagnose(mark)}`);
    } finally {
      upstream.proxy.fault = null;
    }
  });
});
