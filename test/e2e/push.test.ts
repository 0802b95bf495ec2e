// Issue 7: Longshore as a private registry. Names under local.prefixes are pushable repositories;
// real clients push to them and read back exactly what they pushed, while every other name stays a
// read-only cache. dockerd pushes an image it pulled through the mirror (recompressing its layers,
// so the pushed blobs are new to the registry); skopeo copies a multi-arch OCI index and a Docker
// manifest list from the cache into local repositories byte for byte, and between two local
// repositories with cross-repository mounts instead of uploads.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Dockerd } from '../support/e2e/dockerd.js';
import { allBlobs, platformOf, sha256Digest, type TestImage } from '../support/images.js';
import { Longshore, type LoggedRequest } from '../support/e2e/longshore.js';
import { DOCKER, OCI } from '../support/media-types.js';
import { registryRequest, type RegistryResponse } from '../support/e2e/registry-client.js';
import type { Skopeo } from '../support/e2e/skopeo.js';
import { expectSkopeoDir } from '../support/e2e/skopeo-dir.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startLongshoreOverStack, startSkopeoOverStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

/** Safety bound for one step; a push or copy here moves a few MB over loopback. */
const STEP_TIMEOUT = 240_000;
const LOCAL = { prefixes: ['team/', 'local/'], allowBlobDelete: false, uploadTimeout: '1h' };
const WRITE_METHODS = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);

/** Path and query of a logged request, the query decoded. */
function parsePath(request: LoggedRequest): { pathname: string; query: URLSearchParams } {
  const url = new URL(request.path, 'http://longshore');
  return { pathname: url.pathname, query: url.searchParams };
}

