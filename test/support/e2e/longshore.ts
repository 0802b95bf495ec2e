// Runs the Longshore server from source as a child process with a generated config file and
// learns its port from the "listening" log record (it binds 127.0.0.1:0 unless told otherwise).
// Every JSON log record is kept, so tests can read what Longshore answered each client request.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { ServiceProcess } from './service-process.js';
import { waitFor } from '../wait.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface LongshoreOptions {
  /** Base URL of the docker.io upstream (the counting proxy). */
  upstreamUrl: string;
  username: string;
  password: string;
  logLevel?: string;
  /** Keys merged into the generated `upstreams["docker.io"]` entry, e.g. `{ tagTTL: 0 }`. */
  upstream?: Record<string, unknown>;
  /**
   * Top-level config keys merged over the generated ones. `listen` and `dataDir` may name another
   * instance's, to restart on the same port and cache; a dataDir given here is not removed by stop().
   */
  config?: Record<string, unknown>;
  /**
   * Run with this config file instead of a generated one (the fleet's nodes share one file);
   * `upstreamUrl`, `upstream` and `config` are then ignored.
   */
  configFile?: string;
  /**
   * Start from the repository's mirror.config.json as shipped, with only the docker.io upstream URL, the
   * port (127.0.0.1:0) and the data dir changed, then `config` merged over it (for a variant such as
   * client auth on); `username`, `password` and `upstream` are then ignored.
   */
  shippedConfig?: boolean;
  /** LONGSHORE_* variables for this process, e.g. the node's LONGSHORE_LISTEN and LONGSHORE_DATA_DIR. */
  env?: Record<string, string>;
}

/** One `msg: "request"` log line: how Longshore answered a client request. */
export interface LoggedRequest {
  method: string;
  /** Path with the query string, as the client sent it. */
  path: string;
  status: number;
  /** `hit`, `miss`, `coalesced`, `revalidated`, `stale`, `upstream`; absent when nothing was served. */
  cache?: string;
  bytes: number;
}

export class Longshore {
  readonly process: ServiceProcess;
  readonly port: number;
  /** Directory holding the config file and, unless the config names another, the data dir. */
  readonly dir: string;
  /** The data dir in use. */
  readonly dataDir: string;
  /** Every JSON log record so far, oldest first. */
  readonly records: ReadonlyArray<Record<string, unknown>>;

  /** Sentinel requests of settledMark(): HTTPS instances use a self-signed test certificate. */
  private readonly sentinelDispatcher = new Agent({ connect: { rejectUnauthorized: false } });

  private constructor(process: ServiceProcess, port: number, dir: string, dataDir: string, records: Array<Record<string, unknown>>, private readonly scheme: 'http' | 'https') {
    this.process = process;
    this.port = port;
    this.dir = dir;
    this.dataDir = dataDir;
    this.records = records;
  }

