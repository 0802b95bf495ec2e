// Security issue findings 4 and 10: the token endpoint under attack. Password checks (bcrypt) must not
// stall the event loop, one address may fail only `auth.loginFailures` logins a window, a burst beyond
// the password queue is refused at once, and no malformed request is a 500.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import express from 'express';
import { Agent, request } from 'undici';
import { ClientAuth } from '../../src/auth/client-auth.js';
import { inlineChecker, type PasswordChecker } from '../../src/auth/password-pool.js';
import { parseConfig } from '../../src/config/load.js';
import { tokenRouter } from '../../src/http/handlers/token.js';
import { ociErrorHandler } from '../../src/http/middleware/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { get, type Reply } from '../support/http.js';
import { startMirror, startMirrorOverFake, stopMirrorOverFake, type TestMirror } from '../support/mirror.js';

const PASSWORD = 'alice-pw-1';
// Cost 10, as production hashes: the attack is about what a check costs.
const COSTLY_HASH = bcrypt.hashSync(PASSWORD, 10);

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

interface TokenError {
  errors: Array<{ code: string }>;
  error: string;
  error_description: string;
}

async function post(url: string, headers: Record<string, string>, body: string | Buffer, dispatcher?: Agent): Promise<Reply> {
  const res = await request(url, { method: 'POST', headers, body, ...(dispatcher ? { dispatcher } : {}) });
  const buffer = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body: buffer, json: <T>() => JSON.parse(buffer.toString()) as T };
}