describeWithTools('docker push to a local repository of Longshore', ['dockerd', 'containerd', 'docker', 'docker-registry', 'skopeo', 'openssl'], () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let dockerd: Dockerd;
  /** What `docker push …/team/app:1.4` reported as the manifest digest. */
  let pushedDigest: string | undefined;

  before(async () => {
    ({ upstream, longshore } = await startLongshoreOverStack(teardown, {
      config: { local: LOCAL },
    }));
    dockerd = teardown.add('dockerd', await Dockerd.start({ mirror: longshore }), (d) => d.stop());
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  /** What the rig saw, for failure messages. */
  const diagnose = (mark = 0) => diagnostics({ upstream: upstream.proxy }, { longshore, since: mark }, { process: dockerd.process, label: 'dockerd' });

  /** Runs docker; on return, Longshore's log holds every request docker made. */
  async function docker(mark: number, ...args: string[]): Promise<string> {
    const result = await dockerd.docker(args);
    await longshore.logSettled();
    assert.equal(result.code, 0, `docker ${args.join(' ')} failed: ${result.stderr.trim()}\n${diagnose(mark)}`);
    return result.stdout;
  }

  async function inspect(mark: number, reference: string, format: string): Promise<string> {
    return (await docker(mark, 'image', 'inspect', '--format', format, reference)).trim();
  }

  function local(name: string): string {
    return `${longshore.host}/${name}`;
  }

  function requirePushedDigest(): string {
    assert.ok(pushedDigest !== undefined, 'the push of team/app:1.4 did not succeed, so there is nothing to read back');
    return pushedDigest;
  }

  async function get(path: string, accept?: readonly string[]): Promise<RegistryResponse> {
    return registryRequest(`${longshore.url}${path}`, accept === undefined ? {} : { accept });
  }

  it('pushes alpine, pulled through the mirror, to team/app:1.4', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.alpine;
    let mark = await longshore.settledMark();
    const pulled = await docker(mark, 'pull', `alpine:${image.tag}`);
    assert.match(pulled, /Downloaded newer image/, `docker pull alpine:${image.tag} did not download:\n${pulled}`);
    assert.equal(await inspect(mark, `alpine:${image.tag}`, '{{.Id}}'), platformOf(image, 'amd64').config.digest);

    await docker(mark, 'tag', `alpine:${image.tag}`, local('team/app:1.4'));
    upstream.proxy.reset();
    mark = await longshore.settledMark();
    const output = await docker(mark, 'push', local('team/app:1.4'));
    const reported = /1\.4: digest: (sha256:[0-9a-f]{64}) size: (\d+)/.exec(output);
    assert.ok(reported, `docker push reported no digest:\n${output}\n${diagnose(mark)}`);
    pushedDigest = reported[1]!;

    const manifestPut = (await longshore.requestsSince(mark)).filter((r) => r.method === 'PUT' && r.path === '/v2/team/app/manifests/1.4');
    assert.deepEqual(manifestPut.map((r) => r.status), [201], `Longshore's answer to the manifest PUT\n${diagnose(mark)}`);
    // A local repository is never routed upstream, whatever the push asked.
    assert.deepEqual(upstream.proxy.requests.map((r) => `${r.method} ${r.path}`), [],
      `the push to a local repository contacted the upstream\n${diagnose(mark)}`);

    // The stored manifest is the one docker pushed: its bytes hash to the digest docker reported.
    const manifest = await get(`/v2/team/app/manifests/1.4`, [DOCKER.manifest, OCI.manifest]);
    assert.equal(manifest.status, 200, `GET team/app:1.4: ${manifest.body.toString('utf8')}\n${diagnose(mark)}`);
    assert.equal(sha256Digest(manifest.body), pushedDigest, 'digest of the manifest Longshore serves for team/app:1.4');
    assert.equal(manifest.headers.get('docker-content-digest'), pushedDigest);
    assert.equal(manifest.headers.get('content-type'), DOCKER.manifest);
    assert.equal(Number(reported[2]), manifest.body.length, 'size docker push reported');
  });

  it('lists tag 1.4 in team/app and team/app in the catalog', { timeout: STEP_TIMEOUT }, async () => {
    requirePushedDigest();
    const tags = await get('/v2/team/app/tags/list');
    assert.equal(tags.status, 200, `GET /v2/team/app/tags/list: ${tags.body.toString('utf8')}\n${diagnose()}`);
    assert.deepEqual(JSON.parse(tags.body.toString('utf8')), { name: 'team/app', tags: ['1.4'] });
    const catalog = await get('/v2/_catalog');
    assert.equal(catalog.status, 200, `GET /v2/_catalog: ${catalog.body.toString('utf8')}\n${diagnose()}`);
    const { repositories } = JSON.parse(catalog.body.toString('utf8')) as { repositories: string[] };
    assert.ok(repositories.includes('team/app'), `/v2/_catalog lists ${JSON.stringify(repositories)}, not team/app`);
    assert.ok(!repositories.includes('library/alpine'), `/v2/_catalog lists the cached library/alpine: ${JSON.stringify(repositories)}`);
  });

  it('pulls team/app:1.4 back after removing both names: same image, RepoDigests has the pushed digest', { timeout: STEP_TIMEOUT }, async () => {
    const digest = requirePushedDigest();
    const image = upstream.alpine;
    const originalId = platformOf(image, 'amd64').config.digest;
    let mark = await longshore.settledMark();
    await docker(mark, 'image', 'rm', `alpine:${image.tag}`, local('team/app:1.4'));
    const gone = await dockerd.docker(['image', 'inspect', originalId]);
    assert.notEqual(gone.code, 0, `image ${originalId} is still present after removing both names`);

    upstream.proxy.reset();
    mark = await longshore.settledMark();
    const output = await docker(mark, 'pull', local('team/app:1.4'));
    assert.match(output, /Downloaded newer image/, `docker pull did not download:\n${output}`);
    assert.match(output, new RegExp(`Digest: ${digest}`), `docker pull reported another digest:\n${output}`);
    const repoDigests = JSON.parse(await inspect(mark, local('team/app:1.4'), '{{json .RepoDigests}}')) as string[];
    assert.deepEqual(repoDigests, [local(`team/app@${digest}`)], `RepoDigests after the pull-back\n${diagnose(mark)}`);
    assert.equal(await inspect(mark, local('team/app:1.4'), '{{.Id}}'), originalId, 'image Id after the pull-back');
    assert.deepEqual(upstream.proxy.requests.map((r) => `${r.method} ${r.path}`), [],
      `a pull from a local repository contacted the upstream\n${diagnose(mark)}`);
  });

  it('refuses a push to the proxied name library/alpine with 405', { timeout: STEP_TIMEOUT }, async () => {
    requirePushedDigest();
    let mark = await longshore.settledMark();
    await docker(mark, 'tag', local('team/app:1.4'), local('library/alpine:mine'));
    upstream.proxy.reset();
    mark = await longshore.settledMark();
    const result = await dockerd.docker(['push', local('library/alpine:mine')]);
    await longshore.logSettled();
    assert.notEqual(result.code, 0, `docker push to a proxied name succeeded:\n${result.stdout}\n${diagnose(mark)}`);
    assert.match(result.stderr, /unsupported/i, `docker push error:\n${result.stderr}\n${diagnose(mark)}`);

    const writes = (await longshore.requestsSince(mark)).filter((r) => WRITE_METHODS.has(r.method));
    const refused = writes.filter((r) => r.status === 405 && r.path.startsWith('/v2/library/alpine/'));
    assert.ok(refused.length > 0, `Longshore logged no 405 for a write to library/alpine\n${diagnose(mark)}`);
    const accepted = writes.filter((r) => r.status < 400);
    assert.deepEqual(accepted.map((r) => `${r.method} ${r.path} -> ${r.status}`), [],
      `writes to a proxied name that Longshore accepted\n${diagnose(mark)}`);
    const upstreamWrites = upstream.proxy.requests.filter((r) => WRITE_METHODS.has(r.method));
    assert.deepEqual(upstreamWrites.map((r) => `${r.method} ${r.path}`), [], `writes passed to the upstream\n${diagnose(mark)}`);
    const tag = await get('/v2/library/alpine/manifests/mine', [DOCKER.manifest, DOCKER.index]);
    assert.equal(tag.status, 404, `library/alpine:mine after the refused push: ${tag.status} ${tag.body.toString('utf8')}`);
  });

  // Local repositories are scoped like registry:2's: a blob or manifest pushed to team/app is not in
  // team/other, and a proxied name must not serve it either: the upstream does not have it. Here the
  // proxied repository answers from the shared content store by digest alone.
  it('does not serve content pushed to team/app under the proxied name library/alpine', { timeout: STEP_TIMEOUT }, async () => {
    const digest = requirePushedDigest();
    const pushed = await get(`/v2/team/app/manifests/${digest}`, [DOCKER.manifest]);
    assert.equal(pushed.status, 200, `GET team/app@${digest}: ${pushed.body.toString('utf8')}`);
    const published = new Set(allBlobs(upstream.alpine).map((b) => b.digest));
    const { layers } = JSON.parse(pushed.body.toString('utf8')) as { layers: Array<{ digest: string }> };
    // dockerd recompresses layers on push: these digests exist only in team/app, never upstream.
    const pushedOnly = layers.map((l) => l.digest).filter((d) => !published.has(d));
    assert.ok(pushedOnly.length > 0, 'every pushed layer digest is also upstream; nothing to check');

    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    const answers: string[] = [];
    const expected: string[] = [];
    const details: string[] = [];
    const paths = [...pushedOnly.map((l) => `/v2/library/alpine/blobs/${l}`), `/v2/library/alpine/manifests/${digest}`];
    for (const path of paths) {
      for (const method of ['HEAD', 'GET'] as const) {
        const res = await registryRequest(`${longshore.url}${path}`, { method, accept: [DOCKER.manifest] });
        answers.push(`${method} ${path} -> ${res.status}`);
        expected.push(`${method} ${path} -> 404`);
        details.push(`${method} ${path} -> ${res.status}, ${res.body.length} B, Docker-Content-Digest ${res.headers.get('docker-content-digest')}`);
      }
    }
    await longshore.logSettled();
    assert.deepEqual(answers, expected,
      `content of the local repository team/app served under a proxied name:\n${details.join('\n')}\n${diagnose(mark)}`);
  });
});

