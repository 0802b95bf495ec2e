// A private containerd with its own root, state, sockets and config file, all in one temp dir, so
// it neither sees nor disturbs a system containerd. Only what `ctr images pull` needs is kept: the
// content store, metadata, GC, the image/content/lease/snapshot services and the `native`
// snapshotter (plain directory copies, like dockerd's vfs, so no overlay mounts are needed). The CRI
// plugin and the snapshotters that probe for special filesystems are disabled; so is the `opt`
// plugin, which would otherwise create /opt/containerd on the host.
// Note: with ctr the registry client runs in the ctr process, not in the daemon; `--hosts-dir`
// therefore takes effect per command.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTextCommand, type TextCommandResult } from './command.js';
import { unmountUnder } from './mounts.js';
import { startDaemon, type ServiceProcess } from './service-process.js';

const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.internal.v1.opt',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.overlayfs',
];

/** The namespace every ctr command of the rig uses. */
export const NAMESPACE = 'longshore-e2e';
export const SNAPSHOTTER = 'native';

export type CtrResult = TextCommandResult;

/** One row of `ctr images ls`. */
export interface ImageRow {
  ref: string;
  mediaType: string;
  digest: string;
  platforms: string[];
}

export class Containerd {
  private constructor(private readonly dir: string, readonly socket: string, readonly process: ServiceProcess) {}

  static async start(): Promise<Containerd> {
    // Short path: unix socket paths are limited to 108 bytes.
    const dir = mkdtempSync('/tmp/lsct-');
    const socket = join(dir, 'containerd.sock');
    const configFile = join(dir, 'config.toml');
    writeFileSync(configFile, [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      `disabled_plugins = ${JSON.stringify(DISABLED_PLUGINS)}`,
      '[grpc]',
      `  address = ${JSON.stringify(socket)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      '',
    ].join('\n'));
    return startDaemon(dir, {
      name: 'containerd',
      command: 'containerd',
      args: ['--config', configFile, '--log-level', 'info'],
      keepLines: 300,
    }, (daemon) => new Containerd(dir, socket, daemon), {
      what: 'containerd to answer `ctr version`',
      probe: async (d) => (await d.ctr(['version'])).code === 0,
    });
  }

  /** Runs ctr against this daemon in the rig's namespace; never rejects on a non-zero exit. */
  ctr(args: readonly string[], timeoutMs = 180_000): Promise<CtrResult> {
    return runTextCommand('ctr', args, {
      leading: ['--address', this.socket, '--namespace', NAMESPACE],
      timeoutMs,
      env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('CONTAINERD_'))),
    });
  }

  /** `ctr images ls`, parsed. */
  async images(): Promise<ImageRow[]> {
    const result = await this.ctr(['images', 'ls']);
    if (result.code !== 0) throw new Error(`ctr images ls exited ${result.code}: ${result.stderr.trim()}`);
    // Columns REF TYPE DIGEST SIZE PLATFORMS LABELS, padded with spaces; SIZE reads "3.0 MiB".
    return result.stdout.trim().split('\n').slice(1).filter((line) => line.trim() !== '').map((line) => {
      const [ref, mediaType, digest, ...rest] = line.trim().split(/\s+/);
      const platforms = rest.find((word) => /^[a-z0-9]+\/[a-z0-9]+/.test(word)) ?? '';
      return { ref: ref!, mediaType: mediaType!, digest: digest!, platforms: platforms.split(',') };
    });
  }

  /** Digests in the content store. */
  async contentDigests(): Promise<string[]> {
    const result = await this.ctr(['content', 'ls', '--quiet']);
    if (result.code !== 0) throw new Error(`ctr content ls exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '').sort();
  }

  /** Stops containerd, unmounts what it left under the temp dir, removes it. */
  async stop(): Promise<void> {
    await this.process.stop(20_000);
    await unmountUnder(this.dir);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A `--hosts-dir` tree that sends `registry` (default docker.io) to `mirrorUrl`, as README's containerd
 * section does: `DIR/<registry>/hosts.toml`. The mirror is tried first; `server` is containerd's
 * fallback. `hostLines` go into the mirror's table, e.g. `ca = "/path/ca.crt"`.
 */
export function writeHostsDir(dir: string, mirrorUrl: string, registry = 'docker.io', hostLines: readonly string[] = []): string {
  const server = registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
  mkdirSync(join(dir, registry), { recursive: true });
  writeFileSync(join(dir, registry, 'hosts.toml'), [
    `server = ${JSON.stringify(server)}`,
    '',
    `[host.${JSON.stringify(mirrorUrl)}]`,
    '  capabilities = ["pull", "resolve"]',
    ...hostLines.map((line) => `  ${line}`),
    '',
  ].join('\n'));
  return dir;
}
