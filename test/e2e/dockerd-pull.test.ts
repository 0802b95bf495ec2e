// The core read path end to end: a real dockerd, configured with Longshore as its registry mirror,
// pulls Docker-Hub-style names; Longshore fills from a real distribution registry behind token
// auth. The counting proxy in front of that registry shows what Longshore fetched upstream.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Dockerd } from '../support/e2e/dockerd.js';
import { platformOf, type TestImage } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startLongshoreOverStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

/** Safety bound for one step; a pull here moves a few MB over loopback. */
const STEP_TIMEOUT = 240_000;
const TOOLS = ['dockerd', 'containerd', 'docker', 'docker-registry', 'skopeo', 'openssl'] as const;

describeWithTools('docker pull through Longshore as registry mirror', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let dockerd: Dockerd;

  before(async () => {
    ({ upstream, longshore } = await startLongshoreOverStack(teardown));
    dockerd = teardown.add('dockerd', await Dockerd.start({ mirror: longshore }), (d) => d.stop());
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  /** What the rig saw, for failure messages. */
  const diagnose = () => diagnostics({ upstream: upstream.proxy }, { longshore }, { process: dockerd.process, label: 'dockerd' });

  async function docker(...args: string[]): Promise<string> {
    const result = await dockerd.docker(args);
    assert.equal(result.code, 0, `docker ${args.join(' ')} failed: ${result.stderr.trim()}\n${diagnose()}`);
    return result.stdout;
  }

  /** Docker Hub short name as dockerd knows it: `library/alpine` → `alpine`. */
  function shortName(image: TestImage): string {
    return image.repository.replace(/^library\//, '');
  }

  /** Pulls from an empty local store and checks the pull really downloaded the image. */
  async function pullFresh(reference: string): Promise<void> {
    const output = await docker('pull', reference);
    assert.match(output, /Downloaded newer image/, `docker pull ${reference} did not download:\n${output}`);
  }

  async function removeImage(reference: string): Promise<void> {
    await docker('image', 'rm', reference);
    const gone = await dockerd.docker(['image', 'inspect', reference]);
    assert.notEqual(gone.code, 0, `${reference} is still present after docker image rm`);
  }

  function expectEachBlobFetchedOnce(image: TestImage): void {
    const amd64 = platformOf(image, 'amd64');
    const expected = [amd64.config, ...amd64.layers].map((b) => b.digest).sort();
    const counts = upstream.proxy.blobFetchCounts();
    const seen = expected.map((digest) => `${digest} x${counts.get(digest) ?? 0}`);
    assert.deepEqual(seen, expected.map((digest) => `${digest} x1`),
      `each amd64 blob must be fetched from upstream exactly once\n${diagnose()}`);
  }

  async function inspect(reference: string, format: string): Promise<string> {
    return (await docker('image', 'inspect', '--format', format, reference)).trim();
  }

  for (const which of ['alpine', 'ocitest'] as const) {
    const tagged = (): string => `${shortName(upstream[which])}:${upstream[which].tag}`;

    it(`pulls ${which} cold, fetching each blob of the amd64 image from upstream once`, { timeout: STEP_TIMEOUT }, async () => {
      const image = upstream[which];
      upstream.proxy.reset();
      upstream.tokens.reset();
      await pullFresh(tagged());
      expectEachBlobFetchedOnce(image);
      assert.equal(await inspect(tagged(), '{{.Id}}'), platformOf(image, 'amd64').config.digest);
      const accounts = new Set(upstream.tokens.requests.map((r) => r.account));
      assert.deepEqual([...accounts], ['mirror'], `Longshore must ask for tokens as the mirror user\n${diagnose()}`);
    });

    it(`records the ${which} index digest in RepoDigests`, { timeout: STEP_TIMEOUT }, async () => {
      const image = upstream[which];
      const repoDigests = JSON.parse(await inspect(tagged(), '{{json .RepoDigests}}')) as string[];
      assert.ok(repoDigests.includes(`${shortName(image)}@${image.index.digest}`),
        `RepoDigests ${JSON.stringify(repoDigests)} lacks ${shortName(image)}@${image.index.digest}`);
    });

    it(`pulls ${which} again after removing it, with no blob GET upstream`, { timeout: STEP_TIMEOUT }, async () => {
      await removeImage(tagged());
      upstream.proxy.reset();
      await pullFresh(tagged());
      assert.deepEqual(upstream.proxy.blobGets(), [], `warm pull fetched blobs upstream\n${diagnose()}`);
      assert.equal(await inspect(tagged(), '{{.Id}}'), platformOf(upstream[which], 'amd64').config.digest);
    });
  }

  it('pulls alpine by index digest', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    const byDigest = `${shortName(image)}@${image.index.digest}`;
    await removeImage(`${shortName(image)}:${image.tag}`);
    await pullFresh(byDigest);
    assert.equal(await inspect(byDigest, '{{.Id}}'), platformOf(image, 'amd64').config.digest);
  });
});
