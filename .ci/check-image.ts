// Builds the Dockerfile and uses the image as a mirror, with real clients:
//   node --import tsx .ci/check-image.ts        (as root; about 10 minutes the first time)
//
// This machine reaches Debian's packages and the npm registry but no container registry, so the base
// image the Dockerfile names, node:20-bookworm-slim, is replaced by a stand-in made the same way:
// Debian bookworm (debootstrap, minbase) with this machine's Node 20 under /usr/local, and a `node`
// user with uid 1000. It is tagged node:20-bookworm-slim in a private dockerd, so the Dockerfile is
// built as written. The stand-in also sets npm_config_nodedir, because node-gyp would otherwise
// download Node's headers from nodejs.org to compile better-sqlite3 (online, the official image gets
// a prebuilt binary instead), and trusts this machine's CA bundle (NODE_EXTRA_CA_CERTS, npm's cafile),
// because this machine reaches the npm registry through a TLS-intercepting egress proxy. Neither is
// a change to the Dockerfile. Its root file system is cached in /var/cache/longshore-check-image.
//
// Then, against the e2e rig's upstream (docker-registry with token auth):
// - the container runs as uid 1000 with its data in the /data volume, listening on the host network;
// - dockerd, with the container as its registry mirror, pulls alpine through it;
// - skopeo copies the image into a local repository of the container and reads it back;
// - Docker reports it healthy by the image's HEALTHCHECK, and `docker stop` ends it with exit code 0.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Dockerd } from '../test/support/e2e/dockerd.js';
import { REPO_ROOT } from '../test/support/e2e/longshore.js';
import { freePort } from '../test/support/e2e/ports.js';
import { Skopeo } from '../test/support/e2e/skopeo.js';
import { Teardown } from '../test/support/e2e/teardown.js';
import { startUpstreamStack } from '../test/support/e2e/upstream-stack.js';
import { waitFor } from '../test/support/wait.js';

const run = promisify(execFile);
const CACHE = '/var/cache/longshore-check-image';
const BASE_TAR = join(CACHE, 'bookworm-node20-v3.tar');
/** This machine's CA bundle, where the stand-in's Node and npm find it. */
const HOST_CA = '/etc/ssl/certs/ca-certificates.crt';
const STAND_IN_CA = '/usr/local/share/longshore-check/host-ca.crt';
const BASE_TAG = 'node:20-bookworm-slim';
const IMAGE = 'longshore:check';

