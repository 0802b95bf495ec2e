// The two mirrors under test, each a child process on a free loopback port with a fresh data dir:
//   longshore     the compiled build (node dist/main.js), logLevel warn (no per-request log lines)
//   distribution  Debian's docker-registry 2.8 in proxy mode (proxy.remoteurl + username/password for
//                 the upstream's token auth), access log off, in-memory blob descriptor cache as in
//                 Debian's default config
// Both are configured with the same upstream URL (a counting proxy) and the same pull-only account.
// Readiness is `GET /v2/` answering 200: Longshore logs "listening" at info, which warn suppresses.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { freePort } from '../../test/support/e2e/ports.js';
import type { Credentials } from '../../test/support/e2e/registry-client.js';
import { ServiceProcess } from '../../test/support/e2e/service-process.js';
import { waitFor } from '../../test/support/wait.js';
import type { LongshoreBuild } from './build.js';
import { registryEnv } from './upstream.js';

export type ServerKind = 'longshore' | 'distribution';
export const SERVER_KINDS: readonly ServerKind[] = ['longshore', 'distribution'];

export interface MirrorServer {
  kind: ServerKind;
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  pid: number;
  recentLog(lines?: number): string;
  /** Longshore only: its config file and the compiled CLI, for admin commands (scenario 9). */
  configPath?: string;
  cliJs?: string;
  /** Stops the process (SIGTERM, then SIGKILL) and removes its data dir. */
  stop(): Promise<void>;
}

export interface MirrorOptions {
  upstreamUrl: string;
  credentials: Credentials;
  /** Parent of the per-server data dirs. */
  workDir: string;
  build: LongshoreBuild;
  /** Longshore only: write a V8 CPU profile (`node --cpu-prof`) into this directory on exit. */
  cpuProfileDir?: string;
  /** Longshore only: extra node options, for experiments (the bench itself never sets them). */
  nodeArgs?: string[];
}

export async function startMirror(kind: ServerKind, options: MirrorOptions): Promise<MirrorServer> {
  mkdirSync(options.workDir, { recursive: true });
  const dir = mkdtempSync(join(options.workDir, `${kind}-`));
  const host = `127.0.0.1:${await freePort()}`;
  let server: ServiceProcess;
  try {
    server = kind === 'longshore' ? await spawnLongshore(dir, host, options) : await spawnDistribution(dir, host, options);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stop = async () => {
    await server.stop(20_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      const res = await fetch(`http://${host}/v2/`);
      await res.arrayBuffer();
      return res.status === 200 ? true : undefined;
    }, { what: `${kind} to answer GET /v2/ on ${host}`, timeoutMs: 30_000, failFast: () => server.assertRunning() });
  } catch (err) {
    const output = server.recentOutput();
    await stop();
    throw new Error(`${(err as Error).message}\n--- ${kind} output ---\n${output}`);
  }
  return {
    kind,
    host,
    url: `http://${host}`,
    pid: server.pid,
    recentLog: (lines = 40) => server.recentOutput().split('\n').slice(-lines).join('\n'),
    ...(kind === 'longshore' ? { configPath: join(dir, 'config.json'), cliJs: join(dirname(options.build.mainJs), 'cli', 'main.js') } : {}),
    stop,
  };
}

function spawnLongshore(dir: string, host: string, options: MirrorOptions): Promise<ServiceProcess> {
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({
    listen: host,
    dataDir: join(dir, 'data'),
    logLevel: 'warn',
    upstreams: {
      'docker.io': { url: options.upstreamUrl, username: options.credentials.username, password: options.credentials.password },
    },
  }, null, 2));
  // LONGSHORE_* variables override the config file; the bench's config must be the only input.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LONGSHORE_')));
  const profile = options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`];
  return ServiceProcess.start({
    name: 'longshore',
    command: process.execPath,
    args: [...profile, ...(options.nodeArgs ?? []), options.build.mainJs, '--config', configPath],
    env,
  });
}

function spawnDistribution(dir: string, host: string, options: MirrorOptions): Promise<ServiceProcess> {
  const configPath = join(dir, 'config.yml');
  // JSON is YAML.
  writeFileSync(configPath, JSON.stringify({
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: {
      cache: { blobdescriptor: 'inmemory' },
      filesystem: { rootdirectory: join(dir, 'data') },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: host, secret: randomBytes(16).toString('hex') },
    proxy: { remoteurl: options.upstreamUrl, username: options.credentials.username, password: options.credentials.password },
  }, null, 2));
  return ServiceProcess.start({ name: 'distribution', command: 'docker-registry', args: ['serve', configPath], env: registryEnv() });
}
