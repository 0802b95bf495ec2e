// Runs HAProxy in the foreground with deploy/haproxy/haproxy.cfg, the file operators deploy, configured
// only through its environment variables, and reads server states from its stats page (CSV).
import { join } from 'node:path';
import { REPO_ROOT } from './longshore.js';
import { ServiceProcess } from './service-process.js';
import { waitFor } from '../wait.js';

export const HAPROXY_CONFIG = join(REPO_ROOT, 'deploy', 'haproxy', 'haproxy.cfg');

export interface HaproxyEnv {
  LONGSHORE_FRONT: string;
  LONGSHORE_NODE1: string;
  LONGSHORE_NODE2: string;
  LONGSHORE_NODE3: string;
  LONGSHORE_STATS: string;
  LONGSHORE_LOCAL_PREFIX?: string;
}

/** One server line of the stats CSV. */
export interface ServerStat {
  backend: string;
  server: string;
  /** "UP", "DOWN", "UP 1/2" (going down), "DOWN 1/2" (coming up), "MAINT", "no check" */
  status: string;
  /** Sessions (requests, in HTTP mode) sent to the server so far. */
  total: number;
  /** Requests sent again to this server after a failed attempt (wretr), and moved to another one (wredis). */
  retries: number;
  redispatches: number;
}

export class Haproxy {
  private constructor(readonly process: ServiceProcess, readonly env: HaproxyEnv) {}

  static async start(env: HaproxyEnv): Promise<Haproxy> {
    const service = await ServiceProcess.start({
      name: 'haproxy',
      command: 'haproxy',
      // -db: foreground, no daemon; logs go to stdout (global "log stdout").
      args: ['-db', '-f', HAPROXY_CONFIG],
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LONGSHORE_'))), ...env },
      keepLines: 400,
    });
    const haproxy = new Haproxy(service, env);
    try {
      await waitFor(async () => (await haproxy.servers().catch(() => undefined))?.length ? true : undefined, {
        what: 'the HAProxy stats page', timeoutMs: 30_000, failFast: () => service.assertRunning(),
      });
    } catch (err) {
      await service.stop();
      throw new Error(`${(err as Error).message}\n--- haproxy output ---\n${service.recentOutput()}`);
    }
    return haproxy;
  }

  get url(): string {
    return `http://${this.env.LONGSHORE_FRONT}`;
  }

  get host(): string {
    return this.env.LONGSHORE_FRONT;
  }

  /** Every server of every backend, as the stats page shows it now. */
  async servers(): Promise<ServerStat[]> {
    const res = await fetch(`http://${this.env.LONGSHORE_STATS}/stats;csv`);
    if (!res.ok) throw new Error(`stats page answered ${res.status}`);
    const lines = (await res.text()).split('\n').filter((l) => l !== '');
    const header = lines[0]!.replace(/^# /, '').split(',');
    const col = (name: string) => header.indexOf(name);
    return lines.slice(1).map((l) => l.split(',')).filter((f) => f[1] !== 'FRONTEND' && f[1] !== 'BACKEND')
      .map((f) => ({
        backend: f[col('pxname')]!, server: f[col('svname')]!, status: f[col('status')]!, total: Number(f[col('stot')]),
        retries: Number(f[col('wretr')] || 0), redispatches: Number(f[col('wredis')] || 0),
      }));
  }

  /** Waits until `server` (node1…node3) has `status` in every backend that has it. */
  async waitForServer(server: string, status: 'UP' | 'DOWN', timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => {
      const mine = (await this.servers()).filter((s) => s.server === server);
      return mine.length > 0 && mine.every((s) => s.status === status) ? true : undefined;
    }, { what: `HAProxy to see ${server} ${status}`, timeoutMs, intervalMs: 100, failFast: () => this.process.assertRunning() });
  }

  recentLog(lines = 60): string {
    return this.process.recentOutput().split('\n').slice(-lines).join('\n');
  }

  async stop(): Promise<void> {
    await this.process.stop(10_000);
  }
}
