// The Docker Registry workflow with the default configuration: a push to a name that is not local yet
// creates a local repository, as on `registry:2`, while what mirror clients ask for (library/…, ?ns=,
// names the mirror caches from Docker Hub as they are) keeps coming from the upstream. The rule is in
// src/registry/routing.ts; every refusal names the setting that would allow the push.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { run as cli } from '../../src/cli/main.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { callRegistry, type RegistryReply } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const ACCEPT = `${OCI_MANIFEST}, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json`;

const call = callRegistry;

/** A one-layer image pushed the way dockerd does: POST, PATCH, PUT ?digest= per blob, then the manifest. */
async function pushImage(base: string, name: string, tag: string, headers: Record<string, string> = {}): Promise<{ manifest: string; layer: string; status: number; reply: RegistryReply }> {
  const blobs: string[] = [];
  for (const content of [Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })), randomBytes(10_000)]) {
    const start = await call(base, 'POST', `/v2/${name}/blobs/uploads/`, undefined, headers);
    if (start.status !== 202) return { manifest: '', layer: '', status: start.status, reply: start };
    const location = String(start.headers.location);
    const patch = await call(base, 'PATCH', location, content, { ...headers, 'content-type': 'application/octet-stream' });
    assert.equal(patch.status, 202);
    const done = await call(base, 'PUT', `${location}?digest=${sha(content)}`, undefined, headers);
    assert.equal(done.status, 201, done.message);
    blobs.push(sha(content));
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blobs[0], size: 0 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blobs[1], size: 10_000 }],
  }));
  const reply = await call(base, 'PUT', `/v2/${name}/manifests/${tag}`, manifest, { ...headers, 'content-type': OCI_MANIFEST });
  return { manifest: sha(manifest), layer: blobs[1]!, status: reply.status, reply };
}