  static async start(options: LongshoreOptions): Promise<Longshore> {
    const dir = mkdtempSync(join(tmpdir(), 'longshore-server-'));
    const configPath = join(dir, 'config.json');
    const config = options.shippedConfig ? shippedConfig(options, join(dir, 'data')) : {
      listen: '127.0.0.1:0',
      dataDir: join(dir, 'data'),
      logLevel: options.logLevel ?? 'info',
      // no free-space floor: a nearly full CI disk must not turn caching off (see test/support/mirror.ts)
      cache: { minFreeSpace: 0 },
      upstreams: {
        'docker.io': { url: options.upstreamUrl, username: options.username, password: options.password, ...options.upstream },
      },
      ...options.config,
    };
    if (options.configFile === undefined) writeFileSync(configPath, JSON.stringify(config, null, 2));
    const records: Array<Record<string, unknown>> = [];

    let listening: { port: number } | undefined;
    // LONGSHORE_* variables override the config file; the test's config must be the only input.
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LONGSHORE_'))), ...options.env };
    let server: ServiceProcess;
    try {
      server = await ServiceProcess.start({
        name: 'longshore',
        command: process.execPath,
        args: ['--import', 'tsx', join(REPO_ROOT, 'src', 'main.ts'), '--config', options.configFile ?? configPath],
        cwd: REPO_ROOT,
        env,
        keepLines: 500,
        onStdoutLine: (line) => {
          const record = parseLogLine(line);
          if (record === undefined) return;
          records.push(record);
          if (record.msg === 'listening' && typeof record.port === 'number') listening = { port: record.port };
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
      const dataDir = options.configFile === undefined ? String(config.dataDir) : options.env?.LONGSHORE_DATA_DIR ?? '';
      return new Longshore(server, port, dir, dataDir, records, (config as { tls?: unknown }).tls ? 'https' : 'http');
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

  /**
   * A position in the log that every request answered so far lies before, for requestsSince() and
   * recordsSince(). A request is logged when its response closes, which can be after the client read
   * it: a plain count of log lines taken right after a client command may come before that command's
   * last lines (a failed `docker login`'s /token 401 was once counted in the next test's requests). The
   * server logs in order, so once a sentinel request's line is in, every earlier request's line is too.
   */
  async settledMark(): Promise<number> {
    const id = randomUUID();
    const res = await request(`${this.scheme}://${this.host}/healthz?settle=${id}`, { dispatcher: this.sentinelDispatcher });
    await res.body.dump();
    return waitFor(async () => {
      for (let i = this.records.length - 1; i >= 0; i--) {
        if (this.records[i]!.msg === 'request' && String(this.records[i]!.path).endsWith(id)) return i + 1;
      }
      return undefined;
    }, { what: 'the sentinel request in the log', timeoutMs: 30_000, intervalMs: 20, failFast: () => this.process.assertRunning() });
  }

  /** Log records with message `msg` written after `mark`. */
  recordsSince(mark: number, msg: string): Array<Record<string, unknown>> {
    return this.records.slice(mark).filter((r) => r.msg === msg);
  }

  /**
   * Client requests Longshore answered after `mark` and before this call, in the order it finished
   * them. Lines are written in batches (config logFlushInterval) and a request is logged when its
   * response closes, so a sentinel request (settledMark) comes first: once its line is in, every
   * earlier request's is too. Sentinel requests are left out. A stopped server's log is complete.
   */
  async requestsSince(mark: number): Promise<LoggedRequest[]> {
    if (this.process.running) await this.settledMark();
    return this.loggedRequests(mark);
  }

  /** The request lines in the log after `mark` so far, sentinels left out (no settling: for diagnostics). */
  private loggedRequests(mark: number): LoggedRequest[] {
    return this.recordsSince(mark, 'request').filter((r) => !isSentinel(r)).map((r) => ({
      method: String(r.method),
      path: String(r.path),
      status: Number(r.status),
      bytes: Number(r.bytes),
      ...(typeof r.cache === 'string' ? { cache: r.cache } : {}),
    }));
  }

  /**
   * Resolves once the log holds the lines of every request Longshore answered before this call. A
   * client may exit before the line for its last request has been read from Longshore's stdout; the
   * lines come in the order responses finished, so once a marker request of our own (a GET /healthz
   * with its own X-Request-Id) is logged, the earlier ones are too.
   */
  async logSettled(): Promise<void> {
    await this.settledMark();
  }

  /** One line per request answered after `mark`, for assertion messages. */
  describeRequestsSince(mark: number): string {
    return this.loggedRequests(mark).map((r) => `${r.method} ${r.path} -> ${r.status} ${r.cache ?? '-'} (${r.bytes} B)`).join('\n');
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

/** mirror.config.json with the upstream URL, port and data dir of this test, and `options.config` merged over it. */
function shippedConfig(options: LongshoreOptions, dataDir: string): Record<string, unknown> {
  const shipped = JSON.parse(readFileSync(join(REPO_ROOT, 'mirror.config.json'), 'utf8')) as { upstreams: Record<string, Record<string, unknown>> };
  const upstreams = { ...shipped.upstreams, 'docker.io': { ...shipped.upstreams['docker.io'], url: options.upstreamUrl } };
  return { ...shipped, listen: '127.0.0.1:0', dataDir, upstreams, ...options.config };
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The rig's own sentinel requests (settledMark), which are no client's. */
function isSentinel(record: Record<string, unknown>): boolean {
  return String(record.path).startsWith('/healthz?settle=');
}
