import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { AccessRules } from '../../src/auth/rules.js';
import { bearerChallenge, parseScopes } from '../../src/auth/scope.js';
import { loadSigningKey } from '../../src/auth/signing-key.js';
import { TokenInvalidError, TokenIssuer, TokenVerifier } from '../../src/auth/tokens.js';
import { UserStore, parseHtpasswd } from '../../src/auth/users.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { parseChallenges } from '../../src/upstream/challenge.js';

describe('access rules', () => {
  const rules = new AccessRules([
    { users: ['anonymous'], repositories: ['docker.io/library/*'], actions: ['pull'] },
    { users: ['*'], repositories: ['ghcr.io/org/*'], actions: ['pull'] },
    { users: ['alice'], repositories: ['team/*', 'docker.io/library/alpine'], actions: ['push', 'delete'] },
    { users: ['root'], repositories: ['*'], actions: ['pull'] },
  ]);

  it('matches routed names, "*" across slashes, and adds up the actions of all matching rules', () => {
    assert.deepEqual([...rules.allowed('alice', 'docker.io/library/alpine')].sort(), ['delete', 'pull', 'push']);
    assert.deepEqual([...rules.allowed('alice', 'team/a/b/c')].sort(), ['delete', 'push']);
    assert.equal(rules.permits('alice', 'docker.io/team/x', 'pull'), false);
    assert.equal(rules.permits('alice', 'docker.io/libraryx/alpine', 'pull'), false, '"library/*" is not "library*"');
  });

  it('gives anonymous requests only anonymous rules, and users those as well', () => {
    assert.equal(rules.permits(null, 'docker.io/library/redis', 'pull'), true);
    assert.equal(rules.permits(null, 'ghcr.io/org/tool', 'pull'), false, '"*" means authenticated users');
    assert.equal(rules.permits('bob', 'ghcr.io/org/tool', 'pull'), true);
    assert.equal(rules.permits('bob', 'docker.io/library/redis', 'pull'), true);
    assert.equal(rules.permits('bob', 'team/app', 'pull'), false);
  });

  it('treats pattern characters other than * literally', () => {
    const dotted = new AccessRules([{ users: ['*'], repositories: ['docker.io/a.b'], actions: ['pull'] }]);
    assert.equal(dotted.permits('x', 'docker.io/a.b', 'pull'), true);
    assert.equal(dotted.permits('x', 'docker.io/aXb', 'pull'), false);
  });

  it('knows who may act on every repository (the catalog)', () => {
    assert.equal(rules.permitsEverywhere('root', 'pull'), true);
    assert.equal(rules.permitsEverywhere('alice', 'pull'), false);
    assert.equal(rules.permitsEverywhere(null, 'pull'), false);
  });
});