describe('the registry workflow with the default configuration', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let alpine: PublishedImage;

  before(async () => {
    fake = await FakeRegistry.start();
    alpine = publishImage(fake, 'library/alpine', 'latest');
    publishImage(fake, 'bitnami/redis', '7');
    // Only the upstream URL differs from the shipped defaults: no `local` section at all.
    // protectRecent 0: a test evicts everything right after pulling it.
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } }, cache: { protectRecent: 0 } });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
  });
  beforeEach(() => fake.reset());

  it('pushes a single name and a two-part name, pulls them back without asking the upstream, and lists them', async () => {
    for (const [name, tag] of [['minha-aplicacao', 'latest'], ['equipe/app', '1.0']] as const) {
      const pushed = await pushImage(mirror.url, name, tag);
      assert.equal(pushed.status, 201, pushed.reply.message);
      const back = await call(mirror.url, 'GET', `/v2/${name}/manifests/${tag}`, undefined, { accept: ACCEPT });
      assert.equal(back.status, 200);
      assert.equal(back.headers['docker-content-digest'], pushed.manifest);
      assert.equal((await call(mirror.url, 'GET', `/v2/${name}/blobs/${pushed.layer}`)).status, 200);
      assert.deepEqual(JSON.parse((await call(mirror.url, 'GET', `/v2/${name}/tags/list`)).body.toString()), { name, tags: [tag] });
    }
    // Only whether docker.io has an equipe/app that mirror clients would ask for (a tag list; it has not).
    assert.deepEqual(fake.requests.filter((r) => r.host === 'registry' && r.status !== 401).map((r) => `${r.method} ${r.path} ${r.status}`), ['GET /v2/equipe/app/tags/list 404']);
    assert.deepEqual(JSON.parse((await call(mirror.url, 'GET', '/v2/_catalog')).body.toString()).repositories, ['equipe/app', 'minha-aplicacao']);
  });

  it('asks the upstream once for concurrent first uploads to a new name, and remembers its "no" for negativeTTL', async () => {
    const starts = await Promise.all(Array.from({ length: 5 }, () => call(mirror.url, 'POST', '/v2/equipe/burst/blobs/uploads/')));
    assert.deepEqual(starts.map((r) => r.status), [202, 202, 202, 202, 202]);
    const asked = () => fake.count({ host: 'registry', method: 'GET', path: '/v2/equipe/burst/tags/list' });
    assert.equal(asked(), 1, 'one tag list for five concurrent POSTs');
    // Every session cancelled: the name is not local any more, and the upstream's answer is still fresh.
    for (const start of starts) assert.equal((await call(mirror.url, 'DELETE', String(start.headers.location))).status, 204);
    const again = await call(mirror.url, 'POST', '/v2/equipe/burst/blobs/uploads/');
    assert.equal(again.status, 202);
    assert.equal(asked(), 1, 'the remembered "no" answered');
    assert.equal((await call(mirror.url, 'DELETE', String(again.headers.location))).status, 204);
  });

  it('never serves a pushed "alpine" to mirror clients, who ask for library/alpine (with or without ?ns=)', async () => {
    const before = await call(mirror.url, 'GET', '/v2/alpine/manifests/latest', undefined, { accept: ACCEPT });
    assert.equal(before.headers['docker-content-digest'], alpine.index, 'before a push, "alpine" is Docker Hub\'s library/alpine');
    const pushed = await pushImage(mirror.url, 'alpine', 'latest');
    assert.equal(pushed.status, 201, pushed.reply.message);
    for (const path of ['/v2/library/alpine/manifests/latest', '/v2/library/alpine/manifests/latest?ns=docker.io', '/v2/docker.io/library/alpine/manifests/latest']) {
      const reply = await call(mirror.url, 'GET', path, undefined, { accept: ACCEPT });
      assert.equal(reply.headers['docker-content-digest'], alpine.index, `${path} comes from the upstream`);
      assert.equal((await call(mirror.url, 'GET', path.replace('manifests/latest', `blobs/${pushed.layer}`))).status, 404, `${path}: pushed blobs are not there`);
    }
    // Documented: the name as written ("alpine", what `docker pull mirror:5000/alpine` sends) is now the local one.
    const mine = await call(mirror.url, 'GET', '/v2/alpine/manifests/latest', undefined, { accept: ACCEPT });
    assert.equal(mine.headers['docker-content-digest'], pushed.manifest);
  });

  it('refuses a push under library/, naming the setting that would allow it, and creates nothing', async () => {
    for (const [method, path] of [['POST', '/v2/library/minha-aplicacao/blobs/uploads/'], ['PUT', '/v2/library/minha-aplicacao/manifests/latest']] as const) {
      const reply = await call(mirror.url, method, path, method === 'PUT' ? '{}' : undefined);
      assert.equal(reply.status, 405);
      assert.equal(reply.code, 'UNSUPPORTED');
      assert.match(reply.message!, /^library\/minha-aplicacao is a read-only cache of docker\.io; push to a new name such as "minha-aplicacao", or add "library\/minha-aplicacao" to local\.prefixes to make this name local: library\/ is Docker Hub's namespace of official images/);
    }
    const hosted = await call(mirror.url, 'POST', '/v2/docker.io/team/app/blobs/uploads/');
    assert.equal(hosted.status, 405);
    assert.match(hosted.message!, /add "docker\.io\/team\/app" to local\.prefixes/);
    const ns = await call(mirror.url, 'PUT', '/v2/team/app/manifests/1?ns=docker.io', '{}');
    assert.equal(ns.status, 405);
    assert.match(ns.message!, /push without \?ns=/);
    assert.ok(!JSON.parse((await call(mirror.url, 'GET', '/v2/_catalog')).body.toString()).repositories.includes('library/minha-aplicacao'));
    assert.equal(fake.requests.length, 0);
  });

  // Found in review: the rule above protected only names already cached. registry-mirrors clients ask
  // for two-part Docker Hub names as they are, so a push of a name nobody had pulled yet (an attacker's
  // bitnami/redis) would have become what every later `docker pull bitnami/redis` through the mirror got.
  it('refuses to create a local repository over a Docker Hub repository nobody has pulled through the mirror yet', async () => {
    publishImage(fake, 'popular/tool', '1');
    const pushed = await pushImage(mirror.url, 'popular/tool', '1');
    assert.equal(pushed.status, 405);
    assert.match(pushed.reply.message!, /^popular\/tool is a read-only cache of docker\.io; .*add "popular\/tool" to local\.prefixes.*docker\.io has a repository popular\/tool, which mirror clients ask for by this very name/);
    const pulled = await call(mirror.url, 'GET', '/v2/popular/tool/manifests/1', undefined, { accept: ACCEPT });
    assert.equal(pulled.status, 200);
    assert.equal(pulled.headers['docker-content-digest'], fake.tags.get('popular/tool:1'));
  });

  it('refuses to create a local repository over a Docker Hub repository the mirror caches under the same name', async () => {
    const pulled = await call(mirror.url, 'GET', '/v2/bitnami/redis/manifests/7', undefined, { accept: ACCEPT });
    assert.equal(pulled.status, 200);
    const pushed = await pushImage(mirror.url, 'bitnami/redis', '7');
    assert.equal(pushed.status, 405);
    assert.match(pushed.reply.message!, /^bitnami\/redis is a read-only cache of docker\.io; .*add "bitnami\/redis" to local\.prefixes.*this mirror caches docker\.io's bitnami\/redis, which mirror clients ask for by this very name/);
    const again = await call(mirror.url, 'GET', '/v2/bitnami/redis/manifests/7', undefined, { accept: ACCEPT });
    assert.equal(again.headers['docker-content-digest'], pulled.headers['docker-content-digest']);
  });

  it('keeps pushed repositories through eviction, gc and a restart, as primary data; du marks them local', async () => {
    const pushed = await pushImage(mirror.url, 'kept/app', 'v1');
    assert.equal(pushed.status, 201);
    await mirror.longshore.evictor.run(0);
    assert.equal((await mirror.longshore.localRegistry.collectGarbage()).released, 0);
    assert.equal((await call(mirror.url, 'GET', `/v2/kept/app/blobs/${pushed.layer}`)).status, 200);
    const dataDir = mirror.dataDir;
    await mirror.close({ keepData: true });
    // offline after the restart: local repositories never needed the upstream
    mirror = await startMirror({ offline: true, upstreams: { 'docker.io': { url: fake.registryUrl } } }, dataDir);
    // (the online push above asked docker.io whether it has a kept/app; from here on, nothing may go upstream)
    fake.reset();
    const back = await call(mirror.url, 'GET', '/v2/kept/app/manifests/v1', undefined, { accept: ACCEPT });
    assert.equal(back.headers['docker-content-digest'], pushed.manifest, 'still local after a restart, also offline');
    const second = await pushImage(mirror.url, 'offline/app', 'v1');
    assert.equal(second.status, 201, 'pushes work offline');
    assert.equal(fake.requests.length, 0);
    const out: string[] = [];
    await mirror.close({ keepData: true });
    const config = join(dataDir, 'du.json');
    await import('node:fs/promises').then((fs) => fs.writeFile(config, JSON.stringify({ dataDir, upstreams: { 'docker.io': { url: fake.registryUrl } } })));
    assert.equal(await cli(['du', '--json', '--config', config], (l) => out.push(l)), 0);
    const rows = (JSON.parse(out[0]!) as { repositories: Array<{ repository: string; local: boolean }> }).repositories;
    assert.ok(rows.some((r) => r.repository === 'kept/app' && r.local), JSON.stringify(rows));
    assert.ok(rows.every((r) => r.local === (r.repository !== 'library/alpine' && r.repository !== 'bitnami/redis')), JSON.stringify(rows));
    const text: string[] = [];
    await cli(['du', '--config', config], (l) => text.push(l));
    assert.ok(text.some((l) => /objects {2}kept\/app \(local\)$/.test(l)), text.join('\n'));
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } }, dataDir);
  });

  it('makes a name local from its first upload on: the blob checks of a push in progress never go upstream', async () => {
    const start = await call(mirror.url, 'POST', '/v2/fresh/blobs/uploads/');
    assert.equal(start.status, 202);
    const missing = await call(mirror.url, 'HEAD', `/v2/fresh/blobs/${sha('nothing')}`);
    assert.equal(missing.status, 404);
    assert.equal(fake.requests.length, 0);
    assert.equal((await call(mirror.url, 'DELETE', String(start.headers.location))).status, 204);
    // with the upload gone and nothing pushed, "fresh" is Docker Hub's library/fresh again
    await call(mirror.url, 'GET', '/v2/fresh/manifests/latest', undefined, { accept: ACCEPT });
    assert.ok(fake.count({ path: '/v2/library/fresh/manifests/latest' }) >= 1);
  });
});

