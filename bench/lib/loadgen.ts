// Request-rate load for scenario 5, from a process of its own: wrk when it is installed (Debian
// package `wrk`), else loadgen-worker.ts, a small closed-loop generator on node:net sockets. Both keep
// `connections` requests in flight for `seconds` and report requests/s and latency percentiles.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LoadSpec {
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  connections: number;
  seconds: number;
}

export interface LoadResult {
  tool: 'wrk' | 'net';
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses other than 2xx/3xx. */
  non2xx: number;
  /** Connect, read, write errors and timeouts. */
  errors: number;
}

export async function runLoad(tool: 'wrk' | 'net', spec: LoadSpec): Promise<LoadResult> {
  return tool === 'wrk' ? runWrk(spec) : runUndici(spec);
}

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'longshore-bench-wrk-'));
  try {
    const script = join(dir, 'method.lua');
    writeFileSync(script, `wrk.method = "${spec.method}"\n`);
    // Two threads: a third would only compete with the server for this machine's cores.
    const threads = Math.min(2, spec.connections);
    const { stdout } = await run('wrk', [
      `-t${threads}`, `-c${spec.connections}`, `-d${spec.seconds}s`, '--latency', '--timeout', '10s',
      '-s', script,
      ...Object.entries(spec.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
      spec.url,
    ], { timeout: (spec.seconds + 30) * 1000 });
    return parseWrk(stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads wrk 4.1's report. */
export function parseWrk(output: string): LoadResult {
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
    if (!match) throw new Error(`wrk output has no ${p}% latency:\n${output}`);
    return Number(match[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as 'us' | 'ms' | 's' | 'm'];
  };
  const totals = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(output);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!totals || !rps) throw new Error(`unexpected wrk output:\n${output}`);
  const seconds = Number(totals[2]) * { us: 1e-6, ms: 1e-3, s: 1, m: 60 }[totals[3] as 'us' | 'ms' | 's' | 'm'];
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  return {
    tool: 'wrk',
    requests: Number(totals[1]),
    seconds,
    requestsPerSecond: Number(rps[1]),
    p50Ms: percentile('50'),
    p99Ms: percentile('99'),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    errors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

async function runUndici(spec: LoadSpec): Promise<LoadResult> {
  const worker = fileURLToPath(new URL('./loadgen-worker.ts', import.meta.url));
  const { stdout } = await run(process.execPath, ['--import', 'tsx', worker, JSON.stringify(spec)], {
    timeout: (spec.seconds + 60) * 1000,
    maxBuffer: 1024 * 1024,
  });
  return { tool: 'net', ...(JSON.parse(stdout) as Omit<LoadResult, 'tool'>) };
}