describe('token endpoint: password checks off the event loop', () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;

  before(async () => ({ fake, mirror } = await startMirrorOverFake((fake) => ({
    upstreams: { 'docker.io': { url: fake.registryUrl } },
    // No failure limit here: every one of the attacker's logins is checked.
    auth: { enabled: true, users: [{ username: 'alice', passwordHash: COSTLY_HASH }], loginFailures: 1000 },
  }))));
  after(() => stopMirrorOverFake({ fake, mirror }));

  it('keeps the event loop and /healthz responsive during 24 parallel wrong-password logins', async () => {
    // Measured as event-loop utilisation (the share of wall time the loop was busy), not as delays: on
    // this 2-core machine other processes and the password threads themselves preempt the main thread,
    // so a delay bound failed now and then (489 ms seen under a load average of 6) without bcrypt ever
    // running on the loop. Utilisation counts only time the loop spent running callbacks.
    const before = performance.eventLoopUtilization();
    let done = false;
    const attack = Promise.all(Array.from({ length: 24 }, () => get(`${mirror.url}/token?service=longshore`, { authorization: basic('alice', 'guess') })))
      .finally(() => (done = true));
    let healthChecks = 0;
    while (!done) {
      const reply = await get(`${mirror.url}/healthz`);
      assert.equal(reply.status, 200);
      healthChecks++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const replies = await attack;
    const busy = performance.eventLoopUtilization(before).utilization;
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [401], 'every wrong password is checked and refused');
    // Before the fix bcryptjs ran on the event loop in 100 ms slices, round-robin between the 24 logins:
    // the loop was busy nearly all the time (utilisation ~0.95) and /healthz waited behind them (2.4 s).
    // After it the loop only parses requests: ~0.05–0.15 here. The bound is loose, as tests are not benchmarks.
    assert.ok(busy < 0.5, `the event loop was busy ${(busy * 100).toFixed(0)} % of the time`);
    assert.ok(healthChecks > 1, '/healthz was answered while the logins were being checked');
    // The right password still works afterwards.
    assert.equal((await get(`${mirror.url}/token?service=longshore`, { authorization: basic('alice', PASSWORD) })).status, 200);
  });

  it('answers malformed token requests 400 (or 413) with an OAuth2 error body, never 500', async () => {
    const url = `${mirror.url}/token`;
    const form = 'application/x-www-form-urlencoded';
    const credentials = `grant_type=password&username=alice&password=guess&service=longshore`;
    const cases: Array<[string, Record<string, string>, string | Buffer]> = [
      ['latin1 charset', { 'content-type': `${form}; charset=latin1` }, credentials],
      ['utf-16 charset', { 'content-type': `${form}; charset=utf-16` }, credentials],
      ['unknown charset', { 'content-type': `${form}; charset=x-nonsense` }, credentials],
      ['body over the limit', { 'content-type': form }, `${credentials}&pad=${'x'.repeat(20_000)}`],
      ['too many parameters', { 'content-type': form }, `${credentials}${'&a='.repeat(1_100)}`],
      ['JSON body', { 'content-type': 'application/json' }, JSON.stringify({ grant_type: 'password', username: 'alice', password: 'guess' })],
      ['text body', { 'content-type': 'text/plain' }, credentials],
      ['no content type', {}, credentials],
      ['unsupported Content-Encoding', { 'content-type': form, 'content-encoding': 'br' }, credentials],
      ['corrupt gzip body', { 'content-type': form, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all')],
      ['multipart body', { 'content-type': 'multipart/form-data; boundary=b' }, `--b\r\ncontent-disposition: form-data; name="grant_type"\r\n\r\npassword\r\n--b--\r\n`],
      ['missing grant_type', { 'content-type': form }, 'username=alice&password=guess'],
      ['empty body', { 'content-type': form }, ''],
      ['grant_type=password without username', { 'content-type': form }, 'grant_type=password&password=guess'],
      ['grant_type=password without password', { 'content-type': form }, 'grant_type=password&username=alice'],
      ['repeated grant_type', { 'content-type': form }, 'grant_type=password&grant_type=password&username=alice&password=guess'],
      ['another grant', { 'content-type': form }, 'grant_type=client_credentials&client_id=x&client_secret=y'],
    ];
    for (const [name, headers, body] of cases) {
      const reply = await post(url, headers, body);
      assert.ok(reply.status === 400 || reply.status === 413, `${name}: ${reply.status} ${reply.body.toString()}`);
      const error = reply.json<TokenError>();
      assert.match(error.error, /^(invalid_request|unsupported_grant_type)$/, name);
      assert.equal(typeof error.error_description, 'string', name);
      assert.ok(error.errors[0]?.code, `${name}: docker reads the OCI errors`);
    }
    assert.equal(reply400('another grant', await post(url, { 'content-type': form }, 'grant_type=refresh_token&refresh_token=x')).error, 'unsupported_grant_type');
    // A gzip body is fine, and a wrong password in it is a 401 (invalid_grant), as ever.
    const zipped = await post(url, { 'content-type': form, 'content-encoding': 'gzip' }, gzipSync(credentials));
    assert.equal(zipped.status, 401);
    assert.equal(zipped.json<TokenError>().error, 'invalid_grant');
    assert.equal(zipped.json<TokenError>().errors[0]?.code, 'UNAUTHORIZED');
    const unhandled = mirror.logs().filter((r) => r.msg === 'unhandled error' || r.level === 50);
    assert.deepEqual(unhandled, [], 'a client error logged as a failure of the mirror');
    assert.ok(!mirror.rawLogs().includes('"stack"'), 'a stack trace in the log');
  });
});

function reply400(name: string, reply: Reply): TokenError {
  assert.equal(reply.status, 400, name);
  return reply.json<TokenError>();
}

describe('token endpoint: a burst beyond the password queue', () => {
  it('refuses logins beyond auth.loginQueue with 429 and Retry-After, at once', async () => {
    const fake = await FakeRegistry.start();
    const mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl } },
      auth: { enabled: true, users: [{ username: 'alice', passwordHash: COSTLY_HASH }], loginFailures: 1000, loginThreads: 1, loginQueue: 1 },
    });
    try {
      const replies = await Promise.all(Array.from({ length: 8 }, () => get(`${mirror.url}/token?service=longshore`, { authorization: basic('alice', 'guess') })));
      const statuses = replies.map((r) => r.status);
      assert.ok(statuses.filter((s) => s === 401).length >= 2, `one running and one waiting are checked: ${statuses.join(',')}`);
      const refused = replies.filter((r) => r.status === 429);
      assert.ok(refused.length >= 1, `statuses: ${statuses.join(',')}`);
      assert.equal(statuses.length, refused.length + statuses.filter((s) => s === 401).length);
      for (const reply of refused) {
        assert.match(String(reply.headers['retry-after']), /^\d+$/);
        assert.equal(reply.json<TokenError>().errors[0]?.code, 'TOOMANYREQUESTS');
        assert.equal(reply.json<TokenError>().error, 'temporarily_unavailable');
      }
      // The queue drains; nothing was counted against the address for the refused ones.
      assert.equal((await get(`${mirror.url}/token?service=longshore`, { authorization: basic('alice', PASSWORD) })).status, 200);
    } finally {
      await mirror.close();
      await fake.close();
    }
  });
});

