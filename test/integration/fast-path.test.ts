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
import { waitFor } from '../support/wait.js';
import { request as httpRequest } from 'node:http';

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

  it('logs every request exactly once: a hit from memory when handed over, a miss when it ends, a broken download as aborted', async () => {
    const lines = (id: string) => mirror.logs().filter((l) => l.msg === 'request' && l.requestId === id);
    // A miss (a manifest not fetched yet) ends after an upstream fetch: accounted on 'close'.
    const fresh = publishImage(fake, 'library/logged', 'v1', 'docker');
    const digest = fresh.platforms['linux/amd64']!;
    const path = `/v2/library/logged/manifests/${digest}`;
    const miss = await raw(mirror.url, path, { accept: ALL_MANIFEST_TYPES, 'x-request-id': 'log-miss' });
    assert.equal(miss.status, 200);
    const [missLine] = await waitFor(() => lines('log-miss').length > 0 && lines('log-miss'), { what: 'the miss request line' });
    assert.equal(missLine!.cache, 'miss');
    assert.equal(missLine!.bytes, miss.body.length);
    assert.equal(missLine!.aborted, undefined);
    // The same again is a hit from memory: accounted as soon as the response is handed to Node.
    const hit = await raw(mirror.url, path, { accept: ALL_MANIFEST_TYPES, 'x-request-id': 'log-hit' });
    assert.equal(hit.status, 200);
    const head = await raw(mirror.url, path, { accept: ALL_MANIFEST_TYPES, 'x-request-id': 'log-head' }, 'HEAD');
    assert.equal(head.status, 200);
    for (const [id, bytes] of [['log-hit', hit.body.length], ['log-head', 0]] as const) {
      const found = lines(id);
      assert.equal(found.length, 1, id);
      assert.equal(found[0]!.cache, 'hit', id);
      assert.equal(found[0]!.status, 200, id);
      assert.equal(found[0]!.bytes, bytes, id);
      assert.equal(found[0]!.aborted, undefined, id);
    }
    // A blob download the client walks away from, mid-body, is logged as aborted, once.
    const [blob, content] = [...image.blobs].sort((a, b) => b[1].length - a[1].length)[0]!;
    let release!: () => void;
    fake.setBlobFault(blob, { kind: 'hold', after: Math.floor(content.length / 2), release: new Promise<void>((resolve) => (release = resolve)) });
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${mirror.url}/v2/library/alpine/blobs/${blob}`, { headers: { 'x-request-id': 'log-abort' } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
        req.end();
      });
      const [abortLine] = await waitFor(() => lines('log-abort').length > 0 && lines('log-abort'), { what: 'the aborted request line' });
      assert.equal(abortLine!.aborted, true);
      assert.ok(Number(abortLine!.bytes) < content.length, `logged ${String(abortLine!.bytes)} of ${content.length} bytes`);
    } finally {
      release();
      fake.setBlobFault(blob, undefined);
    }
    assert.equal(lines('log-abort').length, 1);
  });
});
