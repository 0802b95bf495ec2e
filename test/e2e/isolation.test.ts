// Security issue, end to end: a repository sees only what it holds, with real clients and client auth
// on. alice may pull docker.io/library/* and docker.io/private/*; eve only docker.io/library/*. After
// alice pulls the private image private/secret:1 through Longshore (so its manifests and layers are
// cached), eve — logged in with docker, skopeo and raw HTTP with her own token — asks for the cached
// private digests through every name she is allowed (library/alpine, library/ocitest) and gets 404
// MANIFEST_UNKNOWN / BLOB_UNKNOWN, never the bytes; by the private name she is denied (403). The
// upstream, a real distribution registry that keeps per-repository links, is asked (HEAD) whether
// library/alpine holds those digests and says 404; no private layer is fetched for another name.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { pullOnlyAuth } from '../support/e2e/client-accounts.js';
import { Dockerd } from '../support/e2e/dockerd.js';
import { buildMultiArchImage, platformOf, type Blob, type TestImage } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import type { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startSkopeoOverStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const STEP_TIMEOUT = 300_000;
const TOOLS = ['dockerd', 'docker', 'docker-registry', 'skopeo', 'openssl'] as const;
const ALICE = { username: 'alice', password: 'alice-Pass-7731' };
const EVE = { username: 'eve', password: 'eve-Pass-2048' };
/** Names eve is allowed to pull, none of which holds the private image upstream. */
const EVE_NAMES = ['library/alpine', 'library/ocitest'] as const;
const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

describeWithTools('a repository sees only what it holds (real clients, auth.enabled)', TOOLS, () => {
  const teardown = new Teardown();
  const secret: TestImage = buildMultiArchImage({ repository: 'private/secret', tag: '1', format: 'oci' });
  // What alice's linux/amd64 docker pull caches: the index, the amd64 manifest, its config and layers.
  const secretAmd64 = platformOf(secret, 'amd64');
  const cachedManifests: Blob[] = [secret.index, secretAmd64.manifest];
  const cachedBlobs: Blob[] = [secretAmd64.config, ...secretAmd64.layers];
  const secretDigests = new Set([...cachedManifests, ...cachedBlobs].map((b) => b.digest));
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let dockerd: Dockerd;
  let skopeo: Skopeo;

  before(async () => {
    const auth = pullOnlyAuth([
      { account: ALICE, pull: ['docker.io/library/*', 'docker.io/private/*'] },
      { account: EVE, pull: ['docker.io/library/*'] },
    ]);
    ({ upstream, longshore, skopeo } = await startSkopeoOverStack(teardown, 'longshore-isolation-e2e-', { config: { auth } }, { extraImages: [secret] }));
    // No registry-mirrors: references name Longshore itself (127.0.0.0/8 is an insecure registry by default).
    dockerd = teardown.add('dockerd', await Dockerd.start(), (d) => d.stop());
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnose = (mark = 0) => diagnostics({ longshore, since: mark, lines: 30 }, { upstream: upstream.proxy });

  const secretRef = () => `${longshore.host}/${secret.repository}:${secret.tag}`;
  const alpineRef = () => `${longshore.host}/${upstream.alpine.repository}:${upstream.alpine.tag}`;

  async function loginAs(user: { username: string; password: string }): Promise<void> {
    await dockerd.docker(['logout', longshore.host]);
    const login = await dockerd.docker(['login', '--username', user.username, '--password', user.password, longshore.host]);
    assert.equal(login.code, 0, login.stderr);
  }

  /** A token from Longshore's /token for `user`, with the given scopes. */
  async function tokenFor(user: { username: string; password: string }, scopes: readonly string[]): Promise<string> {
    const url = new URL(`${longshore.url}/token`);
    url.searchParams.set('service', 'longshore');
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const res = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}` } });
    assert.equal(res.status, 200, `token for ${user.username}: ${await res.clone().text()}`);
    const body = await res.json() as { token: string };
    return body.token;
  }

  async function get(path: string, token: string, method: 'GET' | 'HEAD', accept?: string): Promise<{ status: number; body: Buffer }> {
    const res = await fetch(`${longshore.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(accept === undefined ? {} : { accept }) },
    });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  }

  it('alice (library/* and private/*) docker-pulls private/secret:1; its manifests and layers are cached', { timeout: STEP_TIMEOUT }, async () => {
    await loginAs(ALICE);
    const mark = await longshore.settledMark();
    const pull = await dockerd.docker(['pull', secretRef()]);
    assert.equal(pull.code, 0, `${pull.stderr}\n${diagnose(mark)}`);
    const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', secretRef()]);
    assert.equal(id.stdout.trim(), secretAmd64.config.digest);
    const fetched = upstream.proxy.blobFetchCounts();
    for (const blob of cachedBlobs) {
      assert.equal(fetched.get(blob.digest), 1, `${blob.digest} fetched once for private/secret\n${diagnose(mark)}`);
    }
    assert.ok(upstream.proxy.ofKind('blob', 'GET').every((r) => r.repository === secret.repository), diagnose(mark));
    // eve's dockerd must have nothing of the private image locally
    await dockerd.dockerOk(['image', 'rm', secretRef()]);
  });

  it('eve (library/* only) cannot docker-pull the private digests through library/alpine, nor private/secret', { timeout: STEP_TIMEOUT }, async () => {
    await loginAs(EVE);
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    for (const manifest of cachedManifests) {
      const ref = `${longshore.host}/library/alpine@${manifest.digest}`;
      const pull = await dockerd.docker(['pull', ref]);
      assert.notEqual(pull.code, 0, `eve pulled ${ref}\n${diagnose(mark)}`);
      // dockerd: "… manifest for … not found: manifest unknown: …"
      assert.match(pull.stderr, /manifest unknown|not found/i, pull.stderr);
    }
    const denied = await dockerd.docker(['pull', secretRef()]);
    assert.notEqual(denied.code, 0, `eve pulled ${secretRef()}\n${diagnose(mark)}`);
    assert.match(denied.stderr, /denied/i, denied.stderr);
    const images = await dockerd.dockerOk(['image', 'ls', '--no-trunc', '--format', '{{.ID}}']);
    assert.ok(!images.includes(secretAmd64.config.digest), `the private image is in eve's dockerd:\n${images}`);

    const answered = (await longshore.requestsSince(mark));
    const byDigest = answered.filter((r) => r.path.includes('/library/alpine/manifests/sha256:'));
    assert.ok(byDigest.length >= cachedManifests.length, diagnose(mark));
    assert.ok(byDigest.every((r) => r.status === 404), diagnose(mark));
    assert.ok(answered.some((r) => r.path.startsWith(`/v2/${secret.repository}/manifests/`) && r.status === 403), diagnose(mark));
  });

  it('eve\'s own token gets 404 MANIFEST_UNKNOWN / BLOB_UNKNOWN for every cached private digest by GET and HEAD, never the bytes', { timeout: STEP_TIMEOUT }, async () => {
    const mark = await longshore.settledMark();
    const token = await tokenFor(EVE, EVE_NAMES.map((name) => `repository:${name}:pull`));
    // the token works: eve may pull library/alpine, so the 404s below are about content, not access
    const own = await get(`/v2/library/alpine/manifests/${upstream.alpine.tag}`, token, 'GET', MANIFEST_ACCEPT);
    assert.equal(own.status, 200, diagnose(mark));
    assert.deepEqual(own.body, upstream.alpine.index.bytes);

    for (const name of EVE_NAMES) {
      for (const [kind, blobs, code] of [['manifests', cachedManifests, 'MANIFEST_UNKNOWN'], ['blobs', cachedBlobs, 'BLOB_UNKNOWN']] as const) {
        for (const blob of blobs) {
          const path = `/v2/${name}/${kind}/${blob.digest}`;
          const got = await get(path, token, 'GET', kind === 'manifests' ? MANIFEST_ACCEPT : undefined);
          assert.equal(got.status, 404, `GET ${path}\n${diagnose(mark)}`);
          assert.equal((JSON.parse(got.body.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code, code, `GET ${path}`);
          assert.ok(!got.body.includes(blob.bytes), `GET ${path} sent the private bytes`);
          const head = await get(path, token, 'HEAD', kind === 'manifests' ? MANIFEST_ACCEPT : undefined);
          assert.equal(head.status, 404, `HEAD ${path}\n${diagnose(mark)}`);
        }
      }
    }

    // by the private name, eve's token grants nothing, whatever scope she asks for
    const privateToken = await tokenFor(EVE, [`repository:${secret.repository}:pull`]);
    for (const path of [`/v2/${secret.repository}/manifests/${secret.index.digest}`, `/v2/${secret.repository}/blobs/${secretAmd64.layers[0]!.digest}`]) {
      const got = await get(path, privateToken, 'GET', MANIFEST_ACCEPT);
      assert.equal(got.status, 403, `GET ${path}\n${diagnose(mark)}`);
      assert.ok(!got.body.includes(secretAmd64.layers[0]!.bytes));
    }

    // Longshore's own account of it: no request for a private digest under eve's names sent a body of its size
    const sizes = new Map([...cachedManifests, ...cachedBlobs].map((b) => [b.digest, b.size]));
    for (const r of (await longshore.requestsSince(mark))) {
      const digest = /\/(?:manifests|blobs)\/(sha256:[0-9a-f]{64})$/.exec(r.path)?.[1];
      if (digest === undefined || !secretDigests.has(digest)) continue;
      assert.ok(r.status === 404 || r.status === 403, `${r.method} ${r.path} -> ${r.status}\n${diagnose(mark)}`);
      assert.notEqual(r.bytes, sizes.get(digest), `${r.method} ${r.path} sent ${r.bytes} B`);
    }
  });

  it('skopeo --creds eve cannot inspect the private index through library/alpine', { timeout: STEP_TIMEOUT }, async () => {
    for (const manifest of cachedManifests) {
      const ref = `docker://${longshore.host}/library/alpine@${manifest.digest}`;
      const inspect = await skopeo.run(['inspect', '--raw', '--tls-verify=false', '--creds', `${EVE.username}:${EVE.password}`, ref]);
      assert.notEqual(inspect.code, 0, `skopeo inspected ${ref}`);
      assert.ok(!inspect.stdout.includes(manifest.bytes));
      assert.match(inspect.stderr, /manifest unknown|not found/i, inspect.stderr);
    }
  });

  it('the upstream was asked (HEAD) whether eve\'s names hold the private digests, said 404, and no private content was fetched for them', () => {
    const requests = upstream.proxy.requests;
    const forEve = requests.filter((r) => r.repository !== undefined && r.repository !== secret.repository && secretDigests.has(r.reference ?? ''));
    for (const digest of secretDigests) {
      assert.ok(forEve.some((r) => r.method === 'HEAD' && r.repository === 'library/alpine' && r.reference === digest && r.status === 404),
        `no upstream HEAD of library/alpine … ${digest} answered 404\n${upstream.proxy.describe()}`);
    }
    assert.deepEqual(forEve.filter((r) => r.status >= 200 && r.status < 300).map((r) => `${r.method} ${r.path} -> ${r.status}`), [],
      'the upstream said another name holds a private digest');
    const privateBlobGets = forEve.filter((r) => r.kind === 'blob' && r.method === 'GET');
    assert.deepEqual(privateBlobGets.map((r) => `${r.method} ${r.path} -> ${r.status}`), [], 'a private blob was requested upstream under another name');
    // nothing eve did made Longshore fetch from the private repository either
    assert.deepEqual(requests.filter((r) => r.repository === secret.repository).map((r) => `${r.method} ${r.path} -> ${r.status}`), []);
  });

  it('positive control: eve pulls library/alpine:3.19; alice pulls private/secret:1 again without an upstream blob GET', { timeout: STEP_TIMEOUT }, async () => {
    let mark = await longshore.settledMark();
    const pull = await dockerd.docker(['pull', alpineRef()]);
    assert.equal(pull.code, 0, `${pull.stderr}\n${diagnose(mark)}`);
    const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', alpineRef()]);
    assert.equal(id.stdout.trim(), platformOf(upstream.alpine, 'amd64').config.digest);

    await loginAs(ALICE);
    upstream.proxy.reset();
    mark = await longshore.settledMark();
    const again = await dockerd.docker(['pull', secretRef()]);
    assert.equal(again.code, 0, `${again.stderr}\n${diagnose(mark)}`);
    const secretId = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', secretRef()]);
    assert.equal(secretId.stdout.trim(), secretAmd64.config.digest);
    assert.deepEqual(upstream.proxy.ofKind('blob', 'GET').map((r) => r.path), [], diagnose(mark));
  });

  it('logged no client password', () => {
    const log = JSON.stringify(longshore.records);
    for (const { username, password } of [ALICE, EVE]) {
      assert.ok(!log.includes(password), `${username}'s password is in the log`);
      assert.ok(!log.includes(Buffer.from(`${username}:${password}`).toString('base64')), `${username}'s Basic credentials are in the log`);
    }
  });
});