describe('token endpoint: failed logins per client address', () => {
  let dir: string;
  let server: Server;
  let url: string;
  let auth: ClientAuth;
  let now = Date.parse('2026-11-25T10:00:00Z');
  let checks = 0;
  const otherClient = new Agent({ localAddress: '127.0.0.2' });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-login-limit-'));
    const config = parseConfig({
      auth: { enabled: true, users: [{ username: 'alice', passwordHash: bcrypt.hashSync(PASSWORD, 4) }], rules: [{ users: ['anonymous'], repositories: ['*'], actions: ['pull'] }] },
    });
    assert.equal(config.auth.loginFailures, 10);
    assert.equal(config.auth.loginWindow, 60_000);
    const counting: PasswordChecker = { check: (password, hash) => (checks++, inlineChecker.check(password, hash)) };
    auth = await ClientAuth.create(config.auth, join(dir, 'token.key'), (name) => `docker.io/${name}`, { checker: counting, now: () => now });
    const log = createLogger('silent');
    const app = express();
    app.use('/token', tokenRouter(auth, log));
    app.use(ociErrorHandler(log));
    server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token?service=longshore`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await otherClient.close();
    await auth.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses an address 429 after 10 failures without checking a password, until the window frees', async () => {
    for (let i = 0; i < 10; i++) {
      assert.equal((await get(url, { authorization: basic('alice', `guess-${i}`) })).status, 401, `failure ${i + 1}`);
      now += 1_000;
    }
    assert.equal(checks, 10);
    const held = await get(url, { authorization: basic('alice', 'guess-10') });
    assert.equal(held.status, 429);
    assert.equal(held.headers['retry-after'], '50', 'seconds until the first failure leaves the window');
    assert.equal(held.json<TokenError>().errors[0]?.code, 'TOOMANYREQUESTS');
    assert.equal(held.json<TokenError>().error, 'temporarily_unavailable');
    // Even the right password, and by the OAuth2 form: no password is checked at all.
    assert.equal((await get(url, { authorization: basic('alice', PASSWORD) })).status, 429);
    const form = await post(url.replace(/\?.*/, ''), { 'content-type': 'application/x-www-form-urlencoded' }, `grant_type=password&username=alice&password=${PASSWORD}&service=longshore`);
    assert.equal(form.status, 429);
    assert.equal(checks, 10, 'a held-back address costs no bcrypt work');
    // Anonymous tokens are not held back.
    assert.equal((await get(`${url}&scope=repository:library/alpine:pull`)).status, 200);
    // Another address logs in, and its success frees nobody else.
    const other = await request(url, { headers: { authorization: basic('alice', PASSWORD) }, dispatcher: otherClient });
    assert.equal(other.statusCode, 200);
    await other.body.dump();
    assert.equal((await get(url, { authorization: basic('alice', PASSWORD) })).status, 429);
    // Once the oldest failure is a window old, the address may try again: one failure frees one try.
    now += 50_000;
    assert.equal((await get(url, { authorization: basic('alice', PASSWORD) })).status, 200);
    assert.equal((await get(url, { authorization: basic('alice', 'guess-11') })).status, 401);
    assert.equal((await get(url, { authorization: basic('alice', PASSWORD) })).status, 429, 'ten failures in the window again');
  });
});

describe('token endpoint: failed logins behind a reverse proxy', () => {
  const cheapHash = bcrypt.hashSync(PASSWORD, 4);
  const through = (client: string, password: string) => ({ authorization: basic('alice', password), 'x-forwarded-for': client });

  async function fail(url: string, client: string, times: number): Promise<void> {
    for (let i = 0; i < times; i++) assert.equal((await get(url, through(client, `guess-${i}`))).status, 401, `${client}: failure ${i + 1}`);
  }

  it('counts a client that rotates X-Forwarded-For as one address when no proxy is trusted', async () => {
    const fake = await FakeRegistry.start();
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } }, auth: { enabled: true, users: [{ username: 'alice', passwordHash: cheapHash }] } });
    try {
      const url = `${mirror.url}/token?service=longshore`;
      for (let i = 0; i < 10; i++) assert.equal((await get(url, through(`203.0.113.${i}`, `guess-${i}`))).status, 401);
      assert.equal((await get(url, through('203.0.113.200', PASSWORD))).status, 429, 'a new X-Forwarded-For value is no new identity');
    } finally {
      await mirror.close();
      await fake.close();
    }
  });

  it('with server.trustedProxies, holds back the attacker behind the proxy and not everyone else', async () => {
    const fake = await FakeRegistry.start();
    const mirror = await startMirror({
      upstreams: { 'docker.io': { url: fake.registryUrl } },
      auth: { enabled: true, users: [{ username: 'alice', passwordHash: cheapHash }] },
      server: { trustedProxies: ['127.0.0.1'] },
    });
    try {
      const url = `${mirror.url}/token?service=longshore`;
      // The attacker writes its own X-Forwarded-For; the proxy appends the address it saw.
      await fail(url, '6.6.6.6, 203.0.113.66', 10);
      assert.equal((await get(url, through('203.0.113.66', PASSWORD))).status, 429, 'the attacker is held back');
      assert.equal((await get(url, through('6.6.6.6, 203.0.113.66', PASSWORD))).status, 429, 'whatever it writes left of the proxy');
      assert.equal((await get(url, through('203.0.113.7', PASSWORD))).status, 200, 'another user behind the same proxy logs in');
      const refused = mirror.logs().filter((l) => l.msg === 'login refused').length;
      assert.equal(refused, 10);
    } finally {
      await mirror.close();
      await fake.close();
    }
  });
});
