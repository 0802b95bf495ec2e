// Issue 6: TLS with a private CA, with real clients, set up as README's "TLS" section says. Longshore
// serves HTTPS only, with a certificate for IP 127.0.0.1 from a CA made by openssl for this test.
//   skopeo:     --cert-dir / --src-cert-dir holding ca.crt; without it the handshake must fail
//   containerd: hosts.toml `ca = "…/ca.crt"` on the mirror's host entry
//   dockerd:    /etc/docker/certs.d/127.0.0.1:PORT/ca.crt. Note: dockerd always treats 127.0.0.0/8 as
//               an insecure registry and then skips certificate verification, so for dockerd this test
//               shows HTTPS working end to end, not that it checked the chain (skopeo and containerd do).
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { createTestCa, issueServerCert } from '../support/test-ca.js';
import { Containerd, SNAPSHOTTER, writeHostsDir } from '../support/e2e/containerd.js';
import { Dockerd } from '../support/e2e/dockerd.js';
import { platformOf } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startLongshoreOverStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const STEP_TIMEOUT = 300_000;
const TOOLS = ['dockerd', 'docker', 'containerd', 'ctr', 'docker-registry', 'skopeo', 'openssl'] as const;
const DOCKER_CERTS = '/etc/docker/certs.d';

describeWithTools('clients trusting a private CA reach Longshore over HTTPS', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let dir: string;
  /** A directory holding only ca.crt, as skopeo's --cert-dir wants it. */
  let certDir: string;
  let caPath: string;
  let skopeo: Skopeo;

  before(async () => {
    dir = teardown.tempDir('tls dir', 'longshore-tls-e2e-');
    const ca = createTestCa(dir);
    const server = issueServerCert(ca, dir, 'longshore');
    certDir = join(dir, 'certs');
    mkdirSync(certDir);
    caPath = join(certDir, 'ca.crt');
    copyFileSync(ca.certPath, caPath);
    ({ upstream, longshore } = await startLongshoreOverStack(teardown, {
      config: { tls: { cert: server.certPath, key: server.keyPath } },
    }));
    skopeo = new Skopeo(dir);
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnose = (mark = 0) => diagnostics({ longshore, since: mark, lines: 30 });

  it('skopeo without the CA fails the handshake', { timeout: STEP_TIMEOUT }, async () => {
    const result = await skopeo.run(['inspect', '--raw', `docker://${longshore.host}/library/alpine:3.19`]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /x509|certificate/i);
  });

  it('skopeo with --cert-dir inspects and copies over HTTPS', { timeout: STEP_TIMEOUT }, async () => {
    const mark = await longshore.settledMark();
    const ref = `docker://${longshore.host}/${upstream.alpine.repository}:${upstream.alpine.tag}`;
    const raw = await skopeo.run(['inspect', '--raw', '--cert-dir', certDir, ref]);
    assert.equal(raw.code, 0, `${raw.stderr}\n${diagnose(mark)}`);
    assert.deepEqual(raw.stdout, upstream.alpine.index.bytes);
    const copy = await skopeo.run(['copy', '--all', '--preserve-digests', '--src-cert-dir', certDir, ref, `dir:${join(dir, 'copy')}`]);
    assert.equal(copy.code, 0, `${copy.stderr}\n${diagnose(mark)}`);
  });

  it('containerd with hosts.toml `ca` pulls docker.io/library/ocitest through the HTTPS mirror', { timeout: STEP_TIMEOUT }, async () => {
    const containerd = teardown.add('containerd', await Containerd.start(), (c) => c.stop());
    const hostsDir = writeHostsDir(join(dir, 'hosts'), `https://${longshore.host}`, 'docker.io', [`ca = ${JSON.stringify(caPath)}`]);
    const mark = await longshore.settledMark();
    const ref = `docker.io/${upstream.ocitest.repository}:${upstream.ocitest.tag}`;
    const result = await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', SNAPSHOTTER, '--platform', 'linux/amd64', ref]);
    assert.equal(result.code, 0, `${result.stderr}\n${diagnose(mark)}`);
    const served = (await longshore.requestsSince(mark));
    assert.ok(served.some((r) => r.path.startsWith(`/v2/${upstream.ocitest.repository}/manifests/`) && r.path.includes('ns=docker.io') && r.status === 200), diagnose(mark));
  });

  it('dockerd with /etc/docker/certs.d/127.0.0.1:PORT/ca.crt pulls through the HTTPS mirror', { timeout: STEP_TIMEOUT }, async () => {
    const createdRoot = !existsSync(DOCKER_CERTS);
    const hostDir = join(DOCKER_CERTS, longshore.host);
    assert.ok(!existsSync(hostDir), `${hostDir} exists already; not touching it`);
    teardown.add('docker certs dir', hostDir, async (d) => {
      rmSync(d, { recursive: true, force: true });
      if (createdRoot) rmSync(DOCKER_CERTS, { recursive: true, force: true });
    });
    mkdirSync(hostDir, { recursive: true });
    copyFileSync(caPath, join(hostDir, 'ca.crt'));
    const dockerd = teardown.add('dockerd', await Dockerd.start({ registryMirrors: [`https://${longshore.host}`] }), (d) => d.stop());
    const mark = await longshore.settledMark();
    const pulled = await dockerd.docker(['pull', `${upstream.alpine.repository.replace(/^library\//, '')}:${upstream.alpine.tag}`]);
    assert.equal(pulled.code, 0, `${pulled.stderr}\n${diagnose(mark)}`);
    const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', `alpine:${upstream.alpine.tag}`]);
    assert.equal(id.stdout.trim(), platformOf(upstream.alpine, 'amd64').config.digest);
    // Longshore has no plain-HTTP listener here: what it answered, it answered over TLS.
    assert.ok((await longshore.requestsSince(mark)).some((r) => r.path.startsWith('/v2/library/alpine/blobs/') && r.status === 200), diagnose(mark));
  });
});