describe('scopes and challenges', () => {
  it('parses repeated and space-separated scopes, names with ports, and drops garbage', () => {
    assert.deepEqual(parseScopes(['repository:library/alpine:pull,push', 'repository:localhost:5000/x:pull registry:catalog:*', 'nonsense', 'a:b']), [
      { type: 'repository', name: 'library/alpine', actions: ['pull', 'push'] },
      { type: 'repository', name: 'localhost:5000/x', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('builds a challenge that the upstream challenge parser reads back', () => {
    const header = bearerChallenge({ realm: 'https://m:5000/token?ns=ghcr.io', service: 'long"shore', scope: 'repository:a/b:pull', error: 'insufficient_scope' });
    assert.deepEqual(parseChallenges(header), [{
      scheme: 'bearer',
      params: { realm: 'https://m:5000/token?ns=ghcr.io', service: 'long"shore', scope: 'repository:a/b:pull', error: 'insufficient_scope' },
    }]);
  });
});

describe('user store', () => {
  const hash = bcrypt.hashSync('pw-1', 4);

  it('accepts bcrypt htpasswd entries, $2y$ included, and skips blanks and comments', async () => {
    const store = new UserStore([], `# accounts\n\nbob:${hash.replace(/^\$2b/, '$2y')}\r\n`);
    assert.equal(store.size, 1);
    assert.equal(await store.verify('bob', 'pw-1'), true);
    assert.equal(await store.verify('bob', 'pw-2'), false);
    assert.equal(await store.verify('nobody', 'pw-1'), false);
  });

  it('refuses other htpasswd formats, naming the line and user but not the hash', () => {
    for (const line of ['carol:$apr1$abc$defghijklmnopqrstuvwx', 'carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', 'carol:plain']) {
      assert.throws(() => parseHtpasswd(`bob:${hash}\n${line}\n`), (err: Error) => {
        assert.match(err.message, /line 2 \(user "carol"\) is not a bcrypt entry/);
        assert.ok(!err.message.includes(line.slice(6)));
        assert.equal((err as Error & { code?: string }).code, 'LS_CONFIG_INVALID');
        return true;
      });
    }
    assert.throws(() => parseHtpasswd('no-colon-here\n'), /line 1 is not "user:hash"/);
  });

  it('lets config accounts win over htpasswd ones of the same name', async () => {
    const store = new UserStore([{ username: 'bob', passwordHash: bcrypt.hashSync('from-config', 4) }], `bob:${hash}\n`);
    assert.equal(await store.verify('bob', 'from-config'), true);
    assert.equal(await store.verify('bob', 'pw-1'), false);
  });

  it('reports an unreadable htpasswd file as a configuration error', () => {
    assert.throws(() => UserStore.fromConfig([], '/nonexistent/htpasswd'), ConfigError);
  });
});

describe('tokens', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-keys-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('generates a P-256 key once, mode 0600, and loads the same key again', async () => {
    const path = join(dir, 'auth', 'key.pem');
    const first = await loadSigningKey(null, path);
    assert.equal(first.alg, 'ES256');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const second = await loadSigningKey(null, path);
    assert.equal(second.kid, first.kid);
    assert.match(await readFile(path, 'utf8'), /BEGIN PRIVATE KEY/);
  });

  it('takes an Ed25519 key file as EdDSA and refuses RSA', async () => {
    const ed = join(dir, 'ed.pem');
    await writeFile(ed, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    assert.equal((await loadSigningKey(ed, join(dir, 'unused.pem'))).alg, 'EdDSA');
    const rsa = join(dir, 'rsa.pem');
    await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    await assert.rejects(loadSigningKey(rsa, join(dir, 'unused.pem')), /expected an EC P-256 or Ed25519 key, got rsa/);
  });

  it('verifies its own tokens, remembers them, and refuses them once expired, cached or not', async () => {
    const key = await loadSigningKey(null, join(dir, 'clock.pem'));
    let now = Date.UTC(2030, 0, 1);
    const clock = () => now;
    const settings = { issuer: 'longshore', service: 'longshore', ttl: 2_000 };
    const issued = await new TokenIssuer(key, settings, clock).issue('alice', [{ type: 'repository', name: 'docker.io/team/x', actions: ['pull'] }]);
    assert.equal(issued.expiresIn, 2);
    const verifier = new TokenVerifier(key, settings, clock);
    const verified = await verifier.verify(issued.token);
    assert.equal(verified.subject, 'alice');
    assert.deepEqual([...verified.grants.get('docker.io/team/x')!], ['pull']);
    assert.equal(await verifier.verify(issued.token), verified, 'a second verification is answered from memory');
    now += 2_000;
    await assert.rejects(verifier.verify(issued.token), TokenInvalidError);
    await assert.rejects(new TokenVerifier(key, settings, clock).verify(issued.token), /token expired/);
  });

  it('refuses a token for another service or issuer', async () => {
    const key = await loadSigningKey(null, join(dir, 'aud.pem'));
    const issued = await new TokenIssuer(key, { issuer: 'longshore', service: 'other', ttl: 60_000 }).issue(null, []);
    await assert.rejects(new TokenVerifier(key, { issuer: 'longshore', service: 'longshore' }).verify(issued.token), /token invalid/);
    const verified = await new TokenVerifier(key, { issuer: 'longshore', service: 'other' }).verify(issued.token);
    assert.equal(verified.subject, null, 'an anonymous token has no subject');
  });
});

describe('auth and tls configuration', () => {
  it('defaults to auth off and no TLS', () => {
    const config = parseConfig({});
    assert.equal(config.auth.enabled, false);
    assert.equal(config.auth.tokenTTL, 300_000);
    assert.equal(config.tls, null);
  });

  it('refuses a non-bcrypt password hash, a sub-second tokenTTL and an unknown action, naming the key', () => {
    assert.throws(() => parseConfig({ auth: { users: [{ username: 'a', passwordHash: 'plain' }] } }), /auth\.users\.0\.passwordHash: expected a bcrypt hash/);
    assert.throws(() => parseConfig({ auth: { tokenTTL: '500ms' } }), /auth\.tokenTTL: must be at least 1s/);
    assert.throws(() => parseConfig({ auth: { rules: [{ users: ['*'], repositories: ['*'], actions: ['admin'] }] } }), /auth\.rules\.0\.actions\.0/);
  });

  it('requires both tls.cert and tls.key', () => {
    assert.throws(() => parseConfig({ tls: { cert: 'a.crt' } }), /tls\.key/);
    assert.equal(parseConfig({ tls: { cert: 'a.crt', key: 'a.key', httpListen: '127.0.0.1:5080' } }).tls?.httpListen, '127.0.0.1:5080');
  });
});