async function sh(command: string, args: readonly string[], timeoutMs = 900_000): Promise<string> {
  const { stdout } = await run(command, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** The stand-in base's root file system as a tarball, made once. */
async function standInBase(): Promise<string> {
  if (existsSync(BASE_TAR)) return BASE_TAR;
  mkdirSync(CACHE, { recursive: true });
  if (!existsSync('/usr/sbin/debootstrap')) {
    await sh('apt-get', ['update']);
    await sh('apt-get', ['install', '-y', '--no-install-recommends', 'debootstrap']);
  }
  const root = mkdtempSync(join(CACHE, 'rootfs-'));
  chmodSync(root, 0o755); // the image's '/': mkdtemp makes it 0700, which only root could traverse
  try {
    console.log('debootstrap bookworm (minbase) …');
    await sh('debootstrap', ['--variant=minbase', 'bookworm', root, 'http://deb.debian.org/debian']);
    const node = process.execPath;
    const npm = join(dirname(node), '..', 'lib', 'node_modules', 'npm');
    const headers = join(dirname(node), '..', 'include', 'node');
    cpSync(node, join(root, 'usr/local/bin/node'));
    cpSync(npm, join(root, 'usr/local/lib/node_modules/npm'), { recursive: true });
    cpSync(headers, join(root, 'usr/local/include/node'), { recursive: true });
    if (existsSync(HOST_CA)) cpSync(HOST_CA, join(root, STAND_IN_CA));
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
    await sh('chroot', [root, 'sh', '-c', 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node']);
    await sh('tar', ['-C', root, '-cf', `${BASE_TAR}.part`, '.']);
    await sh('mv', [`${BASE_TAR}.part`, BASE_TAR]);
    return BASE_TAR;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const teardown = new Teardown();
try {
  const baseTar = await standInBase();
  const upstream = teardown.add('upstream stack', await startUpstreamStack(), (s) => s.stop());
  const port = await freePort();
  const mirror = `127.0.0.1:${port}`;
  const dockerd = teardown.add('dockerd', await Dockerd.start({ registryMirrors: [`http://${mirror}`], insecureRegistries: [mirror] }), (d) => d.stop());

  await dockerd.dockerOk(['import',
    '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    '--change', 'ENV npm_config_nodedir=/usr/local',
    ...(existsSync(HOST_CA) ? ['--change', `ENV NODE_EXTRA_CA_CERTS=${STAND_IN_CA}`, '--change', `ENV npm_config_cafile=${STAND_IN_CA}`] : []),
    '--change', 'CMD ["node"]',
    baseTar, BASE_TAG], 600_000);
  console.log('docker build …');
  const started = Date.now();
  const build = await dockerd.docker(['build', '--network', 'host', '-t', IMAGE, REPO_ROOT], 1_800_000);
  if (build.code !== 0) throw new Error(`docker build failed (${build.code}):\n${build.stdout.slice(-6000)}\n${build.stderr.slice(-2000)}`);
  console.log(`built ${IMAGE} in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const work = teardown.add('work dir', mkdtempSync(join(tmpdir(), 'longshore-image-')), async (d) => rmSync(d, { recursive: true, force: true }));
  const config = join(work, 'mirror.config.json');
  writeFileSync(config, JSON.stringify({
    defaultUpstream: 'docker.io',
    local: { prefixes: ['team/'] },
    upstreams: { 'docker.io': { url: upstream.proxy.url, ...upstream.mirrorCredentials } },
  }));
  const id = (await dockerd.dockerOk(['run', '-d', '--network', 'host', '-e', `LONGSHORE_LISTEN=${mirror}`,
    '-v', 'longshore-data:/data', '-v', `${config}:/app/mirror.config.json:ro`, IMAGE])).trim();
  teardown.add('container', id, async (c) => { await dockerd.docker(['rm', '-f', c]); });
  await waitFor(async () => ((await fetch(`http://${mirror}/v2/`).catch(() => undefined))?.status === 200 ? true : undefined),
    { what: 'the container to answer /v2/', timeoutMs: 60_000 });

  const user = (await dockerd.dockerOk(['exec', id, 'id', '-u'])).trim();
  assert.equal(user, '1000', 'the container runs as the node user');

  const alpine = upstream.alpine;
  await dockerd.dockerOk(['pull', `${alpine.repository}:${alpine.tag}`]);
  const pulled = await dockerd.dockerOk(['image', 'inspect', '--format', '{{index .RepoDigests 0}}', `${alpine.repository}:${alpine.tag}`]);
  assert.ok(pulled.trim().endsWith(`@${alpine.index.digest}`), `dockerd pulled ${pulled.trim()}, expected ${alpine.index.digest}`);
  const fetched = upstream.proxy.blobFetchCounts();
  assert.ok(fetched.size > 0, 'the layers came from the upstream, through the container');

  const stored = await dockerd.dockerOk(['exec', id, 'find', '/data', '-type', 'f', '-path', '*sha256*']);
  assert.ok(stored.trim().split('\n').length >= 2, `the cache is in the /data volume:\n${stored}`);

  const skopeo = new Skopeo(work);
  for (const args of [
    ['copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${mirror}/${alpine.repository}:${alpine.tag}`, `docker://${mirror}/team/alpine:copy`],
    ['copy', '--all', '--src-tls-verify=false', `docker://${mirror}/team/alpine:copy`, `dir:${join(work, 'readback')}`],
  ]) {
    const result = await skopeo.run(args);
    assert.equal(result.code, 0, `skopeo ${args.join(' ')}: ${result.stderr.trim()}`);
  }
  assert.ok(readFileSync(join(work, 'readback', 'manifest.json')).equals(alpine.index.bytes), 'the pushed index reads back byte for byte');

  // The HEALTHCHECK as the image declares it, then Docker's own verdict (its first check comes after
  // the 30 s interval).
  const health = JSON.parse(await dockerd.dockerOk(['inspect', '--format', '{{json .Config.Healthcheck.Test}}', id])) as string[];
  assert.equal(health[0], 'CMD', `exec-form HEALTHCHECK: ${JSON.stringify(health)}`);
  await dockerd.dockerOk(['exec', id, ...health.slice(1)]);
  await waitFor(async () => ((await dockerd.dockerOk(['inspect', '--format', '{{.State.Health.Status}}', id])).trim() === 'healthy' ? true : undefined),
    { what: 'Docker to report the container healthy', timeoutMs: 90_000 });

  await dockerd.dockerOk(['stop', '--time', '30', id], 60_000);
  const exit = (await dockerd.dockerOk(['inspect', '--format', '{{.State.ExitCode}}', id])).trim();
  assert.equal(exit, '0', 'SIGTERM ends the mirror cleanly');
  console.log('check-image: the image built, ran as uid 1000, mirrored a dockerd pull, took a skopeo push, passed its health check and stopped with exit code 0');
} finally {
  await teardown.runAll();
}