describe('the registry workflow: local.prefixes and local.createOnPush', () => {
  let fake: FakeRegistry;
  before(async () => {
    fake = await FakeRegistry.start();
  });
  after(() => fake.close());

  it('local.prefixes matches the name as the user wrote it, library/ included', async () => {
    publishImage(fake, 'library/tool', '1');
    const mirror = await startMirror({ local: { prefixes: ['library/tool'] }, upstreams: { 'docker.io': { url: fake.registryUrl } } });
    try {
      const pushed = await pushImage(mirror.url, 'library/tool', '1');
      assert.equal(pushed.status, 201, pushed.reply.message);
      const back = await call(mirror.url, 'GET', '/v2/library/tool/manifests/1', undefined, { accept: ACCEPT });
      assert.equal(back.headers['docker-content-digest'], pushed.manifest, 'an operator configured this shadowing explicitly');
    } finally {
      await mirror.close();
    }
  });

  it('with local.createOnPush false, a new name is refused and the message names local.createOnPush', async () => {
    const mirror = await startMirror({ local: { createOnPush: false }, upstreams: { 'docker.io': { url: fake.registryUrl } } });
    try {
      const pushed = await pushImage(mirror.url, 'minha-aplicacao', 'latest');
      assert.equal(pushed.status, 405);
      assert.match(pushed.reply.message!, /^minha-aplicacao is a read-only cache of docker\.io; set local\.createOnPush to true, or add "minha-aplicacao" to local\.prefixes/);
    } finally {
      await mirror.close();
    }
  });
});

