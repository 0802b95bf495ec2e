import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LongshoreError } from '../../src/errors.js';
import { AcceptSet, MediaType, manifestReferences } from '../../src/registry/media-types.js';
import { isValidName, parseDigest, parseReference } from '../../src/registry/reference.js';
import { UpstreamRouter } from '../../src/registry/routing.js';
import { parseChallenges } from '../../src/upstream/challenge.js';

describe('repository names (distribution-spec grammar)', () => {
  it('accepts valid names', () => {
    for (const name of ['alpine', 'library/alpine', 'a/b/c', 'my-org/my_app', 'x__y', 'a.b/c-d', 'a--b', '0']) {
      assert.equal(isValidName(name), true, name);
    }
  });
  it('rejects invalid names, including traversal and escapes', () => {
    for (const name of ['', '..', 'a/../b', '../a', 'A', 'a//b', '/a', 'a/', 'a_-b', 'a%2fb', '-a', 'a.', `a/${'b'.repeat(255)}`, 'a b', 'a\\b']) {
      assert.equal(isValidName(name), false, name);
    }
  });
});

describe('references and digests', () => {
  it('parses tags and sha256 digests', () => {
    assert.deepEqual(parseReference('3.19'), { kind: 'tag', tag: '3.19' });
    assert.deepEqual(parseReference('_x'), { kind: 'tag', tag: '_x' });
    const d = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseReference(d), { kind: 'digest', digest: d });
  });
  it('rejects bad tags and digests with distinct codes', () => {
    assert.throws(() => parseReference('.hidden'), { code: 'LS_TAG_INVALID' });
    assert.throws(() => parseReference('x'.repeat(129)), { code: 'LS_TAG_INVALID' });
    assert.throws(() => parseDigest('sha256:ABC'), { code: 'LS_DIGEST_INVALID' });
    assert.throws(() => parseDigest(`sha256:${'A'.repeat(64)}`), { code: 'LS_DIGEST_INVALID' });
    assert.throws(() => parseDigest(`sha256:${'a'.repeat(63)}`), { code: 'LS_DIGEST_INVALID' });
    // sha512 is served like sha256 (the issue "sha512 digests"); an algorithm outside the registry is not.
    assert.equal(parseDigest(`sha512:${'a'.repeat(128)}`), `sha512:${'a'.repeat(128)}`);
    assert.throws(() => parseDigest(`sha512:${'a'.repeat(64)}`), { code: 'LS_DIGEST_INVALID' });
    assert.throws(() => parseDigest(`blake3:${'a'.repeat(64)}`), { code: 'LS_DIGEST_UNSUPPORTED' });
    assert.throws(() => parseDigest('sha256:../../etc'), { code: 'LS_DIGEST_INVALID' });
  });
});

describe('WWW-Authenticate parsing', () => {
  it('parses a Docker Hub Bearer challenge', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } });
  });
  it('parses Basic, unquoted values, escapes and several challenges in one header', () => {
    const parsed = parseChallenges('Basic realm="a \\"quoted\\" realm", Bearer realm=https://x/token,service=svc');
    assert.equal(parsed.length, 2);
    assert.deepEqual(parsed[0], { scheme: 'basic', params: { realm: 'a "quoted" realm' } });
    assert.deepEqual(parsed[1], { scheme: 'bearer', params: { realm: 'https://x/token', service: 'svc' } });
  });
  it('survives garbage', () => {
    assert.deepEqual(parseChallenges(undefined), []);
    assert.deepEqual(parseChallenges('   '), []);
    assert.equal(parseChallenges('Bearer realm="unterminated')[0]?.params.realm, 'unterminated');
  });
});

describe('Accept negotiation', () => {
  it('keys identical Accept lists identically, whatever their order or parameters', () => {
    const a = AcceptSet.parse(`${MediaType.OciIndex}, ${MediaType.DockerManifest};q=0.9`);
    const b = AcceptSet.parse([MediaType.DockerManifest, `${MediaType.OciIndex}; q=1`]);
    assert.equal(a.key, b.key);
    assert.equal(a.accepts(MediaType.OciIndex), true);
    assert.equal(a.accepts(MediaType.DockerManifestList), false);
  });
  it('treats a missing Accept header as single-image manifests only, and */* as everything', () => {
    const none = AcceptSet.parse(undefined);
    assert.equal(none.accepts(MediaType.DockerManifest), true);
    assert.equal(none.accepts(MediaType.OciIndex), false);
    assert.equal(AcceptSet.parse('*/*').accepts(MediaType.OciIndex), true);
    assert.notEqual(none.key, AcceptSet.parse('*/*').key);
  });
  it('reads the references out of manifests and indexes', () => {
    const manifest = Buffer.from(JSON.stringify({ config: { digest: 'sha256:c' }, layers: [{ digest: 'sha256:l1' }, { digest: 'sha256:l2' }], subject: { digest: 'sha256:s' } }));
    assert.deepEqual(manifestReferences(manifest), { blobs: ['sha256:c', 'sha256:l1', 'sha256:l2'], manifests: ['sha256:s'] });
    const index = Buffer.from(JSON.stringify({ manifests: [{ digest: 'sha256:m1' }, { digest: 'sha256:m2' }] }));
    assert.deepEqual(manifestReferences(index), { blobs: [], manifests: ['sha256:m1', 'sha256:m2'] });
    assert.deepEqual(manifestReferences(Buffer.from('not json')), { blobs: [], manifests: [] });
  });
});