describeWithTools('skopeo copy into local repositories of Longshore', ['skopeo', 'docker-registry', 'openssl'], () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let skopeo: Skopeo;
  /** Local repositories whose copy succeeded, by name. */
  const copied = new Set<string>();

  before(async () => {
    ({ upstream, longshore, skopeo } = await startSkopeoOverStack(teardown, 'longshore-push-', { config: { local: LOCAL } }));
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  /** What the rig saw, for failure messages. */
  const diagnose = (mark = 0) => diagnostics({ upstream: upstream.proxy }, { longshore, since: mark });

  /** Runs skopeo; on return, Longshore's log holds every request skopeo made. */
  function run(mark: number, ...args: string[]): Promise<Buffer> {
    return skopeo.runOk(args, { explain: () => diagnose(mark), settle: () => longshore.logSettled() });
  }

  function ref(nameAndReference: string): string {
    return `docker://${longshore.host}/${nameAndReference}`;
  }

  function requireCopied(name: string): void {
    assert.ok(copied.has(name), `the copy into ${name} did not succeed, so there is nothing to read back`);
  }

  /**
   * Copies `name:tag` --all to a `dir:`, where every manifest and blob must hash to the digest it is
   * named by and be byte for byte what was published upstream, with nothing missing and nothing else.
   */
  async function expectReadBack(name: string, tag: string, image: TestImage, mark: number): Promise<void> {
    const dir = skopeo.newDestination();
    await run(mark, 'copy', '--all', '--src-tls-verify=false', ref(`${name}:${tag}`), `dir:${dir}`);
    expectSkopeoDir(dir, image, `the dir: copy of ${name}:${tag}`);
  }

  /** The tag serves the index with its own media type, and each platform manifest keeps its type. */
  async function expectMediaTypes(name: string, tag: string, image: TestImage): Promise<void> {
    const accept = [OCI.index, DOCKER.index, OCI.manifest, DOCKER.manifest];
    const index = await registryRequest(`${longshore.url}/v2/${name}/manifests/${tag}`, { accept });
    assert.equal(index.status, 200, `GET ${name}:${tag}: ${index.body.toString('utf8')}`);
    assert.deepEqual(
      { contentType: index.headers.get('content-type'), digest: index.headers.get('docker-content-digest'), mediaType: (JSON.parse(index.body.toString('utf8')) as { mediaType?: string }).mediaType },
      { contentType: image.index.mediaType, digest: image.index.digest, mediaType: image.index.mediaType },
      `the index of ${name}:${tag}`,
    );
    for (const p of image.platforms) {
      const manifest = await registryRequest(`${longshore.url}/v2/${name}/manifests/${p.manifest.digest}`, { accept });
      assert.equal(manifest.status, 200, `GET ${name}@${p.manifest.digest}: ${manifest.body.toString('utf8')}`);
      assert.equal(manifest.headers.get('content-type'), p.manifest.mediaType, `Content-Type of the ${p.platform.architecture} manifest of ${name}`);
    }
  }

  const cases = [
    { which: 'ocitest', name: 'team/multi', format: 'OCI index' },
    { which: 'alpine', name: 'team/dockerlist', format: 'Docker manifest list' },
  ] as const;

  for (const { which, name, format } of cases) {
    it(`copies the ${format} of library/${which} --all from the cache into ${name}, byte for byte`, { timeout: STEP_TIMEOUT }, async () => {
      const image = upstream[which];
      upstream.proxy.reset();
      const mark = await longshore.settledMark();
      await run(mark, 'copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false',
        ref(`${image.repository}:${image.tag}`), ref(`${name}:${image.tag}`));
      copied.add(name);
      const indexPut = (await longshore.requestsSince(mark)).filter((r) => r.method === 'PUT' && r.path === `/v2/${name}/manifests/${image.tag}`);
      assert.deepEqual(indexPut.map((r) => r.status), [201], `Longshore's answer to the index PUT\n${diagnose(mark)}`);
      const upstreamWrites = upstream.proxy.requests.filter((r) => WRITE_METHODS.has(r.method));
      assert.deepEqual(upstreamWrites.map((r) => `${r.method} ${r.path}`), [], `writes passed to the upstream\n${diagnose(mark)}`);

      const raw = await run(mark, 'inspect', '--raw', '--tls-verify=false', ref(`${name}:${image.tag}`));
      assert.ok(raw.equals(image.index.bytes),
        `inspect --raw of ${name}:${image.tag} gave ${raw.length} bytes with digest ${sha256Digest(raw)}, published ${image.index.size} bytes with ${image.index.digest}`);
      await expectMediaTypes(name, image.tag, image);
      await expectReadBack(name, image.tag, image, mark);
    });
  }

  // skopeo mounts a blob only from a repository its blob-info cache (containers/image, kept on disk
  // across runs and keyed by registry host:port) knows holds it: the copy into team/multi recorded
  // that. Every rig build draws fresh random layers, so entries from earlier runs cannot match.
  it('copies team/multi:1.0 to team/multi-copy:1.0 mounting its layers instead of uploading them', { timeout: STEP_TIMEOUT }, async () => {
    requireCopied('team/multi');
    const image = upstream.ocitest;
    const mark = await longshore.settledMark();
    await run(mark, 'copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', ref('team/multi:1.0'), ref('team/multi-copy:1.0'));
    copied.add('team/multi-copy');

    const served = (await longshore.requestsSince(mark)).filter((r) => r.path.startsWith('/v2/team/multi-copy/'));
    const mounts = served.filter((r) => r.method === 'POST' && parsePath(r).query.has('mount'));
    const describe = (rs: readonly LoggedRequest[]) => rs.map((r) => `${r.method} ${r.path} -> ${r.status}`).join('\n');
    assert.ok(mounts.length > 0, `skopeo asked for no cross-repository mount\n${diagnose(mark)}`);
    const notMounted = mounts.filter((r) => r.status !== 201);
    assert.deepEqual(describe(notMounted), '', `mount requests Longshore did not answer 201\n${diagnose(mark)}`);

    // Every layer is in team/multi, so none needs an upload: each is mounted, or found by HEAD once a
    // mount for another platform brought it in. containers/image never tries to mount a config blob,
    // only HEADs it in the destination, so configs are uploaded.
    const layers = [...new Set(image.platforms.flatMap((p) => p.layers.map((l) => l.digest)))];
    const configs = new Set(image.platforms.map((p) => p.config.digest));
    const mounted = new Set(mounts.map((r) => parsePath(r).query.get('mount')));
    const found = new Set(served.filter((r) => r.method === 'HEAD' && r.status === 200).map((r) => parsePath(r).pathname.split('/').at(-1)));
    const uploads = served.filter((r) => r.method === 'PUT' && parsePath(r).pathname.startsWith('/v2/team/multi-copy/blobs/uploads/'));
    const uploaded = uploads.map((r) => parsePath(r).query.get('digest') ?? '(no digest)');
    assert.deepEqual(layers.filter((d) => !mounted.has(d) && !found.has(d)), [], `layers neither mounted nor found in team/multi-copy\n${diagnose(mark)}`);
    assert.deepEqual(uploaded.filter((d) => !configs.has(d)), [], `blobs uploaded although team/multi holds them\n${diagnose(mark)}`);
    const patches = served.filter((r) => r.method === 'PATCH');
    assert.ok(patches.length <= uploads.length, `more PATCHes than completed config uploads:\n${describe(served)}`);

    await expectMediaTypes('team/multi-copy', image.tag, image);
    await expectReadBack('team/multi-copy', image.tag, image, mark);
  });

  it('lists the local repositories in the catalog and each tag in its tag list', { timeout: STEP_TIMEOUT }, async () => {
    requireCopied('team/multi-copy');
    const catalog = await registryRequest(`${longshore.url}/v2/_catalog`);
    assert.equal(catalog.status, 200, `GET /v2/_catalog: ${catalog.body.toString('utf8')}\n${diagnose()}`);
    assert.deepEqual(JSON.parse(catalog.body.toString('utf8')), { repositories: ['team/dockerlist', 'team/multi', 'team/multi-copy'] });
    for (const [name, tag] of [['team/multi', '1.0'], ['team/multi-copy', '1.0'], ['team/dockerlist', '3.19']] as const) {
      const tags = await registryRequest(`${longshore.url}/v2/${name}/tags/list`);
      assert.equal(tags.status, 200, `GET /v2/${name}/tags/list: ${tags.body.toString('utf8')}\n${diagnose()}`);
      assert.deepEqual(JSON.parse(tags.body.toString('utf8')), { name, tags: [tag] });
    }
  });
});
