// Config of issue 16: warm defaults, sync rules, immutableTags; and image references as commands take them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError, isLongshoreError } from '../../src/errors.js';
import { parseImageRef, refsFromList } from '../../src/jobs/image-ref.js';
import { chooseManifests, parsePlatforms } from '../../src/jobs/warm.js';
import { UpstreamRouter } from '../../src/registry/routing.js';

describe('air-gap configuration', () => {
  it('defaults: linux/amd64, 4 at once, no sync rules, no immutable tags', () => {
    const config = parseConfig({});
    assert.deepEqual(config.warm, { platforms: ['linux/amd64'], concurrency: 4 });
    assert.deepEqual(config.sync, []);
    assert.deepEqual(config.upstreams['docker.io']!.immutableTags, []);
  });

  it('a sync rule names exactly one selector and a configured upstream; interval at least a minute', () => {
    const rule = { upstream: 'docker.io', repository: 'library/node' };
    assert.equal(parseConfig({ sync: [{ ...rule, semver: '>=20 <23' }] }).sync[0]!.interval, 6 * 3_600_000);
    for (const bad of [
      { ...rule },
      { ...rule, tags: ['20'], semver: '>=20' },
      { ...rule, regex: '(' },
      { ...rule, semver: 'twenty' },
      { ...rule, tags: ['20'], interval: '5s' },
      { ...rule, upstream: 'ghcr.io', tags: ['1'] },
    ]) assert.throws(() => parseConfig({ sync: [bad] }), ConfigError, JSON.stringify(bad));
    assert.throws(() => parseConfig({ upstreams: { 'docker.io': { url: 'https://registry-1.docker.io', immutableTags: ['a/b'] } } }), ConfigError);
  });
});

describe('image references', () => {
  const router = new UpstreamRouter(['docker.io', 'ghcr.io'], 'docker.io');

  it('names a registry, or the default upstream, and a tag or digest', () => {
    assert.equal(parseImageRef('alpine:3.19', router).full, 'docker.io/library/alpine:3.19');
    assert.equal(parseImageRef('docker.io/library/node:20', router).full, 'docker.io/library/node:20');
    assert.equal(parseImageRef('index.docker.io/team/app:1', router).full, 'docker.io/team/app:1');
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseImageRef(`ghcr.io/o/i@${digest}`, router).repo, { upstream: 'ghcr.io', name: 'o/i' });
    for (const bad of ['alpine', 'quay.io/x/y:1', 'alpine:bad tag', 'Alpine:1']) {
      assert.throws(() => parseImageRef(bad, router), (err: unknown) => isLongshoreError(err), bad);
    }
    assert.deepEqual(refsFromList('# images\nalpine:3.19\n\n  node:20  # lts\n'), ['alpine:3.19', 'node:20']);
  });

  it('chooses index entries by platform; "linux/arm64" takes any variant', () => {
    const index = Buffer.from(JSON.stringify({ manifests: [
      { digest: `sha256:${'1'.repeat(64)}`, platform: { os: 'linux', architecture: 'amd64' } },
      { digest: `sha256:${'2'.repeat(64)}`, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { digest: `sha256:${'3'.repeat(64)}`, platform: { os: 'unknown', architecture: 'unknown' } },
    ] }));
    assert.deepEqual(chooseManifests(index, ['linux/arm64']).map((e) => e.platform), ['linux/arm64/v8']);
    assert.equal(chooseManifests(index, 'all').length, 3);
    assert.deepEqual(chooseManifests(index, parsePlatforms('linux/amd64,linux/arm64/v8', [])).length, 2);
    assert.throws(() => parsePlatforms('linux', []), (err: unknown) => isLongshoreError(err, 'LS_QUERY_INVALID'));
  });
});