describe('upstream routing', () => {
  const router = new UpstreamRouter(['docker.io', 'ghcr.io', 'localhost:5001'], 'docker.io');
  it('routes by ns, by path prefix, else to the default upstream', () => {
    assert.deepEqual(router.route('alpine', undefined), { upstream: 'docker.io', name: 'library/alpine' });
    assert.deepEqual(router.route('library/alpine', 'docker.io'), { upstream: 'docker.io', name: 'library/alpine' });
    assert.deepEqual(router.route('owner/img', 'ghcr.io'), { upstream: 'ghcr.io', name: 'owner/img' });
    assert.deepEqual(router.route('ghcr.io/owner/img', undefined), { upstream: 'ghcr.io', name: 'owner/img' });
    assert.deepEqual(router.route('docker.io/nginx', undefined), { upstream: 'docker.io', name: 'library/nginx' });
    assert.deepEqual(router.route('index.docker.io/library/nginx', undefined), { upstream: 'docker.io', name: 'library/nginx' });
    assert.deepEqual(router.route('localhost:5001/team/app', undefined), { upstream: 'localhost:5001', name: 'team/app' });
    // library/ is a Docker Hub rule only
    assert.deepEqual(router.route('single', 'ghcr.io'), { upstream: 'ghcr.io', name: 'single' });
  });
  it('refuses hosts that are not configured', () => {
    assert.throws(() => router.route('x/y', 'evil.example'), { code: 'LS_UPSTREAM_UNKNOWN' });
    assert.throws(() => router.route('evil.example/x/y', undefined), { code: 'LS_UPSTREAM_UNKNOWN' });
    assert.throws(() => router.route('169.254.169.254:80/x', undefined), { code: 'LS_UPSTREAM_UNKNOWN' });
  });
  it('routes names a push made local to the local registry, never library/ or ?ns= or host names', () => {
    const pushed = new Set(['alpine', 'equipe/app', 'library/alpine']);
    const local = new UpstreamRouter(['docker.io', 'ghcr.io'], 'docker.io', { local: { has: (name) => pushed.has(name) }, cached: (r) => r.name === 'bitnami/redis' });
    assert.deepEqual(local.route('alpine', undefined), { upstream: '@local', name: 'alpine' });
    assert.deepEqual(local.route('equipe/app', undefined), { upstream: '@local', name: 'equipe/app' });
    // what registry-mirrors and containerd ask for stays upstream, whatever has been pushed
    assert.deepEqual(local.route('library/alpine', undefined), { upstream: 'docker.io', name: 'library/alpine' });
    assert.deepEqual(local.route('alpine', 'docker.io'), { upstream: 'docker.io', name: 'library/alpine' });
    assert.deepEqual(local.route('equipe/app', 'docker.io'), { upstream: 'docker.io', name: 'equipe/app' });
    // writes create local repositories, except where mirror clients may ask for the name
    assert.deepEqual(local.routeWrite('new-app', undefined), { upstream: '@local', name: 'new-app' });
    assert.deepEqual(local.routeWrite('team/new', undefined), { upstream: '@local', name: 'team/new' });
    for (const [name, ns, setting] of [['library/new', undefined, 'local.prefixes'], ['ghcr.io/o/i', undefined, 'local.prefixes'], ['new', 'docker.io', undefined], ['bitnami/redis', undefined, 'local.prefixes']] as const) {
      assert.throws(() => local.routeWrite(name, ns), (err: LongshoreError) => err.code === 'LS_UNSUPPORTED' && err.detail?.setting === setting, name);
      assert.equal(local.routeFor(name, ns, true).upstream === '@local', false, `${name}: rights are checked where reads go`);
    }
    assert.deepEqual(local.routeFor('new-app', undefined, true), { upstream: '@local', name: 'new-app' });
    assert.deepEqual(local.routeFor('new-app', undefined, false), { upstream: 'docker.io', name: 'library/new-app' });
    const strict = new UpstreamRouter(['docker.io'], 'docker.io', { createOnPush: false, prefixes: ['team/'] });
    assert.throws(() => strict.routeWrite('new-app', undefined), /set local\.createOnPush to true/);
    assert.deepEqual(strict.routeWrite('team/x', undefined), { upstream: '@local', name: 'team/x' });
  });
  it('validates the name after the prefix', () => {
    assert.throws(() => router.route('ghcr.io/../x', undefined), { code: 'LS_NAME_INVALID' });
    assert.throws(() => router.route('Alpine', undefined), { code: 'LS_NAME_INVALID' });
  });
});
