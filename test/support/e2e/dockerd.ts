// A private dockerd (vfs storage, no bridge, no iptables) with its own data root, exec root,
// socket, pid file and daemon.json, all in one temp dir, so it neither sees nor disturbs a system
// Docker. It starts its own containerd child, which is stopped through that child's pid file.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTextCommand, type TextCommandResult } from './command.js';
import { unmountUnder } from './mounts.js';
import { startDaemon, type ServiceProcess } from './service-process.js';
import { waitFor } from '../wait.js';

export interface DockerdOptions {
  /**
   * A registry mirror on plain HTTP, e.g. a Longshore: `--registry-mirror` its URL and
   * `--insecure-registry` its host, before any `registryMirrors` and `insecureRegistries`.
   */
  mirror?: { url: string; host: string };
  /** `--registry-mirror` URLs, e.g. `http://127.0.0.1:5000`. */
  registryMirrors?: readonly string[];
  /** `--insecure-registry` hosts, e.g. `127.0.0.1:5000`. */
  insecureRegistries?: readonly string[];
  /** dockerd `--log-level`. Default info. */
  logLevel?: 'debug' | 'info' | 'warn';
}

export type DockerResult = TextCommandResult;

export class Dockerd {
  private constructor(private readonly dir: string, readonly socket: string, readonly process: ServiceProcess) {}

  static async start(options: DockerdOptions = {}): Promise<Dockerd> {
    // Short path: containerd's sockets live under the exec root and unix socket paths are limited to 108 bytes.
    const dir = mkdtempSync('/tmp/lsdk-');
    const socket = join(dir, 'docker.sock');
    const configFile = join(dir, 'daemon.json');
    writeFileSync(configFile, '{}\n');
    mkdirSync(join(dir, 'client'));
    const args = [
      `--config-file=${configFile}`,
      '--storage-driver=vfs',
      '--iptables=false',
      '--bridge=none',
      `--data-root=${join(dir, 'data')}`,
      `--exec-root=${join(dir, 'exec')}`,
      `--pidfile=${join(dir, 'dockerd.pid')}`,
      `--log-level=${options.logLevel ?? 'info'}`,
      '-H', `unix://${socket}`,
      ...(options.mirror === undefined ? [] : ['--registry-mirror', options.mirror.url, '--insecure-registry', options.mirror.host]),
      ...(options.registryMirrors ?? []).flatMap((url) => ['--registry-mirror', url]),
      ...(options.insecureRegistries ?? []).flatMap((host) => ['--insecure-registry', host]),
    ];
    return startDaemon(dir, { name: 'dockerd', command: 'dockerd', args, keepLines: 400 }, (daemon) => new Dockerd(dir, socket, daemon), {
      what: 'dockerd to answer `docker info`',
      probe: async (d) => (await d.docker(['info'])).code === 0,
    });
  }

  /** Runs the docker CLI against this daemon; never rejects on a non-zero exit. */
  docker(args: readonly string[], timeoutMs = 180_000): Promise<DockerResult> {
    return runTextCommand('docker', args, {
      leading: ['-H', `unix://${this.socket}`],
      timeoutMs,
      // A private client config: `docker login` must not write to the user's ~/.docker.
      env: { ...process.env, DOCKER_CONFIG: join(this.dir, 'client'), DOCKER_HOST: undefined, DOCKER_CONTEXT: undefined },
    });
  }

  /** Like docker(), but throws with the daemon's recent log unless the command succeeds. */
  async dockerOk(args: readonly string[], timeoutMs?: number): Promise<string> {
    const result = await this.docker(args, timeoutMs);
    if (result.code !== 0) {
      throw new Error(`docker ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}\n` +
        `--- dockerd log ---\n${this.process.recentOutput().split('\n').slice(-40).join('\n')}`);
    }
    return result.stdout;
  }

  /** Stops dockerd and its containerd, unmounts what they left under the temp dir, removes it. */
  async stop(): Promise<void> {
    const containerdPid = this.containerdPid();
    await this.process.stop(20_000);
    if (containerdPid !== undefined) await stopPid(containerdPid, join(this.dir, 'exec'));
    await unmountUnder(this.dir);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private containerdPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Stops `pid` if it still runs and its command line names `mustMention` (so a reused pid is left alone). */
async function stopPid(pid: number, mustMention: string): Promise<void> {
  const isOurs = (): boolean => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(mustMention);
    } catch {
      return false;
    }
  };
  if (!isOurs()) return;
  process.kill(pid, 'SIGTERM');
  try {
    await waitFor(async () => (isOurs() ? undefined : true), { what: `containerd ${pid} to exit`, timeoutMs: 10_000 });
  } catch {
    if (isOurs()) process.kill(pid, 'SIGKILL');
  }
}
