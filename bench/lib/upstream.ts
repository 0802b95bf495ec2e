// The upstream side: the e2e rig's token server, Debian's docker-registry (distribution 2.8) with
// token auth, and the rig's counting proxy in front of it. Unlike the rig's upstream, the registry's
// storage lives in the bench cache and survives runs, so the 1 GiB image is pushed once, not per run.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CountingProxy } from '../../test/support/e2e/counting-proxy.js';
import { freePort } from '../../test/support/e2e/ports.js';
import { registryRequest, type Credentials } from '../../test/support/e2e/registry-client.js';
import { ServiceProcess } from '../../test/support/e2e/service-process.js';
import { TokenServer } from '../../test/support/e2e/token-server.js';
import { waitFor } from '../../test/support/wait.js';
import type { BenchImage } from './images.js';
import { ThrottleProxy } from './throttle-proxy.js';

export interface BenchUpstream {
  tokens: TokenServer;
  /** The registry itself, `http://127.0.0.1:PORT`. */
  registryUrl: string;
  registryHost: string;
  registry: ServiceProcess;
  /** Counting proxy in front of the registry: the URL mirrors are configured with. */
  proxy: CountingProxy;
  mirrorCredentials: Credentials;
  publisherCredentials: Credentials;
  stop(): Promise<void>;
}

/** A counting proxy in front of a throttled link to the registry (scenario 7, and 1–2 with --throttle). */
export interface ThrottledLink {
  throttle: ThrottleProxy;
  proxy: CountingProxy;
  stop(): Promise<void>;
}

const MIRROR = { username: 'mirror', password: 'mirror-secret' };
const PUBLISHER = { username: 'publisher', password: 'publisher-secret' };
const run = promisify(execFile);

export async function startUpstream(storageDir: string): Promise<BenchUpstream> {
  const tokens = await TokenServer.start({
    users: {
      [MIRROR.username]: { password: MIRROR.password, actions: ['pull'] },
      [PUBLISHER.username]: { password: PUBLISHER.password, actions: ['pull', 'push'] },
    },
  });
  const configDir = mkdtempSync(join(tmpdir(), 'longshore-bench-upstream-'));
  let registry: ServiceProcess | undefined;
  try {
    mkdirSync(storageDir, { recursive: true });
    const host = `127.0.0.1:${await freePort()}`;
    const configPath = join(configDir, 'config.yml');
    writeFileSync(configPath, JSON.stringify({
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: {
        cache: { blobdescriptor: 'inmemory' },
        filesystem: { rootdirectory: storageDir },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: host, secret: randomBytes(16).toString('hex') },
      auth: { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootcertbundle: tokens.certPath } },
    }, null, 2));
    registry = await ServiceProcess.start({ name: 'upstream docker-registry', command: 'docker-registry', args: ['serve', configPath], env: registryEnv() });
    const started = registry;
    await waitFor(async () => {
      const res = await fetch(`http://${host}/v2/`);
      await res.arrayBuffer();
      return res.status === 401 ? true : undefined;
    }, { what: `upstream docker-registry on ${host}`, timeoutMs: 30_000, failFast: () => started.assertRunning() });
    const proxy = await CountingProxy.start(`http://${host}`);
    return {
      tokens, registryUrl: `http://${host}`, registryHost: host, registry: started, proxy,
      mirrorCredentials: MIRROR, publisherCredentials: PUBLISHER,
      async stop() {
        await proxy.stop();
        await started.stop();
        await tokens.stop();
        rmSync(configDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    const output = registry?.recentOutput() ?? '';
    await registry?.stop();
    await tokens.stop();
    rmSync(configDir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${output}`);
  }
}

/** REGISTRY_* variables would override the config file (distribution's loader reads them). */
export function registryEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_')));
}

export async function startThrottledLink(upstream: BenchUpstream, bytesPerSecond: number): Promise<ThrottledLink> {
  const throttle = await ThrottleProxy.start(upstream.registryHost, bytesPerSecond);
  const proxy = await CountingProxy.start(throttle.url);
  return {
    throttle,
    proxy,
    async stop() {
      await proxy.stop();
      await throttle.stop();
    },
  };
}

/** Pushes each image the upstream does not already serve under its tag with the expected digest. */
export async function publishMissing(upstream: BenchUpstream, images: readonly BenchImage[]): Promise<void> {
  for (const image of images) {
    const url = `${upstream.registryUrl}/v2/${image.repository}/manifests/${image.tag}`;
    const res = await registryRequest(url, { method: 'HEAD', accept: [image.manifest.mediaType], credentials: upstream.publisherCredentials });
    if (res.status === 200 && res.headers.get('docker-content-digest') === image.manifest.digest) continue;
    const started = Date.now();
    const workDir = mkdtempSync(join(tmpdir(), 'longshore-bench-push-'));
    try {
      await run('skopeo', [
        '--insecure-policy', 'copy', ...(image.multiArch ? ['--all'] : []), '--preserve-digests', '--quiet',
        '--dest-tls-verify=false',
        '--dest-creds', `${upstream.publisherCredentials.username}:${upstream.publisherCredentials.password}`,
        `dir:${image.dir}`, `docker://${upstream.registryHost}/${image.repository}:${image.tag}`,
      ], { env: { ...process.env, TMPDIR: workDir }, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      throw new Error(`skopeo could not push ${image.repository}:${image.tag}: ${(err as Error).message}\n${(err as { stderr?: string }).stderr ?? ''}`);
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
    console.log(`  pushed ${image.repository}:${image.tag} to the upstream in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  upstream.proxy.reset();
  upstream.tokens.reset();
}
