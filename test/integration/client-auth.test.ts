// Issue 6: client authentication. The mirror issues its own tokens (GET/POST /token) and checks every
// /v2/ request against `auth.rules` before the registry is asked, so cached content is no exception.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { parseChallenges } from '../../src/upstream/challenge.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, errorCode, get, type Reply } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';

const PASSWORDS = { alice: 'alice-pw-1', bob: 'bob-pw-2', carol: 'carol-pw-3' };
// Cost 4: the lowest bcrypt allows, to keep the suite quick; production hashes use 10 or more.
const hash = (password: string) => bcrypt.hashSync(password, 4);

const RULES = [
  { users: ['anonymous'], repositories: ['docker.io/library/*'], actions: ['pull'] },
  { users: ['alice'], repositories: ['docker.io/team/*', 'ghcr.io/owner/*'], actions: ['pull', 'push'] },
  { users: ['*'], repositories: ['docker.io/shared/*'], actions: ['pull'] },
  { users: ['carol'], repositories: ['*'], actions: ['pull'] },
] as const;

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function claims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function challengeOf(reply: Reply): Record<string, string> {
  const [challenge] = parseChallenges(reply.headers['www-authenticate'] as string | undefined);
  assert.equal(challenge?.scheme, 'bearer', `expected a Bearer challenge, got ${String(reply.headers['www-authenticate'])}`);
  return challenge.params;
}

