// podman as a Longshore client through a registries.conf mirror for docker.io, as an office would set
// it up. The registry's own location is a closed port on loopback, so a failing mirror can never send
// podman off this machine. podman keeps its images in a private root with the vfs driver.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { promisify } from 'node:util';
import { platformOf, type TestImage } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';

const exec = promisify(execFile);
const STEP_TIMEOUT = 240_000;
const TOOLS = ['podman', 'docker-registry', 'skopeo', 'openssl'] as const;

describeWithTools('podman pull through a registries.conf mirror', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let dir: string;

  before(async () => {
    upstream = teardown.add('upstream stack', await startUpstreamStack(), (s) => s.stop());
    longshore = teardown.add('longshore', await Longshore.start({ upstreamUrl: upstream.proxy.url, ...upstream.mirrorCredentials }), (l) => l.stop());
    dir = teardown.add('podman dir', mkdtempSync(join(tmpdir(), 'longshore-podman-')), async (d) => {
      // vfs leaves plain files, but podman may have mounted its run dir: unmount before removing
      await exec('umount', ['-R', join(d, 'run')]).catch(() => undefined);
      rmSync(d, { recursive: true, force: true });
    });
    writeFileSync(join(dir, 'registries.conf'), [
      'unqualified-search-registries = []',
      '[[registry]]',
      'prefix = "docker.io"',
      'location = "127.0.0.1:1"',
      'insecure = true',
      '[[registry.mirror]]',
      `location = "${longshore.host}"`,
      'insecure = true',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    writeFileSync(join(dir, 'auth.json'), '{}');
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  async function podman(...args: string[]): Promise<string> {
    const base = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    try {
      const { stdout } = await exec('podman', [...base, ...args], {
        timeout: 180_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'), REGISTRY_AUTH_FILE: join(dir, 'auth.json'), TMPDIR: dir },
      });
      return stdout;
    } catch (err) {
      const failed = err as { stderr?: string; message: string };
      assert.fail(`podman ${args.join(' ')} failed: ${failed.stderr ?? failed.message}\n--- upstream ---\n${upstream.proxy.describe()}\n--- longshore ---\n${longshore.recentLog()}`);
    }
  }

  function expectEachBlobOnce(image: TestImage): void {
    const amd64 = platformOf(image, 'amd64');
    const expected = [amd64.config, ...amd64.layers].map((b) => b.digest).sort();
    const counts = upstream.proxy.blobFetchCounts();
    assert.deepEqual(expected.map((d) => `${d} x${counts.get(d) ?? 0}`), expected.map((d) => `${d} x1`), upstream.proxy.describe());
  }

  it('pulls docker.io/library/alpine:3.19 cold through the mirror, each blob fetched upstream once', { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    await podman('pull', '--signature-policy', join(dir, 'policy.json'), 'docker.io/library/alpine:3.19');
    expectEachBlobOnce(upstream.alpine);
    const digest = (await podman('image', 'inspect', '--format', '{{.Digest}}', 'docker.io/library/alpine:3.19')).trim();
    assert.equal(digest, upstream.alpine.index.digest);
    const id = (await podman('image', 'inspect', '--format', '{{.Id}}', 'docker.io/library/alpine:3.19')).trim();
    assert.equal(`sha256:${id}`, platformOf(upstream.alpine, 'amd64').config.digest);
    assert.ok(longshore.records.some((r) => r.msg === 'request' && String(r.path).startsWith('/v2/library/alpine/manifests/')), 'the mirror served the manifests');
  });

  it('pulls again after rmi with no blob GET upstream', { timeout: STEP_TIMEOUT }, async () => {
    await podman('rmi', 'docker.io/library/alpine:3.19');
    upstream.proxy.reset();
    await podman('pull', '--signature-policy', join(dir, 'policy.json'), 'docker.io/library/alpine:3.19');
    assert.deepEqual(upstream.proxy.blobGets(), [], upstream.proxy.describe());
  });

  it('pulls the OCI image by index digest', { timeout: STEP_TIMEOUT }, async () => {
    const image = upstream.ocitest;
    const reference = `docker.io/${image.repository}@${image.index.digest}`;
    await podman('pull', '--signature-policy', join(dir, 'policy.json'), reference);
    expectEachBlobOnce(image);
    assert.equal((await podman('image', 'inspect', '--format', '{{.Digest}}', reference)).trim(), image.index.digest);
  });
});
