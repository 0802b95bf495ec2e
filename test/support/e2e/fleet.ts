// Three Longshore nodes behind HAProxy on loopback, as deploy/README.md describes: every node runs the
// same config file and differs only by LONGSHORE_LISTEN, LONGSHORE_DATA_DIR and LONGSHORE_NODE_NAME;
// HAProxy runs deploy/haproxy/haproxy.cfg unchanged. Nodes keep their port and data dir across
// restarts, so a restarted node comes back with its cache.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Haproxy } from './haproxy.js';
import { Longshore } from './longshore.js';
import { freePort } from './ports.js';

export interface FleetOptions {
  upstreamUrl: string;
  username: string;
  password: string;
}

export class Fleet {
  /** nodes[0] is node1 (local repositories), and so on; replaced on restart. */
  readonly nodes: Longshore[] = [];
  haproxy!: Haproxy;
  readonly dir: string;
  readonly configFile: string;
  private readonly ports: number[] = [];

  private constructor(dir: string, configFile: string) {
    this.dir = dir;
    this.configFile = configFile;
  }

  static async start(options: FleetOptions): Promise<Fleet> {
    const dir = mkdtempSync(join(tmpdir(), 'longshore-fleet-'));
    const configFile = join(dir, 'fleet.config.json');
    // deploy/fleet.config.json, with the test upstream in place of Docker Hub.
    writeFileSync(configFile, JSON.stringify({
      drainDelay: '3s',
      shutdownGrace: '30s',
      local: { prefixes: ['team/'] },
      // no free-space floor: a nearly full CI disk must not turn caching off
      cache: { minFreeSpace: 0 },
      upstreams: { 'docker.io': { url: options.upstreamUrl, username: options.username, password: options.password } },
    }, null, 2));
    const fleet = new Fleet(dir, configFile);
    try {
      for (let i = 0; i < 3; i++) fleet.ports.push(await freePort());
      for (let i = 0; i < 3; i++) fleet.nodes.push(await fleet.startNode(i));
      const [front, stats] = [await freePort(), await freePort()];
      fleet.haproxy = await Haproxy.start({
        LONGSHORE_FRONT: `127.0.0.1:${front}`,
        LONGSHORE_NODE1: `127.0.0.1:${fleet.ports[0]}`,
        LONGSHORE_NODE2: `127.0.0.1:${fleet.ports[1]}`,
        LONGSHORE_NODE3: `127.0.0.1:${fleet.ports[2]}`,
        LONGSHORE_STATS: `127.0.0.1:${stats}`,
      });
      for (let i = 0; i < 3; i++) await fleet.haproxy.waitForServer(Fleet.serverName(i), 'UP');
      return fleet;
    } catch (err) {
      await fleet.stop().catch(() => undefined);
      throw err;
    }
  }

  /** HAProxy's name for nodes[i]. */
  static serverName(i: number): string {
    return `node${i + 1}`;
  }

  private startNode(i: number): Promise<Longshore> {
    return Longshore.start({
      upstreamUrl: '', username: '', password: '',
      configFile: this.configFile,
      env: {
        LONGSHORE_LISTEN: `127.0.0.1:${this.ports[i]}`,
        LONGSHORE_DATA_DIR: join(this.dir, `node${i + 1}`),
        LONGSHORE_NODE_NAME: Fleet.serverName(i),
      },
    });
  }

  /** SIGKILL, as a crash would; resolves once the process is gone. */
  async kill(i: number): Promise<void> {
    await this.nodes[i]!.process.killHard();
  }

  /** SIGTERM; resolves once the process has exited, with its exit status. */
  async terminate(i: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    process.kill(this.nodes[i]!.process.pid, 'SIGTERM');
    return this.nodes[i]!.process.exited;
  }

  /** Starts nodes[i] again on its port and data dir, and waits until HAProxy sends it traffic. */
  async restart(i: number): Promise<Longshore> {
    await this.nodes[i]!.stop(); // already exited: removes its rig dir, not the data dir
    const node = await this.startNode(i);
    this.nodes[i] = node;
    await this.haproxy.waitForServer(Fleet.serverName(i), 'UP');
    return node;
  }

  async stop(): Promise<void> {
    await this.haproxy?.stop();
    for (const node of this.nodes) await node.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
