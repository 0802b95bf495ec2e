// skopeo as a Longshore client, addressing it directly as a registry (`docker://127.0.0.1:PORT/...`,
// so names go to the default upstream, docker.io). skopeo reads manifests with GET only, never HEAD,
// and copies every manifest and blob of an index with --all: what it writes must be byte for byte
// what was published upstream.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { allBlobs, platformOf, sha256Digest, type TestImage } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import type { Skopeo } from '../support/e2e/skopeo.js';
import { expectSkopeoDir } from '../support/e2e/skopeo-dir.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startSkopeoOverStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

/** Safety bound for one step; a copy here moves a few MB over loopback. */
const STEP_TIMEOUT = 240_000;
const TOOLS = ['skopeo', 'docker-registry', 'openssl'] as const;

interface InspectOutput {
  Name?: string;
  Digest?: string;
  RepoTags?: string[];
  Architecture?: string;
  Os?: string;
  Layers?: string[];
}

describeWithTools('skopeo inspect and copy through Longshore', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let skopeo: Skopeo;

  before(async () => {
    ({ upstream, longshore, skopeo } = await startSkopeoOverStack(teardown, 'longshore-skopeo-'));
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  /** What the rig saw, for failure messages. */
  const diagnose = (mark = 0) => diagnostics({ upstream: upstream.proxy }, { longshore, since: mark });

  function run(mark: number, ...args: string[]): Promise<Buffer> {
    return skopeo.runOk(args, { explain: () => diagnose(mark) });
  }

  function source(image: TestImage, reference = `:${image.tag}`): string {
    return `docker://${longshore.host}/${image.repository}${reference}`;
  }

  function hex(digest: string): string {
    return digest.slice('sha256:'.length);
  }

  /**
   * An `oci:` copy holds one index.json entry naming the published index under the tag, and under
   * blobs/sha256/ exactly the published manifests and blobs, each named by the digest of its bytes.
   */
  function expectOciCopy(dir: string, image: TestImage, refName: string): void {
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
      manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
    };
    assert.deepEqual(index.manifests.map((m) => [m.mediaType, m.digest, m.size, m.annotations?.['org.opencontainers.image.ref.name']]),
      [[image.index.mediaType, image.index.digest, image.index.size, refName]], 'index.json of the oci: copy');
    const blobDir = join(dir, 'blobs', 'sha256');
    const stored = readdirSync(blobDir).sort();
    assert.deepEqual(stored, allBlobs(image).map((b) => hex(b.digest)).sort(), 'blobs of the oci: copy');
    const corrupt = stored.filter((name) => sha256Digest(readFileSync(join(blobDir, name))) !== `sha256:${name}`);
    assert.deepEqual(corrupt, [], 'blobs of the oci: copy whose content does not match their name');
  }

  function expectEachBlobFetchedOnce(image: TestImage, mark: number): void {
    const manifests = new Set([image.index.digest, ...image.platforms.map((p) => p.manifest.digest)]);
    const expected = allBlobs(image).map((b) => b.digest).filter((d) => !manifests.has(d));
    const counts = upstream.proxy.blobFetchCounts();
    const seen = [...new Set([...expected, ...counts.keys()])].map((d) => `${d} x${counts.get(d) ?? 0}`).sort();
    assert.deepEqual(seen, expected.map((d) => `${d} x1`).sort(),
      `each blob must be fetched from upstream exactly once\n${diagnose(mark)}`);
  }

  function expectInspectOf(output: Buffer, image: TestImage, mark: number): InspectOutput {
    const info = JSON.parse(output.toString('utf8')) as InspectOutput;
    const amd64 = platformOf(image, 'amd64');
    // For an index skopeo reports the index digest, and the image of the platform it runs on.
    assert.deepEqual(
      { Digest: info.Digest, Architecture: info.Architecture, Os: info.Os, Layers: info.Layers },
      { Digest: image.index.digest, Architecture: 'amd64', Os: 'linux', Layers: amd64.layers.map((l) => l.digest) },
      `skopeo inspect output:\n${output.toString('utf8')}\n${diagnose(mark)}`,
    );
    return info;
  }

  it('copies alpine --all by index digest cold, byte-identical, fetching each blob upstream once', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    const dest = skopeo.newDestination();
    await run(mark, 'copy', '--all', '--src-tls-verify=false', source(image, `@${image.index.digest}`), `dir:${dest}`);
    expectSkopeoDir(dest, image, `the dir: copy in ${dest}`);
    expectEachBlobFetchedOnce(image, mark);
  });

  it('inspects alpine: index digest, amd64 layers and the repository tags', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    const mark = await longshore.settledMark();
    // Without --no-tags, skopeo lists the repository's tags with GET /v2/<name>/tags/list and
    // fails the whole inspect unless that succeeds (only 401/403 are tolerated).
    const info = expectInspectOf(await run(mark, 'inspect', '--tls-verify=false', source(image)), image, mark);
    assert.ok(info.RepoTags?.includes(image.tag), `RepoTags ${JSON.stringify(info.RepoTags)} lacks ${image.tag}`);
  });

  it('inspects alpine with --no-tags: index digest and amd64 layers', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    const mark = await longshore.settledMark();
    expectInspectOf(await run(mark, 'inspect', '--no-tags', '--tls-verify=false', source(image)), image, mark);
  });

  it('inspect --raw returns the upstream index byte for byte', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    const mark = await longshore.settledMark();
    const raw = await run(mark, 'inspect', '--raw', '--tls-verify=false', source(image));
    assert.ok(raw.equals(image.index.bytes),
      `inspect --raw gave ${raw.length} bytes with digest ${sha256Digest(raw)}, published ${image.index.size} bytes with ${image.index.digest}`);
  });

  it('copies the OCI image --all to dir: cold, byte-identical, fetching each blob upstream once', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.ocitest;
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    const dest = skopeo.newDestination();
    await run(mark, 'copy', '--all', '--src-tls-verify=false', source(image), `dir:${dest}`);
    expectSkopeoDir(dest, image, `the dir: copy in ${dest}`);
    expectEachBlobFetchedOnce(image, mark);
  });

  it('copies the OCI image --all to oci: from cache, with no blob GET upstream', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.ocitest;
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    const dest = skopeo.newDestination();
    await run(mark, 'copy', '--all', '--src-tls-verify=false', source(image), `oci:${dest}:${image.tag}`);
    expectOciCopy(dest, image, image.tag);
    assert.deepEqual(upstream.proxy.blobGets(), [], `a copy of cached content fetched blobs upstream\n${diagnose(mark)}`);
  });

  it('copies the OCI image --all by index digest from cache without any upstream request', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.ocitest;
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    const dest = skopeo.newDestination();
    await run(mark, 'copy', '--all', '--src-tls-verify=false', source(image, `@${image.index.digest}`), `dir:${dest}`);
    expectSkopeoDir(dest, image, `the dir: copy in ${dest}`);
    // Digests are immutable: cached content addressed by digest is never revalidated.
    assert.deepEqual(upstream.proxy.requests.map((r) => `${r.method} ${r.path}`), [],
      `a copy by digest of cached content contacted the upstream\n${diagnose(mark)}`);
  });
});
