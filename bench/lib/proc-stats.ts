// Peak memory and CPU time of one server process over one measured phase (scenario 6), from /proc:
// VmRSS sampled every `intervalMs`, VmHWM (the kernel's own peak, reset at the start of the phase
// through /proc/<pid>/clear_refs where permitted), and utime+stime from /proc/<pid>/stat.
import { readFileSync, writeFileSync } from 'node:fs';
import { clockTicks } from './machine.js';

const TICKS = clockTicks();

export interface ProcUsage {
  /** VmRSS when the phase started, bytes. */
  startRss: number;
  /** Largest VmRSS seen by sampling, bytes. */
  sampledPeakRss: number;
  /** VmHWM at the end of the phase, bytes; covers the whole process life unless the reset worked. */
  hwm: number;
  /** Whether VmHWM was reset at the start, so `hwm` is this phase's peak. */
  hwmReset: boolean;
  /** max(sampledPeakRss, hwm when it was reset). */
  peakRss: number;
  /** User + system CPU seconds spent in the phase. */
  cpuSeconds: number;
  /** Of which in the kernel (system calls: socket and file writes). */
  systemSeconds: number;
  samples: number;
  wallSeconds: number;
}

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** User and system CPU ticks of a process. */
function cpuTicks(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return { user: Number(fields[11]), system: Number(fields[12]) };
}

export class ProcSampler {
  private readonly startTicks: { user: number; system: number };
  private readonly started = process.hrtime.bigint();
  private readonly timer: NodeJS.Timeout;
  private peak = 0;
  private samples = 0;
  private readonly startRss: number;
  private readonly hwmReset: boolean;

  private constructor(private readonly pid: number, intervalMs: number) {
    this.hwmReset = resetHwm(pid);
    this.startRss = statusField(pid, 'VmRSS');
    this.startTicks = cpuTicks(pid);
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  static start(pid: number, intervalMs = 50): ProcSampler {
    return new ProcSampler(pid, intervalMs);
  }

  private sample(): void {
    try {
      this.peak = Math.max(this.peak, statusField(this.pid, 'VmRSS'));
      this.samples++;
    } catch {
      // the process has gone; stop() reports what was seen
    }
  }

  stop(): ProcUsage {
    clearInterval(this.timer);
    this.sample();
    const hwm = statusField(this.pid, 'VmHWM');
    const end = cpuTicks(this.pid);
    const systemSeconds = (end.system - this.startTicks.system) / TICKS;
    const cpuSeconds = (end.user - this.startTicks.user) / TICKS + systemSeconds;
    return {
      startRss: this.startRss,
      sampledPeakRss: this.peak,
      hwm,
      hwmReset: this.hwmReset,
      peakRss: this.hwmReset ? Math.max(this.peak, hwm) : this.peak,
      cpuSeconds,
      systemSeconds,
      samples: this.samples,
      wallSeconds: Number(process.hrtime.bigint() - this.started) / 1e9,
    };
  }
}

/** "5" resets the peak RSS (VmHWM) to the current RSS (proc(5), Linux 4.0+). */
function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** One usage over several measured runs of the same phase: CPU and wall time add up, peaks are the highest. */
export function combineUsage(runs: readonly ProcUsage[]): ProcUsage {
  if (runs.length === 0) throw new Error('combineUsage needs at least one run');
  return {
    startRss: runs[0]!.startRss,
    sampledPeakRss: Math.max(...runs.map((r) => r.sampledPeakRss)),
    hwm: Math.max(...runs.map((r) => r.hwm)),
    hwmReset: runs.every((r) => r.hwmReset),
    peakRss: Math.max(...runs.map((r) => r.peakRss)),
    cpuSeconds: runs.reduce((sum, r) => sum + r.cpuSeconds, 0),
    systemSeconds: runs.reduce((sum, r) => sum + r.systemSeconds, 0),
    samples: runs.reduce((sum, r) => sum + r.samples, 0),
    wallSeconds: runs.reduce((sum, r) => sum + r.wallSeconds, 0),
  };
}
