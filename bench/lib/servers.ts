// The two mirrors under test, each a child process on a free loopback port with a fresh data dir:
//   longshore     the compiled build (node dist/main.js), logLevel warn (no per-request log lines)
//   distribution  Debian's docker-registry 2.8 in proxy mode (proxy.remoteurl + username/password for
//                 the upstream's token auth), access log off, in-memory blob descriptor cache as in
//                 Debian's default config
// Both are configured with the same upstream URL (a counting proxy) and the same pull-only account.
// Readiness is `GET /v2/` answering 200: Longshore logs "listening" at info, which warn suppresses.
// Options for single scenarios: Longshore at another log level, its output appended to a file instead
// of a pipe the bench reads (scenario 5 measures with request logs at info, and reading 20k lines/s
// in the bench process would take CPU from the server on this 2-core machine), local repository
// prefixes, and distribution as a plain registry instead of a proxy (scenario 10, pushes).
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { freePort } from '../../test/support/e2e/ports.js';
import type { Credentials } from '../../test/support/e2e/registry-client.js';
import { ServiceProcess, type ServiceOptions } from '../../test/support/e2e/service-process.js';
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
  /** Longshore only: more config keys (the probes' A/B comparisons of a setting). */
  config?: Record<string, unknown>;
  /** Longshore only: its logLevel (default warn: no per-request lines). */
  logLevel?: 'debug' | 'info' | 'warn';
  /**
   * Append the server's stdout and stderr to this file instead of a pipe the bench reads; recentLog()
   * then reads the file's end.
   */
  logFile?: string;
  /** Longshore only: local.prefixes, for pushes. */
  localPrefixes?: string[];
  /** distribution only: serve as a plain registry (pushes), not as a proxy of `upstreamUrl`. */
  plainRegistry?: boolean;
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
    recentLog: (lines = 40) => (options.logFile ? tailOf(options.logFile) : server.recentOutput()).split('\n').slice(-lines).join('\n'),
    ...(kind === 'longshore' ? { configPath: join(dir, 'config.json'), cliJs: join(dirname(options.build.mainJs), 'cli', 'main.js') } : {}),
    stop,
  };
}

function spawnLongshore(dir: string, host: string, options: MirrorOptions): Promise<ServiceProcess> {
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({
    listen: host,
    dataDir: join(dir, 'data'),
    logLevel: options.logLevel ?? 'warn',
    upstreams: {
      'docker.io': { url: options.upstreamUrl, username: options.credentials.username, password: options.credentials.password },
    },
    ...(options.localPrefixes ? { local: { prefixes: options.localPrefixes } } : {}),
    ...options.config,
  }, null, 2));
  // LONGSHORE_* variables override the config file; the bench's config must be the only input.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LONGSHORE_')));
  const profile = options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`];
  return ServiceProcess.start(intoFile({
    name: 'longshore',
    command: process.execPath,
    args: [...profile, ...(options.nodeArgs ?? []), options.build.mainJs, '--config', configPath],
    env,
  }, options.logFile));
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
    ...(options.plainRegistry ? {} : {
      proxy: { remoteurl: options.upstreamUrl, username: options.credentials.username, password: options.credentials.password },
    }),
  }, null, 2));
  return ServiceProcess.start(intoFile({ name: 'distribution', command: 'docker-registry', args: ['serve', configPath], env: registryEnv() }, options.logFile));
}

/** The same program with its output appended to `file` (through `sh -c exec`, so the PID stays the program's). */
function intoFile(service: ServiceOptions, file: string | undefined): ServiceOptions {
  if (file === undefined) return service;
  return { ...service, command: '/bin/sh', args: ['-c', 'exec "$0" "$@" >>"$BENCH_SERVER_LOG" 2>&1', service.command, ...service.args], env: { ...(service.env ?? process.env), BENCH_SERVER_LOG: file } };
}

/** The last 64 KiB of a log file. */
function tailOf(file: string): string {
  try {
    const text = readFileSync(file);
    return text.subarray(Math.max(0, text.length - 65_536)).toString('utf8');
  } catch {
    return '';
  }
}
