// Admin commands (gc, verify --quarantine) send the data directory's admin token to the running server at
// the URL its lock file records. Served over HTTPS only, the server's certificate names the host clients
// use, not loopback, so the command cannot verify the host name; it checks that the certificate is the one
// the server recorded beside the URL, and sends the token only then. The attacker: a process that took
// over the recorded port (the server gone meanwhile) with a certificate of its own.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run as runCli } from '../../src/cli/main.js';
import { StorePaths } from '../../src/storage/paths.js';
import { Longshore } from '../support/e2e/longshore.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { createTestCa, issueServerCert, type ServerCert } from '../support/test-ca.js';
import { waitFor } from '../support/wait.js';

describe('admin commands against a server that serves HTTPS only', () => {
  let dir: string;
  let first: ServerCert;
  let renewed: ServerCert;
  let impostorCert: ServerCert;
  let certPath: string;
  let keyPath: string;
  let fake: FakeRegistry;
  let longshore: Longshore;
  let configFile: string;

  const lockOf = (dataDir: string) => JSON.parse(readFileSync(new StorePaths(dataDir).lock, 'utf8')) as { adminUrl?: string; adminCertificate?: string };
  const gc = async (config: string) => {
    const out: string[] = [];
    const code = await runCli(['gc', '--to', '0', '--json', '--config', config], (line) => out.push(line));
    return { code, out: out.join('\n') };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshore-admin-tls-'));
    const ca = createTestCa(dir);
    first = issueServerCert(ca, dir, 'first');
    renewed = issueServerCert(ca, dir, 'renewed');
    const otherDir = join(dir, 'impostor');
    mkdirSync(otherDir);
    impostorCert = issueServerCert(createTestCa(otherDir, 'Impostor CA'), otherDir, 'impostor');
    certPath = join(dir, 'server.crt');
    keyPath = join(dir, 'server.key');
    copyFileSync(first.certPath, certPath);
    copyFileSync(first.keyPath, keyPath);
    fake = await FakeRegistry.start();
    const upstreams = { 'docker.io': { url: fake.registryUrl } };
    longshore = await Longshore.start({ upstreamUrl: fake.registryUrl, username: 'unused', password: 'unused', config: { upstreams, tls: { cert: certPath, key: keyPath } } });
    await waitFor(() => lockOf(longshore.dataDir).adminCertificate !== undefined, { what: 'the admin URL in the lock file', timeoutMs: 30_000 });
    configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ dataDir: longshore.dataDir, upstreams, tls: { cert: certPath, key: keyPath } }));
  });
  after(async () => {
    await longshore?.stop();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records the certificate with the HTTPS admin URL, and gc runs on the server over a connection checked against it', async () => {
    const lock = lockOf(longshore.dataDir);
    assert.equal(lock.adminUrl, `https://127.0.0.1:${longshore.port}`);
    assert.equal(lock.adminCertificate, first.fingerprint256);
    const mark = await longshore.settledMark();
    const { code, out } = await gc(configFile);
    assert.equal(code, 0, out);
    assert.equal(typeof (JSON.parse(out) as { evicted?: unknown }).evicted, 'number', out);
    const jobs = (await longshore.requestsSince(mark)).filter((line) => line.path === '/api/v1/jobs/gc');
    assert.equal(jobs.length, 1, 'the server ran the job');
    assert.equal(jobs[0]!.status, 200);
  });

  it('sends nothing to a listener on the recorded URL with another certificate, or when no certificate is recorded', async () => {
    const received: string[] = [];
    let connections = 0;
    const impostor: HttpsServer = createHttpsServer({ cert: readFileSync(impostorCert.certPath), key: readFileSync(impostorCert.keyPath) }, (req, res) => {
      received.push(`${req.method} ${req.url} ${JSON.stringify(req.headers)}`);
      res.end('{}');
    });
    impostor.on('connection', () => connections++);
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as AddressInfo).port;
    // A data directory whose lock names a live server (the real one's pid) at the impostor's port.
    const dataDir = join(dir, 'hijacked');
    mkdirSync(dataDir);
    const paths = new StorePaths(dataDir);
    writeFileSync(paths.adminToken, 'the-admin-token\n');
    const config = join(dir, 'hijacked.json');
    writeFileSync(config, JSON.stringify({ dataDir, upstreams: { 'docker.io': { url: fake.registryUrl } } }));
    const owner = { pid: longshore.process.pid, host: hostname(), role: 'server', adminUrl: `https://127.0.0.1:${port}`, since: new Date().toISOString() };
    try {
      writeFileSync(paths.lock, JSON.stringify({ ...owner, adminCertificate: first.fingerprint256 }));
      await assert.rejects(gc(config), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'LS_ADMIN_SERVER_UNTRUSTED');
        assert.match(err.message, /admin token was not sent/);
        return true;
      });
      await waitFor(() => connections === 1, { what: 'the command connecting to the impostor' });

      writeFileSync(paths.lock, JSON.stringify(owner));
      await assert.rejects(gc(config), { code: 'LS_ADMIN_SERVER_UNTRUSTED' });
      assert.deepEqual(received, [], 'no request, and so no token, reached the impostor');
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
    }
  });

  it('records a renewed certificate after SIGHUP, and commands keep working', async () => {
    copyFileSync(renewed.certPath, certPath);
    copyFileSync(renewed.keyPath, keyPath);
    process.kill(longshore.process.pid, 'SIGHUP');
    await waitFor(() => lockOf(longshore.dataDir).adminCertificate === renewed.fingerprint256, { what: 'the renewed fingerprint in the lock file', timeoutMs: 30_000 });
    const { code, out } = await gc(configFile);
    assert.equal(code, 0, out);
  });
});
