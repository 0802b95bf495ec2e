// What the numbers were measured on. Other suites may share this machine, so every measurement also
// records the load average at its start and end (see LoadSnapshot), and the run records the host once.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  cpuMHz: number;
  memoryBytes: number;
  kernel: string;
  node: string;
  distribution: string;
  skopeo: string;
  wrk: string | null;
  curl: string;
  /** `git rev-parse HEAD` of the repository the Longshore build came from. */
  commit: string;
  /** Files under src/ with uncommitted changes at build time: the build includes them. */
  uncommittedSrc: string[];
  loadAtStart: [number, number, number];
}

/** 1, 5 and 15 minute load averages, and the time they were read. */
export interface LoadSnapshot {
  at: string;
  load: [number, number, number];
}

export function loadSnapshot(): LoadSnapshot {
  const [one, five, fifteen] = loadavg();
  return { at: new Date().toISOString(), load: [round2(one!), round2(five!), round2(fifteen!)] };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function firstLine(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
  } catch (err) {
    // wrk prints its version, then its usage, and exits 1 for -v.
    const { stdout, stderr } = err as { stderr?: string; stdout?: string };
    const line = `${stdout ?? ''}\n${stderr ?? ''}`.split('\n').map((l) => l.trim()).find((l) => l !== '');
    return line ?? 'unknown';
  }
}

export function machineInfo(repoRoot: string, wrkPath: string | undefined): MachineInfo {
  const cpuList = cpus();
  let uncommittedSrc: string[] = [];
  let commit = 'unknown';
  try {
    // Read-only git queries.
    commit = execFileSync('git', ['-C', repoRoot, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    uncommittedSrc = execFileSync('git', ['-C', repoRoot, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' })
      .split('\n').filter((l) => l.trim() !== '').map((l) => l.trim());
  } catch {
    // not a git checkout
  }
  let distribution = 'unknown';
  try {
    distribution = execFileSync('docker-registry', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as unknown
  }
  return {
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    cpuMHz: cpuList[0]?.speed ?? 0,
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    distribution,
    skopeo: firstLine('skopeo', ['--version']),
    wrk: wrkPath === undefined ? null : firstLine(wrkPath, ['-v']),
    curl: firstLine('curl', ['--version']),
    commit,
    uncommittedSrc,
    loadAtStart: loadSnapshot().load,
  };
}

/** The kernel's clock tick, for /proc/<pid>/stat times. 100 on every Linux we run on. */
export function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** Whether /proc is there to sample (Linux). */
export function hasProc(): boolean {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}
