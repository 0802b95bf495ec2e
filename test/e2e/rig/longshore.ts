// Runs the Longshore server from source as a child process with a generated config file and
// learns its port from the "listening" log record (it binds 127.0.0.1:0).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServiceProcess } from './service-process.js';
import { waitFor } from './wait.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface LongshoreOptions {
  /** Base URL of the docker.io upstream (the counting proxy). */
  upstreamUrl: string;
  username: string;
  password: string;
  logLevel?: string;
  /** Top-level config keys merged over the generated ones. */
  config?: Record<string, unknown>;
}

export class Longshore {
  readonly process: ServiceProcess;
  readonly port: number;
  /** Directory holding the config file and the data dir. */
  readonly dir: string;

  private constructor(process: ServiceProcess, port: number, dir: string) {
    this.process = process;
    this.port = port;
    this.dir = dir;
  }

  static async start(options: LongshoreOptions): Promise<Longshore> {
    const dir = mkdtempSync(join(tmpdir(), 'longshore-server-'));
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify({
      listen: '127.0.0.1:0',
      dataDir: join(dir, 'data'),
      logLevel: options.logLevel ?? 'info',
      upstreams: {
        'docker.io': { url: options.upstreamUrl, username: options.username, password: options.password },
      },
      ...options.config,
    }, null, 2));

    let listening: { port: number } | undefined;
    // LONGSHORE_* variables override the config file; the test's config must be the only input.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LONGSHORE_')));
    let server: ServiceProcess;
    try {
      server = await ServiceProcess.start({
        name: 'longshore',
        command: process.execPath,
        args: ['--import', 'tsx', join(REPO_ROOT, 'src', 'main.ts'), '--config', configPath],
        cwd: REPO_ROOT,
        env,
        keepLines: 500,
        onStdoutLine: (line) => {
          const record = parseLogLine(line);
          if (record?.msg === 'listening' && typeof record.port === 'number') listening = { port: record.port };
        },
      });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    try {
      const { port } = await waitFor(async () => listening, {
        what: 'Longshore to log "listening"',
        timeoutMs: 60_000,
        failFast: () => server.assertRunning(),
      });
      return new Longshore(server, port, dir);
    } catch (err) {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${(err as Error).message}\n--- longshore output ---\n${server.recentOutput()}`);
    }
  }

  /** `127.0.0.1:PORT` */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  /** The last `lines` lines of the server's output, for failure messages. */
  recentLog(lines = 60): string {
    return this.process.recentOutput().split('\n').slice(-lines).join('\n');
  }

  async stop(): Promise<void> {
    await this.process.stop(10_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
