// The Docker Registry workflow, literally as a `registry:2` guide teaches it, against Longshore started
// from mirror.config.json as shipped (only the upstream URL, the port and the data dir changed): build
// with the classic builder and no network, tag, push, remove, pull, run. The image is built FROM a
// base made of Debian's static busybox (`docker import`), so nothing is fetched from anywhere. The same
// dockerd uses Longshore as its registry-mirror, and its `docker pull alpine` keeps getting Docker
// Hub's alpine after someone pushed an "alpine" of their own. Then the login variant with client auth.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { Containerd, SNAPSHOTTER } from '../support/e2e/containerd.js';
import { Dockerd } from '../support/e2e/dockerd.js';
import { Longshore } from '../support/e2e/longshore.js';
import { registryRequest } from '../support/e2e/registry-client.js';
import { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools, findOnPath } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const exec = promisify(execFile);
const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json',
];
const STEP_TIMEOUT = 240_000;
const MESSAGE = 'Olá da minha-aplicacao, construída sem rede';
const ALICE_PASSWORD = 'alice-workflow-pw';

// The classic builder, as the measurement used (Debian's docker.io may lack buildx anyway).
process.env.DOCKER_BUILDKIT = '0';

describeWithTools('the Docker Registry workflow against the shipped configuration', ['dockerd', 'containerd', 'ctr', 'docker', 'docker-registry', 'skopeo', 'podman', 'openssl', 'busybox'], () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let secured: Longshore;
  let dockerd: Dockerd;
  let dir: string;
  /** localhost:<port> of the open instance and of the one with client auth, as users write them. */
  let registry: string;
  let securedRegistry: string;

  before(async () => {
    dir = teardown.tempDir('work dir', 'longshore-workflow-');
    upstream = teardown.add('upstream stack', await startUpstreamStack(), (s) => s.stop());
    // Docker Hub serves anonymous pulls; the shipped config has no upstream credentials.
    upstream.tokens.anonymousPull = true;
    longshore = teardown.add('longshore', await Longshore.start({ upstreamUrl: upstream.proxy.url, username: '', password: '', shippedConfig: true }), (l) => l.stop());
    secured = teardown.add('longshore with auth', await Longshore.start({
      upstreamUrl: upstream.proxy.url, username: '', password: '', shippedConfig: true,
      config: {
        auth: {
          enabled: true,
          users: [{ username: 'alice', passwordHash: bcrypt.hashSync(ALICE_PASSWORD, 4) }],
          rules: [
            { users: ['anonymous'], repositories: ['docker.io/*'], actions: ['pull'] },
            { users: ['alice'], repositories: ['*'], actions: ['pull', 'push'] },
          ],
        },
      },
    }), (l) => l.stop());
    registry = `localhost:${longshore.port}`;
    securedRegistry = `localhost:${secured.port}`;
    dockerd = teardown.add('dockerd', await Dockerd.start({
      registryMirrors: [longshore.url],
      insecureRegistries: [registry, securedRegistry],
    }), (d) => d.stop());

    // A base image of Debian's static busybox, imported: no registry involved.
    const rootfs = join(dir, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    copyFileSync(findOnPath('busybox')!, join(rootfs, 'bin', 'busybox'));
    for (const applet of ['sh', 'cat', 'echo']) symlinkSync('busybox', join(rootfs, 'bin', applet));
    await exec('tar', ['-C', rootfs, '-cf', join(dir, 'rootfs.tar'), '.']);
    await dockerd.dockerOk(['import', join(dir, 'rootfs.tar'), 'busybox-base:1']);
    const context = join(dir, 'context');
    mkdirSync(context);
    writeFileSync(join(context, 'Dockerfile'), `FROM busybox-base:1\nRUN echo '${MESSAGE}' > /message\nCMD ["cat", "/message"]\n`);
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnose = (server: Longshore = longshore) => diagnostics({ longshore: server, since: 0, lines: 30 }, { process: dockerd.process, label: 'dockerd' });

  async function docker(...args: string[]): Promise<string> {
    const result = await dockerd.docker(args);
    assert.equal(result.code, 0, `docker ${args.join(' ')} failed: ${result.stderr.trim()}\n${diagnose(args.some((a) => a.includes(securedRegistry)) ? secured : longshore)}`);
    return result.stdout;
  }

  /** Removes every tag of the image, so that the next pull must fetch it. */
  async function removeAll(...refs: string[]): Promise<void> {
    await docker('rmi', ...refs);
  }

  describe('with the default configuration', () => {
    it('builds, tags, pushes, removes, pulls and runs minha-aplicacao, as on registry:2', { timeout: STEP_TIMEOUT }, async () => {
      await docker('build', '--network', 'none', '-t', 'minha-aplicacao', join(dir, 'context'));
      await docker('tag', 'minha-aplicacao', `${registry}/minha-aplicacao:latest`);
      await docker('push', `${registry}/minha-aplicacao:latest`);
      await removeAll(`${registry}/minha-aplicacao:latest`, 'minha-aplicacao');
      const mark = await longshore.settledMark();
      await docker('pull', `${registry}/minha-aplicacao:latest`);
      const pulled = (await longshore.requestsSince(mark)).filter((r) => r.method === 'GET' && r.status === 200);
      assert.ok(pulled.some((r) => r.path.startsWith('/v2/minha-aplicacao/blobs/')), `the layer came from Longshore\n${diagnose()}`);
      assert.equal((await docker('run', '--rm', '--network', 'none', `${registry}/minha-aplicacao:latest`)).trim(), MESSAGE);
      assert.equal(upstream.proxy.describe().includes('minha-aplicacao'), false, 'the upstream was never asked for it');
    });

    it('does the same with a two-part name', { timeout: STEP_TIMEOUT }, async () => {
      await docker('tag', `${registry}/minha-aplicacao:latest`, `${registry}/equipe/app:1.0`);
      await docker('push', `${registry}/equipe/app:1.0`);
      await removeAll(`${registry}/equipe/app:1.0`, `${registry}/minha-aplicacao:latest`);
      await docker('pull', `${registry}/equipe/app:1.0`);
      assert.equal((await docker('run', '--rm', '--network', 'none', `${registry}/equipe/app:1.0`)).trim(), MESSAGE);
    });

    it('copies with skopeo into a new repository, which the catalog then lists with the others', { timeout: STEP_TIMEOUT }, async () => {
      const skopeo = new Skopeo(mkdtempSync(join(dir, 'skopeo-')));
      const copy = await skopeo.run(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${registry}/equipe/app:1.0`, `docker://${registry}/skopeo/app:1.0`]);
      assert.equal(copy.code, 0, `${copy.stderr}\n${diagnose()}`);
      const catalog = await registryRequest(`${longshore.url}/v2/_catalog`);
      assert.deepEqual(JSON.parse(catalog.body.toString()).repositories, ['equipe/app', 'minha-aplicacao', 'skopeo/app']);
    });

    it('lets podman push and ctr push create repositories too', { timeout: STEP_TIMEOUT }, async () => {
      const podmanDir = mkdtempSync(join(dir, 'podman-'));
      teardown.add('podman run dir', podmanDir, async (d) => {
        await exec('umount', ['-R', join(d, 'run')]).catch(() => undefined);
      });
      writeFileSync(join(podmanDir, 'registries.conf'), 'unqualified-search-registries = []\n');
      writeFileSync(join(podmanDir, 'auth.json'), '{}');
      writeFileSync(join(podmanDir, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
      const podman = async (...args: string[]) => {
        const base = ['--root', join(podmanDir, 'root'), '--runroot', join(podmanDir, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
        const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: join(podmanDir, 'registries.conf'), REGISTRY_AUTH_FILE: join(podmanDir, 'auth.json'), TMPDIR: podmanDir };
        await exec('podman', [...base, ...args], { timeout: 180_000, maxBuffer: 16 * 1024 * 1024, env }).catch((err: { stderr?: string; message: string }) => {
          assert.fail(`podman ${args.join(' ')} failed: ${err.stderr ?? err.message}\n${diagnose()}`);
        });
      };
      const policy = ['--signature-policy', join(podmanDir, 'policy.json'), '--tls-verify=false'];
      await podman('pull', ...policy, `${registry}/minha-aplicacao:latest`);
      await podman('tag', `${registry}/minha-aplicacao:latest`, `${registry}/podman/app:1.0`);
      await podman('push', ...policy, `${registry}/podman/app:1.0`);

      const containerd = teardown.add('containerd', await Containerd.start(), (c) => c.stop());
      const ctr = async (...args: string[]) => {
        const result = await containerd.ctr(args);
        assert.equal(result.code, 0, `ctr ${args.join(' ')} failed: ${result.stderr}\n${diagnose()}`);
      };
      await ctr('images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, `${registry}/minha-aplicacao:latest`);
      await ctr('images', 'tag', `${registry}/minha-aplicacao:latest`, `${registry}/ctr/app:1.0`);
      await ctr('images', 'push', '--plain-http', `${registry}/ctr/app:1.0`);

      for (const name of ['podman/app', 'ctr/app']) {
        const reply = await registryRequest(`${longshore.url}/v2/${name}/manifests/1.0`, { accept: MANIFEST_TYPES });
        assert.equal(reply.status, 200, `${name}\n${diagnose()}`);
      }
    });

    it('keeps serving Docker Hub\'s alpine to registry-mirrors clients after someone pushes an "alpine"', { timeout: STEP_TIMEOUT }, async () => {
      await docker('tag', `${registry}/equipe/app:1.0`, `${registry}/alpine:3.19`);
      await docker('push', `${registry}/alpine:3.19`);
      // dockerd asks its mirror for library/alpine
      await docker('pull', 'alpine:3.19');
      const repoDigests = JSON.parse(await docker('image', 'inspect', '--format', '{{json .RepoDigests}}', 'alpine:3.19')) as string[];
      assert.ok(repoDigests.includes(`alpine@${upstream.alpine.index.digest}`), `${JSON.stringify(repoDigests)} should name the upstream's ${upstream.alpine.index.digest}\n${diagnose()}`);
      // documented: the name as written on this registry is the pushed one
      const mine = await registryRequest(`${longshore.url}/v2/alpine/manifests/3.19`, { accept: MANIFEST_TYPES });
      const theirs = await registryRequest(`${longshore.url}/v2/library/alpine/manifests/3.19`, { accept: MANIFEST_TYPES });
      assert.equal(theirs.headers.get('docker-content-digest'), upstream.alpine.index.digest);
      assert.notEqual(mine.headers.get('docker-content-digest'), upstream.alpine.index.digest);
    });

    it('refuses a push under library/ with a message that names the setting', { timeout: STEP_TIMEOUT }, async () => {
      await docker('tag', `${registry}/equipe/app:1.0`, `${registry}/library/minha-aplicacao:1`);
      const result = await dockerd.docker(['push', `${registry}/library/minha-aplicacao:1`]);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /library\/minha-aplicacao is a read-only cache of docker\.io; push to a new name such as "minha-aplicacao", or add "library\/minha-aplicacao" to local\.prefixes/);
    });
  });

  describe('with client auth on', () => {
    it('logs in, pushes, pulls and runs; after logout the pull is refused', { timeout: STEP_TIMEOUT }, async () => {
      const image = `${securedRegistry}/minha-aplicacao:latest`;
      await docker('tag', `${registry}/equipe/app:1.0`, image);
      const refused = await dockerd.docker(['push', image]);
      assert.notEqual(refused.code, 0, 'an anonymous client may not create a repository');
      await docker('login', securedRegistry, '-u', 'alice', '-p', ALICE_PASSWORD);
      await docker('push', image);
      await removeAll(image);
      await docker('pull', image);
      assert.equal((await docker('run', '--rm', '--network', 'none', image)).trim(), MESSAGE);
      await docker('logout', securedRegistry);
      await removeAll(image);
      const pull = await dockerd.docker(['pull', image]);
      assert.notEqual(pull.code, 0);
      assert.match(pull.stderr, /pull access denied for localhost:\d+\/minha-aplicacao|may require 'docker login'|unauthorized|denied/i, pull.stderr);
    });
  });
});
