// A long-running child program (registry, dockerd, Longshore) that the rig started and must stop.
// Output is kept as the last lines only, for failure messages; stop() signals this child's PID
// and nothing else.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { waitFor } from '../wait.js';

export interface ServiceOptions {
  /** Short name used in error messages. */
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** How many output lines to keep. Default 200. */
  keepLines?: number;
  /** Called with every stdout line, e.g. to find a "listening" log record. */
  onStdoutLine?: (line: string) => void;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ServiceProcess {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private readonly lines: string[] = [];
  private readonly keepLines: number;
  private exitStatus: ExitStatus | undefined;

  private constructor(child: ChildProcess, options: ServiceOptions) {
    this.name = options.name;
    this.pid = child.pid!;
    this.keepLines = options.keepLines ?? 200;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.remember(line);
      options.onStdoutLine?.(line);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => this.remember(line));
  }

  /** Starts the program; rejects if it cannot be executed at all. */
  static start(options: ServiceOptions): Promise<ServiceProcess> {
    const child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => {
        child.off('error', reject);
        resolve(new ServiceProcess(child, options));
      });
    });
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  /** "running" or how the program ended, for diagnostics. */
  state(): string {
    if (this.exitStatus === undefined) return `running (pid ${this.pid})`;
    return `exited (code ${this.exitStatus.code}, signal ${this.exitStatus.signal})`;
  }

  /** The kept output, oldest first. */
  recentOutput(): string {
    return this.lines.join('\n');
  }

  /** Throws if the program has already exited. */
  assertRunning(): void {
    if (this.exitStatus !== undefined) throw new Error(`${this.name} ${this.state()}`);
  }

  /** SIGTERM, then SIGKILL if the program is still there after `graceMs`. */
  async stop(graceMs = 10_000): Promise<ExitStatus> {
    if (this.exitStatus !== undefined) return this.exitStatus;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL now, as a crash would: no shutdown code runs. */
  async killHard(): Promise<ExitStatus> {
    if (this.exitStatus !== undefined) return this.exitStatus;
    this.signal('SIGKILL');
    return this.exited;
  }

  private signal(signal: NodeJS.Signals): void {
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  private remember(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.keepLines) this.lines.shift();
  }
}

/**
 * Starts a daemon whose files live in `dir`, wraps it, and waits (up to 60 s) until `ready` holds. If
 * the daemon does not start, `dir` is removed; if it is not ready in time, or exits, it is stopped and
 * the error carries its recent output.
 */
export async function startDaemon<T extends { stop(): Promise<void> }>(
  dir: string,
  options: ServiceOptions,
  wrap: (daemon: ServiceProcess) => T,
  ready: { what: string; probe: (wrapped: T) => Promise<boolean> },
): Promise<T> {
  let daemon: ServiceProcess;
  try {
    daemon = await ServiceProcess.start(options);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const wrapped = wrap(daemon);
  try {
    await waitFor(() => ready.probe(wrapped), { what: ready.what, timeoutMs: 60_000, intervalMs: 250, failFast: () => daemon.assertRunning() });
  } catch (err) {
    const output = daemon.recentOutput();
    await wrapped.stop();
    throw new Error(`${(err as Error).message}\n${output}`);
  }
  return wrapped;
}