describe('client authentication', () => {
  let fake: FakeRegistry;
  let ghcr: FakeRegistry;
  let mirror: TestMirror;
  let alpine: PublishedImage;
  let team: PublishedImage;
  let ghcrImage: PublishedImage;
  let dir: string;

  /** A token from the mirror's token endpoint, as docker asks for one. */
  async function token(scopes: string[], user?: keyof typeof PASSWORDS, options: { password?: string; ns?: string } = {}): Promise<Reply> {
    const url = new URL(`${mirror.url}/token`);
    url.searchParams.set('service', 'longshore');
    for (const scope of scopes) url.searchParams.append('scope', scope);
    if (options.ns) url.searchParams.set('ns', options.ns);
    return get(url.toString(), user ? { authorization: basic(user, options.password ?? PASSWORDS[user]) } : {});
  }

  async function tokenFor(scopes: string[], user?: keyof typeof PASSWORDS, ns?: string): Promise<string> {
    const reply = await token(scopes, user, ns ? { ns } : {});
    assert.equal(reply.status, 200, reply.body.toString());
    return reply.json<{ token: string }>().token;
  }

  const manifest = (path: string, bearer?: string, method: 'GET' | 'HEAD' = 'GET') =>
    get(`${mirror.url}/v2/${path}`, { accept: ALL_MANIFEST_TYPES, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) }, method);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-auth-'));
    fake = await FakeRegistry.start();
    ghcr = await FakeRegistry.start();
    alpine = publishImage(fake, 'library/alpine', '3.19');
    team = publishImage(fake, 'team/private', '1.0');
    publishImage(fake, 'shared/base', '1.0');
    ghcrImage = publishImage(ghcr, 'owner/img', '2.0');
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, `# test accounts\nbob:${hash(PASSWORDS.bob).replace(/^\$2b/, '$2y')}\n`);
    mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' }, 'ghcr.io': { url: ghcr.registryUrl, tagTTL: '1h' } },
      auth: {
        enabled: true,
        users: [{ username: 'alice', passwordHash: hash(PASSWORDS.alice) }, { username: 'carol', passwordHash: hash(PASSWORDS.carol) }],
        htpasswd,
        rules: RULES.map((r) => ({ users: [...r.users], repositories: [...r.repositories], actions: [...r.actions] })),
      },
    });
  });
  after(async () => {
    await mirror.close();
    await fake.close();
    await ghcr.close();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    fake.reset();
    ghcr.reset();
  });

  it('answers GET /v2/ without a token with 401 and a challenge naming its token endpoint', async () => {
    const reply = await get(`${mirror.url}/v2/`);
    assert.equal(reply.status, 401);
    assert.equal(errorCode(reply), 'UNAUTHORIZED');
    assert.equal(reply.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.deepEqual(challengeOf(reply), { realm: `${mirror.url}/token`, service: 'longshore' });
  });

  it('answers GET /v2/ with any valid token, anonymous ones included', async () => {
    const reply = await get(`${mirror.url}/v2/`, { authorization: `Bearer ${await tokenFor([])}` });
    assert.equal(reply.status, 200);
  });

  it('lets anonymous clients pull what an anonymous rule allows, without a token', async () => {
    const reply = await manifest('library/alpine/manifests/3.19');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['docker-content-digest'], alpine.index);
  });

  it('challenges anonymous clients elsewhere, with the scope, and asks the upstream nothing', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const reply = await manifest('team/private/manifests/1.0', undefined, method);
      assert.equal(reply.status, 401);
      assert.deepEqual(challengeOf(reply), { realm: `${mirror.url}/token`, service: 'longshore', scope: 'repository:team/private:pull' });
    }
    const blob = await get(`${mirror.url}/v2/team/private/blobs/${[...team.blobs.keys()][0]}`);
    assert.equal(blob.status, 401);
    assert.equal(fake.requests.length, 0);
  });

  it('gives an anonymous token nothing the anonymous rules do not allow', async () => {
    const anonymous = await tokenFor(['repository:team/private:pull', 'repository:library/alpine:pull,push']);
    assert.equal(claims(anonymous).sub, '');
    assert.deepEqual(claims(anonymous).access, [
      { type: 'repository', name: 'docker.io/team/private', actions: [] },
      { type: 'repository', name: 'docker.io/library/alpine', actions: ['pull'] },
    ]);
    const reply = await manifest('team/private/manifests/1.0', anonymous);
    assert.equal(reply.status, 401);
    assert.equal(challengeOf(reply).error, 'insufficient_scope');
  });

  it('issues a user the intersection of requested and allowed actions, and serves the pull', async () => {
    const alice = await tokenFor(['repository:team/private:pull,push,delete'], 'alice');
    const payload = claims(alice);
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.aud, 'longshore');
    assert.equal(payload.iss, 'longshore');
    assert.deepEqual(payload.access, [{ type: 'repository', name: 'docker.io/team/private', actions: ['pull', 'push'] }]);
    assert.equal(Number(payload.exp) - Number(payload.iat), 300);
    const reply = await manifest('team/private/manifests/1.0', alice);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['docker-content-digest'], team.index);
  });

  it('accepts htpasswd accounts ($2y$ bcrypt) and "*" rules for any authenticated user', async () => {
    const bob = await tokenFor(['repository:shared/base:pull'], 'bob');
    assert.deepEqual(claims(bob).access, [{ type: 'repository', name: 'docker.io/shared/base', actions: ['pull'] }]);
    assert.equal((await manifest('shared/base/manifests/1.0', bob)).status, 200);
  });

  it('refuses a wrong password or an unknown user with 401 and issues nothing', async () => {
    const wrong = await token(['repository:team/private:pull'], 'alice', { password: 'not-her-password' });
    assert.equal(wrong.status, 401);
    assert.equal(errorCode(wrong), 'UNAUTHORIZED');
    assert.doesNotMatch(wrong.body.toString(), /token"/);
    const unknown = await get(`${mirror.url}/token?service=longshore`, { authorization: basic('mallory', 'x') });
    assert.equal(unknown.status, 401);
    assert.ok(!mirror.rawLogs().includes('not-her-password'), 'a refused password was logged');
    assert.ok(mirror.logs().some((r) => r.msg === 'login refused' && r.user === 'alice'));
  });

  it('answers 403 DENIED to a user the rules do not allow, even for content in the cache', async () => {
    // alice's pull put team/private in the cache
    const alice = await tokenFor(['repository:team/private:pull'], 'alice');
    assert.equal((await manifest('team/private/manifests/1.0', alice)).status, 200);
    const digest = [...team.blobs.keys()][0]!;
    assert.equal((await get(`${mirror.url}/v2/team/private/blobs/${digest}`, { authorization: `Bearer ${alice}` })).status, 200);
    fake.reset();
    const bob = await tokenFor(['repository:team/private:pull'], 'bob');
    assert.deepEqual(claims(bob).access, [{ type: 'repository', name: 'docker.io/team/private', actions: [] }]);
    for (const path of ['team/private/manifests/1.0', `team/private/manifests/${team.index}`, `team/private/blobs/${digest}`]) {
      const reply = await manifest(path, bob);
      assert.equal(reply.status, 403, path);
      assert.equal(errorCode(reply), 'DENIED');
    }
    assert.equal(fake.requests.length, 0);
  });

  it('asks a user whose token lacks a scope the rules allow for a new token (insufficient_scope)', async () => {
    const alice = await tokenFor(['repository:library/alpine:pull'], 'alice');
    const reply = await manifest('team/private/manifests/1.0', alice);
    assert.equal(reply.status, 401);
    assert.deepEqual(challengeOf(reply), {
      realm: `${mirror.url}/token`, service: 'longshore', scope: 'repository:team/private:pull', error: 'insufficient_scope',
    });
  });

  it('refuses forged and malformed tokens with invalid_token', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = await new SignJWT({ access: [{ type: 'repository', name: 'docker.io/team/private', actions: ['pull'] }] })
      .setProtectedHeader({ alg: 'ES256' }).setIssuer('longshore').setAudience('longshore').setSubject('alice')
      .setExpirationTime('5m').sign(privateKey);
    for (const bad of [forged, 'not-a-jwt']) {
      const reply = await manifest('team/private/manifests/1.0', bad);
      assert.equal(reply.status, 401);
      assert.equal(challengeOf(reply).error, 'invalid_token');
    }
    assert.equal(fake.requests.length, 0);
  });

  it('routes scope names like requests: containerd\'s ns travels in the realm', async () => {
    const path = `owner/img/manifests/2.0?ns=ghcr.io`;
    const challenged = await manifest(path);
    assert.equal(challenged.status, 401);
    const params = challengeOf(challenged);
    assert.equal(params.realm, `${mirror.url}/token?ns=ghcr.io`);
    assert.equal(params.scope, 'repository:owner/img:pull');
    const alice = await tokenFor(['repository:owner/img:pull'], 'alice', 'ghcr.io');
    assert.deepEqual(claims(alice).access, [{ type: 'repository', name: 'ghcr.io/owner/img', actions: ['pull', ] }]);
    const reply = await manifest(path, alice);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['docker-content-digest'], ghcrImage.index);
    // the same name without ns is docker.io/owner/img, which alice may not pull
    const hub = await tokenFor(['repository:owner/img:pull'], 'alice');
    assert.deepEqual(claims(hub).access, [{ type: 'repository', name: 'docker.io/owner/img', actions: [] }]);
    assert.equal((await manifest(path, hub)).status, 401);
    assert.equal((await manifest('owner/img/manifests/2.0', hub)).status, 403);
  });

  it('checks path-prefixed names as routed: ghcr.io/owner/img', async () => {
    const alice = await tokenFor(['repository:ghcr.io/owner/img:pull'], 'alice');
    assert.deepEqual(claims(alice).access, [{ type: 'repository', name: 'ghcr.io/owner/img', actions: ['pull'] }]);
    assert.equal((await manifest('ghcr.io/owner/img/manifests/2.0', alice)).status, 200);
  });

  it('issues tokens on POST /token with grant_type=password (containerd) and refuses other grants', async () => {
    const form = (fields: Record<string, string>) => request(`${mirror.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
    const ok = await form({ grant_type: 'password', username: 'alice', password: PASSWORDS.alice, service: 'longshore', scope: 'repository:team/private:pull', client_id: 'containerd-client' });
    assert.equal(ok.statusCode, 200);
    const body = await ok.body.json() as { access_token: string; expires_in: number };
    assert.equal(body.expires_in, 300);
    assert.deepEqual(claims(body.access_token).access, [{ type: 'repository', name: 'docker.io/team/private', actions: ['pull'] }]);
    const wrong = await form({ grant_type: 'password', username: 'alice', password: 'nope', service: 'longshore' });
    assert.equal(wrong.statusCode, 401);
    await wrong.body.dump();
    const refresh = await form({ grant_type: 'refresh_token', refresh_token: 'x', service: 'longshore' });
    assert.equal(refresh.statusCode, 400);
    await refresh.body.dump();
  });

  it('refuses a token request for another service', async () => {
    const reply = await get(`${mirror.url}/token?service=registry.docker.io&scope=repository:library/alpine:pull`);
    assert.equal(reply.status, 400);
    assert.equal(errorCode(reply), 'UNSUPPORTED');
  });

  it('lists the catalog only to a user allowed to pull every repository', async () => {
    assert.equal((await get(`${mirror.url}/v2/_catalog`)).status, 401);
    const alice = await tokenFor([], 'alice');
    const denied = await get(`${mirror.url}/v2/_catalog`, { authorization: `Bearer ${alice}` });
    assert.equal(denied.status, 403);
    const carol = await tokenFor([], 'carol');
    assert.notEqual((await get(`${mirror.url}/v2/_catalog`, { authorization: `Bearer ${carol}` })).status, 403);
  });

  it('opens the dashboard and admin API only to a user allowed to pull every repository', async () => {
    for (const path of ['/api/v1/summary', '/api/v1/recent', '/ui/']) {
      const anonymous = await get(`${mirror.url}${path}`);
      assert.equal(anonymous.status, 401, `${path} without credentials`);
      assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm="Longshore"/);
      assert.equal(errorCode(anonymous), 'UNAUTHORIZED');
      assert.equal((await get(`${mirror.url}${path}`, { authorization: basic('carol', 'wrong') })).status, 401, `${path} with a wrong password`);
      const alice = await get(`${mirror.url}${path}`, { authorization: basic('alice', PASSWORDS.alice) });
      assert.equal(alice.status, 403, `${path} for alice, who may pull only some repositories`);
      assert.equal(errorCode(alice), 'DENIED');
      assert.equal((await get(`${mirror.url}${path}`, { authorization: basic('carol', PASSWORDS.carol) })).status, 200, `${path} for carol`);
    }
    // Twice more with the same header: from the remembered login, and a changed password is not one.
    assert.equal((await get(`${mirror.url}/api/v1/summary`, { authorization: basic('carol', PASSWORDS.carol) })).status, 200);
    assert.equal((await get(`${mirror.url}/api/v1/summary`, { authorization: basic('carol', `${PASSWORDS.carol}x`) })).status, 401);
    // A token from /token works for scripts; an anonymous one does not.
    const carol = await tokenFor([], 'carol');
    assert.equal((await get(`${mirror.url}/api/v1/summary`, { authorization: `Bearer ${carol}` })).status, 200);
    const anonymousToken = await tokenFor([]);
    assert.equal((await get(`${mirror.url}/api/v1/summary`, { authorization: `Bearer ${anonymousToken}` })).status, 401);
  });

  it('refuses writes without push, and unknown hosts before looking at credentials', async () => {
    const bob = await tokenFor(['repository:shared/base:pull,push'], 'bob');
    const put = await request(`${mirror.url}/v2/shared/base/manifests/2.0`, { method: 'PUT', headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(put.statusCode, 403);
    await put.body.dump();
    // An upload start without the trailing slash is a push too, whichever route answers it.
    const upload = await request(`${mirror.url}/v2/shared/base/blobs/uploads`, { method: 'POST', headers: { authorization: `Bearer ${bob}` } });
    assert.equal(upload.statusCode, 403);
    await upload.body.dump();
    const anonymous = await request(`${mirror.url}/v2/shared/base/blobs/uploads`, { method: 'POST' });
    assert.equal(anonymous.statusCode, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /scope="repository:shared\/base:[a-z,]*push/);
    await anonymous.body.dump();
    const unknown = await manifest('x/y/manifests/1?ns=quay.io');
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown), 'NAME_UNKNOWN');
  });
});

describe('client authentication: token lifetime and signing key', () => {
  let fake: FakeRegistry;
  let dataDir: string;
  const alicePw = 'short-lived-pw';
  const config = (tokenTTL: string) => ({
    upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } },
    auth: {
      enabled: true,
      tokenTTL,
      users: [{ username: 'alice', passwordHash: hash(alicePw) }],
      rules: [{ users: ['alice'], repositories: ['docker.io/team/*'], actions: ['pull' as const] }],
    },
  });
  async function login(mirror: TestMirror): Promise<string> {
    const reply = await get(`${mirror.url}/token?service=longshore&scope=repository:team/app:pull`, { authorization: basic('alice', alicePw) });
    assert.equal(reply.status, 200);
    return reply.json<{ token: string }>().token;
  }

  before(async () => {
    fake = await FakeRegistry.start();
    publishImage(fake, 'team/app', '1.0');
    dataDir = await mkdtemp(join(tmpdir(), 'longshore-auth-data-'));
  });
  after(async () => {
    await fake.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('re-challenges with invalid_token once a token expired, and a new token works', async () => {
    const mirror = await startMirror(config('1s'), await mkdtemp(join(tmpdir(), 'longshore-auth-ttl-')));
    try {
      const first = await login(mirror);
      assert.equal(Number(claims(first).exp) - Number(claims(first).iat), 1);
      const url = `${mirror.url}/v2/team/app/manifests/1.0`;
      assert.equal((await get(url, { accept: ALL_MANIFEST_TYPES, authorization: `Bearer ${first}` })).status, 200);
      let expired: Reply | undefined;
      await waitFor(async () => {
        expired = await get(url, { accept: ALL_MANIFEST_TYPES, authorization: `Bearer ${first}` });
        return expired.status !== 200;
      }, { what: 'the token to expire', timeoutMs: 10_000 });
      assert.equal(expired!.status, 401);
      assert.equal(challengeOf(expired!).error, 'invalid_token');
      const second = await login(mirror);
      assert.equal((await get(url, { accept: ALL_MANIFEST_TYPES, authorization: `Bearer ${second}` })).status, 200);
    } finally {
      await mirror.close();
    }
  });

  it('keeps its generated signing key in the data dir, so tokens survive a restart', async () => {
    let mirror = await startMirror(config('5m'), dataDir);
    const issued = await login(mirror);
    await mirror.close({ keepData: true });
    mirror = await startMirror(config('5m'), dataDir);
    try {
      const reply = await get(`${mirror.url}/v2/team/app/manifests/1.0`, { accept: ALL_MANIFEST_TYPES, authorization: `Bearer ${issued}` });
      assert.equal(reply.status, 200);
    } finally {
      await mirror.close({ keepData: true });
    }
  });
});

describe('client authentication off (the default)', () => {
  it('serves /v2/ openly and has no token endpoint', async () => {
    const fake = await FakeRegistry.start();
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    try {
      assert.equal((await get(`${mirror.url}/v2/`)).status, 200);
      assert.equal((await get(`${mirror.url}/token?service=longshore`)).status, 404);
    } finally {
      await mirror.close();
      await fake.close();
    }
  });
});