describe('the registry workflow with client auth: push rights decide who creates a local repository', () => {
  const PASSWORDS = { alice: 'alice-pw-1', bob: 'bob-pw-2' };
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let dir: string;

  async function tokenFor(scope: string, user?: keyof typeof PASSWORDS): Promise<{ token: string; access: unknown }> {
    const url = new URL(`${mirror.url}/token`);
    url.searchParams.set('service', 'longshore');
    url.searchParams.set('scope', scope);
    const reply = await call(mirror.url, 'GET', `${url.pathname}${url.search}`, undefined,
      user ? { authorization: `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}` } : {});
    assert.equal(reply.status, 200);
    const { token } = JSON.parse(reply.body.toString()) as { token: string };
    return { token, access: (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { access: unknown }).access };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-workflow-'));
    fake = await FakeRegistry.start();
    const hash = (password: string) => bcrypt.hashSync(password, 4);
    mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl } },
      auth: {
        enabled: true,
        users: [{ username: 'alice', passwordHash: hash(PASSWORDS.alice) }, { username: 'bob', passwordHash: hash(PASSWORDS.bob) }],
        rules: [
          { users: ['anonymous'], repositories: ['docker.io/*'], actions: ['pull'] },
          { users: ['alice'], repositories: ['*'], actions: ['pull', 'push'] },
          { users: ['bob'], repositories: ['*'], actions: ['pull'] },
        ],
      },
    });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('lets alice create and pull a local repository, refuses bob the push and anonymous clients the pull', async () => {
    const alice = await tokenFor('repository:minha-aplicacao:pull,push', 'alice');
    assert.deepEqual(alice.access, [
      { type: 'repository', name: 'docker.io/library/minha-aplicacao', actions: ['pull', 'push'] },
      { type: 'repository', name: 'minha-aplicacao', actions: ['pull', 'push'] },
    ]);
    const bob = await tokenFor('repository:minha-aplicacao:pull,push', 'bob');
    const refused = await pushImage(mirror.url, 'minha-aplicacao', 'latest', { authorization: `Bearer ${bob.token}` });
    assert.equal(refused.status, 403, 'bob may not create it: no rule gives him push');
    assert.equal(refused.reply.code, 'DENIED');
    assert.equal(refused.reply.message, 'requested access to minha-aplicacao is denied');
    assert.equal(JSON.parse((await call(mirror.url, 'GET', '/v2/_catalog', undefined, { authorization: `Bearer ${(await tokenFor('registry:catalog:*', 'alice')).token}` })).body.toString()).repositories.length, 0);

    const pushed = await pushImage(mirror.url, 'minha-aplicacao', 'latest', { authorization: `Bearer ${alice.token}` });
    assert.equal(pushed.status, 201, pushed.reply.message);
    const pull = await tokenFor('repository:minha-aplicacao:pull', 'alice');
    const back = await call(mirror.url, 'GET', '/v2/minha-aplicacao/manifests/latest', undefined, { accept: ACCEPT, authorization: `Bearer ${pull.token}` });
    assert.equal(back.headers['docker-content-digest'], pushed.manifest);
    // logged out: the anonymous rule covers docker.io/* only, and "minha-aplicacao" is local now
    const anonymous = await call(mirror.url, 'GET', '/v2/minha-aplicacao/manifests/latest', undefined, { accept: ACCEPT });
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /scope="repository:minha-aplicacao:pull"/);
    const anonymousToken = await tokenFor('repository:minha-aplicacao:pull');
    const denied = await call(mirror.url, 'GET', '/v2/minha-aplicacao/manifests/latest', undefined, { accept: ACCEPT, authorization: `Bearer ${anonymousToken.token}` });
    assert.equal(denied.status, 401);
    assert.equal(fake.count({ path: /minha-aplicacao/ }), 0, 'the upstream was never asked for it');
  });
});
