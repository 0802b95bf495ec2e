// Manifest GETs and HEADs skip Express (http/fast-path.ts). The same Longshore must answer them the same
// way through Express: statuses, headers and bodies, errors included, and count and log them alike.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { manifestTarget } from '../../src/http/fast-path.js';
import { nsOf } from '../../src/http/registry-target.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, raw } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';

/** Headers that differ between any two responses. */
const VARYING = new Set(['date', 'x-request-id', 'connection', 'keep-alive']);

describe('manifest fast path', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let viaExpress: Server;
  let expressUrl: string;
  let image: PublishedImage;

  before(async () => {
    fake = await FakeRegistry.start({ auth: 'none' });
    image = publishImage(fake, 'library/alpine', '3.19', 'docker');
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl, tagTTL: '1h' } } });
    // The same instance, served by Express alone.
    viaExpress = createServer(mirror.longshore.app);
    await new Promise<void>((resolve) => viaExpress.listen(0, '127.0.0.1', resolve));
    expressUrl = `http://127.0.0.1:${(viaExpress.address() as AddressInfo).port}`;
  });
  after(async () => {
    viaExpress.closeAllConnections();
    await new Promise((resolve) => viaExpress.close(resolve));
    await mirror.close();
    await fake.close();
  });

  it('takes manifest URLs only', () => {
    assert.deepEqual(manifestTarget('/v2/library/alpine/manifests/3.19'), { endpoint: 'manifest', name: 'library/alpine', reference: '3.19' });
    assert.deepEqual(manifestTarget('/v2/alpine/manifests/latest?ns=docker.io'), { endpoint: 'manifest', name: 'alpine', reference: 'latest' });
    // ns is read by the one function every path uses: exactly one value, or none
    assert.equal(nsOf('/v2/alpine/manifests/latest?ns=docker.io'), 'docker.io');
    assert.equal(nsOf('/v2/alpine/manifests/latest?ns=docker.io&ns=ghcr.io'), undefined);
    assert.equal(nsOf('/v2/alpine/manifests/latest'), undefined);
    for (const other of ['/v2/', '/v2/alpine/blobs/sha256:abc', '/v2/alpine/tags/list', '/v2/alpine/manifests/', '/v2/alpine/manifests/a/b',
      '/V2/alpine/manifests/latest', '/v2/a?b/manifests/latest', '/metrics', '/v2/alpine/blobs/uploads/']) {
      assert.equal(manifestTarget(other), undefined, other);
    }
  });

  it('answers exactly as the Express route does', async () => {
    const platform = image.platforms['linux/amd64']!;
    const cases: Array<[string, Record<string, string>, 'GET' | 'HEAD']> = [
      ['/v2/library/alpine/manifests/3.19', { accept: ALL_MANIFEST_TYPES }, 'GET'],
      ['/v2/library/alpine/manifests/3.19', { accept: ALL_MANIFEST_TYPES }, 'HEAD'],
      ['/v2/alpine/manifests/3.19?ns=docker.io', { accept: ALL_MANIFEST_TYPES }, 'GET'],
      ['/v2/alpine/manifests/3.19?ns=docker.io&ns=docker.io', { accept: ALL_MANIFEST_TYPES }, 'GET'],
      [`/v2/library/alpine/manifests/${platform}`, {}, 'GET'],
      [`/v2/library/alpine/manifests/${platform}`, { 'if-none-match': `"${platform}"` }, 'GET'],
      ['/v2/library/alpine/manifests/3.19?ns=evil.example', {}, 'GET'],
      ['/v2/Upper/Case/manifests/latest', {}, 'GET'],
      ['/v2/library/alpine/manifests/bad%20tag', {}, 'GET'],
      ['/v2/library/alpine/manifests/no-such-tag', {}, 'GET'],
      ['/v2/library/alpine/manifests/no-such-tag', {}, 'HEAD'],
    ];
    // Warm the cache first, so both see the same cache outcome.
    for (const [path, headers, method] of cases) await raw(mirror.url, path, headers, method);
    for (const [path, headers, method] of cases) {
      const fast = await raw(mirror.url, path, headers, method);
      const slow = await raw(expressUrl, path, headers, method);
      const what = `${method} ${path}`;
      assert.equal(fast.error, undefined, what);
      assert.equal(fast.status, slow.status, what);
      assert.deepEqual(fast.body, slow.body, what);
      const strip = (h: Record<string, unknown>) => Object.fromEntries(Object.entries(h).filter(([k]) => !VARYING.has(k)));
      assert.deepEqual(strip(fast.headers), strip(slow.headers), what);
      assert.match(String(fast.headers['x-request-id']), /^[0-9a-f-]{36}$/, what);
      assert.equal(fast.headers['docker-distribution-api-version'], 'registry/2.0', what);
    }
  });

  it('echoes a client request id, logs the request, and counts it as a manifest request', async () => {
    const reply = await raw(mirror.url, '/v2/library/alpine/manifests/3.19?ns=docker.io', { accept: ALL_MANIFEST_TYPES, 'x-request-id': 'ci-run-42' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-request-id'], 'ci-run-42');
    const line = mirror.logs().find((l) => l.msg === 'request' && l.requestId === 'ci-run-42');
    assert.equal(line?.path, '/v2/library/alpine/manifests/3.19?ns=docker.io');
    assert.equal(line?.status, 200);
    assert.equal(line?.cache, 'hit');
    const metrics = (await raw(mirror.url, '/metrics')).body.toString();
    assert.match(metrics, /longshore_http_requests_total\{[^}]*route="manifest"[^}]*cache="hit"[^}]*\} [1-9]/);
  });
});
