// The clients the scenarios drive, each a separate process from the servers and from the bench itself:
// curl for blob GETs (it reports time to first byte and total time; its own CPU use is small) and
// skopeo for whole-image pulls into a `dir:` layout. Every call has a time bound.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Credentials } from '../../test/support/e2e/registry-client.js';

const run = promisify(execFile);

export interface CurlResult {
  status: number;
  bytes: number;
  /** Seconds from curl's start to the first body byte. */
  ttfb: number;
  /** Seconds from curl's start to the end of the transfer. */
  total: number;
  /** Set when curl failed (e.g. the transfer broke or timed out). */
  error?: string;
}

/** GETs `url` with curl, discarding the body. */
export function curlGet(url: string, maxTimeSeconds: number): Promise<CurlResult> {
  return new Promise((resolve) => {
    const child = spawn('curl', [
      '-sS', '-o', '/dev/null', '--max-time', String(maxTimeSeconds),
      '-w', '%{http_code} %{size_download} %{time_starttransfer} %{time_total}',
      url,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => {
      const [status, bytes, ttfb, total] = stdout.trim().split(' ').map(Number);
      resolve({
        status: status ?? 0, bytes: bytes ?? 0, ttfb: ttfb ?? 0, total: total ?? 0,
        ...(code === 0 ? {} : { error: `curl exited ${code}: ${stderr.trim()}` }),
      });
    });
  });
}

export interface ConcurrentGets {
  results: CurlResult[];
  /** Seconds from starting the first curl to the end of the last. */
  wall: number;
}

/** Starts `n` curl GETs of `url` at once and waits for all of them. */
export async function concurrentGets(url: string, n: number, maxTimeSeconds: number): Promise<ConcurrentGets> {
  const started = process.hrtime.bigint();
  const results = await Promise.all(Array.from({ length: n }, () => curlGet(url, maxTimeSeconds)));
  return { results, wall: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** Throws unless every GET answered 200 with exactly `size` bytes. */
export function expectComplete(results: readonly CurlResult[], size: number, what: string): void {
  const bad = results.filter((r) => r.error !== undefined || r.status !== 200 || r.bytes !== size);
  if (bad.length > 0) {
    throw new Error(`${what}: ${bad.length} of ${results.length} GETs failed: ${bad.slice(0, 3).map((r) => `${r.status} ${r.bytes} B ${r.error ?? ''}`).join('; ')}`);
  }
}

export interface PullOptions {
  /** Credentials for a direct pull from the upstream; mirrors need none. */
  credentials?: Credentials;
  /** Scratch space: the pulled layout is written here and removed afterwards. */
  workDir: string;
  timeoutMs: number;
}

/** `skopeo copy docker://host/repo:tag dir:…`; resolves to the wall time in seconds. */
export async function skopeoPull(host: string, repository: string, tag: string, options: PullOptions): Promise<number> {
  const dir = mkdtempSync(join(options.workDir, 'pull-'));
  const started = process.hrtime.bigint();
  try {
    await run('skopeo', [
      '--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false',
      ...(options.credentials ? ['--src-creds', `${options.credentials.username}:${options.credentials.password}`] : ['--src-no-creds']),
      `docker://${host}/${repository}:${tag}`, `dir:${join(dir, 'image')}`,
    ], { env: { ...process.env, TMPDIR: dir }, timeout: options.timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return Number(process.hrtime.bigint() - started) / 1e9;
  } catch (err) {
    throw new Error(`skopeo pull of ${host}/${repository}:${tag} failed: ${(err as Error).message}\n${(err as { stderr?: string }).stderr ?? ''}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
