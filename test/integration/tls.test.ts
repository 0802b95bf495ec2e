// Issue 6: TLS on the mirror itself. Longshore runs as a child process (src/main.ts, as in production,
// since SIGHUP is what reloads the certificate) with a certificate from a CA made by openssl for this
// test; clients trust that CA only.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { run as runCli } from '../../src/cli/main.js';
import { Longshore } from '../support/e2e/longshore.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES } from '../support/http.js';
import { publishImage, type PublishedImage } from '../support/images.js';
import { createTestCa, issueServerCert, type ServerCert, type TestCa } from '../support/test-ca.js';
import { waitFor } from '../support/wait.js';

interface Fetched {
  status: number;
  body: string;
  socket: TLSSocket;
  fingerprint256: string;
}

/** GET over HTTPS with node:https, to see the socket and the certificate the server presented. */
function fetchTls(url: string, agent: HttpsAgent): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { agent }, (res) => {
      const socket = res.socket as TLSSocket;
      const fingerprint256 = socket.getPeerCertificate().fingerprint256;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket, fingerprint256 }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS on the mirror', () => {
  let dir: string;
  let ca: TestCa;
  let first: ServerCert;
  let renewed: ServerCert;
  let certPath: string;
  let keyPath: string;
  let fake: FakeRegistry;
  let image: PublishedImage;
  let longshore: Longshore;
  let plainPort: number;
  const agents: HttpsAgent[] = [];
  const trusting = () => {
    const agent = new HttpsAgent({ ca: ca.cert, keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    return agent;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshore-tls-'));
    ca = createTestCa(dir);
    first = issueServerCert(ca, dir, 'first');
    renewed = issueServerCert(ca, dir, 'renewed');
    // The files the config names; tests overwrite them before a SIGHUP.
    certPath = join(dir, 'server.crt');
    keyPath = join(dir, 'server.key');
    copyFileSync(first.certPath, certPath);
    copyFileSync(first.keyPath, keyPath);
    fake = await FakeRegistry.start();
    image = publishImage(fake, 'library/alpine', '3.19');
    longshore = await Longshore.start({
      upstreamUrl: fake.registryUrl,
      username: 'unused',
      password: 'unused',
      config: {
        upstreams: { 'docker.io': { url: fake.registryUrl } },
        tls: { cert: certPath, key: keyPath, httpListen: '127.0.0.1:0' },
      },
    });
    const plain = await waitFor(async () => longshore.recordsSince(0, 'listening without tls')[0], { what: 'the plain listener', timeoutMs: 30_000 });
    plainPort = Number(plain.port);
  });
  after(async () => {
    for (const agent of agents) agent.destroy();
    await longshore?.stop();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const httpsUrl = (path: string) => `https://127.0.0.1:${longshore.port}${path}`;

  it('serves HTTPS on listen, and a client trusting the CA pulls through it', async () => {
    const listening = longshore.recordsSince(0, 'listening')[0];
    assert.equal(listening?.tls, true);
    const agent = new Agent({ connect: { ca: ca.cert } });
    try {
      const res = await request(httpsUrl('/v2/library/alpine/manifests/3.19'), { headers: { accept: ALL_MANIFEST_TYPES }, dispatcher: agent });
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['docker-content-digest'], image.index);
    } finally {
      await agent.close();
    }
    const fetched = await fetchTls(httpsUrl('/healthz'), trusting());
    assert.equal(fetched.fingerprint256, first.fingerprint256);
  });

  it('fails the handshake of a client that does not trust the CA', async () => {
    const agent = new Agent();
    try {
      await assert.rejects(request(httpsUrl('/v2/'), { dispatcher: agent }), (err: Error & { code?: string }) => {
        assert.match(String(err.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER_CERT/);
        return true;
      });
    } finally {
      await agent.close();
    }
  });

  it('`longshore health` asks the server of its config: on tls.httpListen, else over HTTPS', async () => {
    const check = async (tls: Record<string, unknown>) => {
      const configFile = join(dir, `health-${Object.keys(tls).length}.json`);
      writeFileSync(configFile, JSON.stringify({ listen: `127.0.0.1:${longshore.port}`, upstreams: { 'docker.io': { url: fake.registryUrl } }, tls }));
      const out: string[] = [];
      const code = await runCli(['health', '--config', configFile], (line) => out.push(line));
      return { code, out: out.join('\n') };
    };
    assert.deepEqual(await check({ cert: certPath, key: keyPath }), { code: 0, out: `https://127.0.0.1:${longshore.port}/healthz: 200` });
    assert.deepEqual(await check({ cert: certPath, key: keyPath, httpListen: `127.0.0.1:${plainPort}` }), { code: 0, out: `http://127.0.0.1:${plainPort}/healthz: 200` });
  });

  it('serves plain HTTP only on tls.httpListen', async () => {
    const plain = await request(`http://127.0.0.1:${plainPort}/v2/`);
    await plain.body.dump();
    assert.equal(plain.statusCode, 200);
    const wrong = await request(`http://127.0.0.1:${longshore.port}/v2/`).then(
      async (res) => {
        await res.body.dump();
        return res.statusCode;
      },
      () => 'failed',
    );
    assert.notEqual(wrong, 200, 'plain HTTP on the TLS port must not be served');
  });

  it('serves a renewed certificate after SIGHUP to new connections, keeping open ones', async () => {
    const kept = trusting();
    const before = await fetchTls(httpsUrl('/healthz'), kept);
    assert.equal(before.fingerprint256, first.fingerprint256);
    const mark = await longshore.settledMark();
    copyFileSync(renewed.certPath, certPath);
    copyFileSync(renewed.keyPath, keyPath);
    process.kill(longshore.process.pid, 'SIGHUP');
    const loaded = await waitFor(async () => longshore.recordsSince(mark, 'tls certificate loaded')[0], { what: 'the reload', timeoutMs: 30_000 });
    assert.equal(loaded.fingerprint256, renewed.fingerprint256);
    assert.equal(longshore.process.running, true);

    const fresh = await fetchTls(httpsUrl('/healthz'), trusting());
    assert.equal(fresh.status, 200);
    assert.equal(fresh.fingerprint256, renewed.fingerprint256);
    // The connection opened before the reload was not dropped: the agent reuses it, old certificate and all.
    const again = await fetchTls(httpsUrl('/healthz'), kept);
    assert.equal(again.status, 200);
    assert.equal(again.socket, before.socket);
    assert.equal(again.fingerprint256, first.fingerprint256);
  });

  it('keeps the certificate in use when a reload finds a key that does not match, and never logs the key', async () => {
    const mark = await longshore.settledMark();
    copyFileSync(first.keyPath, keyPath); // renewed certificate, first key
    process.kill(longshore.process.pid, 'SIGHUP');
    const failed = await waitFor(async () => longshore.recordsSince(mark, 'tls reload failed; keeping the certificate in use')[0], { what: 'the failed reload', timeoutMs: 30_000 });
    assert.match(String(failed.error), /tls/);
    const fetched = await fetchTls(httpsUrl('/healthz'), trusting());
    assert.equal(fetched.fingerprint256, renewed.fingerprint256);
    const log = JSON.stringify(longshore.records);
    for (const key of [first.key, renewed.key]) {
      const base64 = key.toString('utf8').split('\n').filter((l) => l && !l.startsWith('-----')).join('');
      assert.ok(!log.includes(base64.slice(0, 40)), 'key material in the log');
    }
    assert.ok(!log.includes('PRIVATE KEY'));
  });
});
