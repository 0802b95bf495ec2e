// The "truth" upstream: distribution 2.8 (Debian's docker-registry) on a free loopback port,
// filesystem storage in a temp dir, token auth against the rig's token server. It never touches
// /etc/docker/registry or the system service: its config file and storage are private.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { ServiceProcess } from './service-process.js';
import type { TokenServer } from './token-server.js';
import { waitFor } from '../wait.js';

export interface UpstreamRegistry {
  /** `127.0.0.1:PORT`, as a Docker reference's registry host. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  process: ServiceProcess;
  stop(): Promise<void>;
}

export async function startUpstreamRegistry(tokenServer: TokenServer): Promise<UpstreamRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'longshore-upstream-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const configPath = join(dir, 'config.yml');
  // JSON is YAML, which spares a YAML writer.
  writeFileSync(configPath, JSON.stringify({
    version: 0.1,
    log: { level: 'info', accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: join(dir, 'storage') },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: host, secret: randomBytes(16).toString('hex') },
    auth: {
      token: {
        realm: tokenServer.realm,
        service: tokenServer.service,
        issuer: tokenServer.issuer,
        rootcertbundle: tokenServer.certPath,
      },
    },
  }, null, 2));

  // REGISTRY_* variables would override the file (distribution's config loader reads them).
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('REGISTRY_')));
  const registry = await ServiceProcess.start({
    name: 'docker-registry',
    command: 'docker-registry',
    args: ['serve', configPath],
    env,
  });
  const stop = async (): Promise<void> => {
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      const res = await fetch(`http://${host}/v2/`);
      await res.arrayBuffer();
      return res.status === 401 ? true : undefined;
    }, { what: `docker-registry to answer GET /v2/ with 401 on ${host}`, timeoutMs: 30_000, failFast: () => registry.assertRunning() });
  } catch (err) {
    const output = registry.recentOutput();
    await stop();
    throw new Error(`${(err as Error).message}\n${output}`);
  }
  return { host, url: `http://${host}`, process: registry, stop };
}
