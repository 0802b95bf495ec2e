// A probe of scenario 4's single stream for development (bench/NOTES.md §1): both mirrors pull the big
// layer once, then serve it warm to one curl at a time, N times each, taking turns. Prints each run's
// MB/s, the server's CPU seconds per GiB, and its context switches per MiB (all its threads, from
// /proc/<pid>/task/*/status), then the medians.
//   node --import tsx bench/probe-throughput.ts      N=7 by default; NODE_ARGS='--flag …' as elsewhere
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { buildLongshore } from './lib/build.js';
import { curlGet, expectComplete } from './lib/clients.js';
import { turnOrder } from './lib/context.js';
import { FULL_SIZES, prepareImages } from './lib/images.js';
import { ProcSampler } from './lib/proc-stats.js';
import { SERVER_KINDS, startMirror, type MirrorServer, type ServerKind } from './lib/servers.js';
import { median } from './lib/stats.js';
import { MB } from './lib/units.js';
import { publishMissing, startUpstream } from './lib/upstream.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const cache = process.env.LONGSHORE_BENCH_CACHE ?? join(tmpdir(), 'longshore-bench-cache');
const build = await buildLongshore(repoRoot, join(cache, 'build'));
const images = await prepareImages(join(cache, 'images-full'), 'full', FULL_SIZES);
const upstream = await startUpstream(join(cache, 'upstream-storage'));
await publishMissing(upstream, [images.big]);
const workDir = mkdtempSync(join(cache, 'probe-'));
const layer = images.big.layers[0]!;
const nodeArgs = process.env.NODE_ARGS?.split(' ').filter(Boolean);

/** Voluntary + involuntary context switches of every thread of `pid`. */
function contextSwitches(pid: number): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) total += Number(m[1]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return total;
}

const mirrors = {} as Record<ServerKind, MirrorServer>;
try {
  const urls = {} as Record<ServerKind, string>;
  for (const kind of SERVER_KINDS) {
    mirrors[kind] = await startMirror(kind, { upstreamUrl: upstream.proxy.url, credentials: upstream.mirrorCredentials, workDir, build, nodeArgs });
    urls[kind] = `${mirrors[kind].url}/v2/${images.big.repository}/blobs/${layer.digest}`;
    // Two untimed GETs: the first fills the cache, the second finds it (distribution re-verifies a
    // blob before moving it into place, so its first warm GET may still go upstream).
    for (let i = 0; i < 2; i++) await (await request(urls[kind])).body.dump({ limit: Number.MAX_SAFE_INTEGER });
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  const rows = { longshore: [] as number[][], distribution: [] as number[][] };
  for (let i = 0; i < Number(process.env.N ?? 7); i++) {
    for (const kind of turnOrder(i)) {
      const pid = mirrors[kind].pid;
      const switches = contextSwitches(pid);
      const sampler = ProcSampler.start(pid);
      const result = await curlGet(urls[kind], 600);
      const usage = sampler.stop();
      expectComplete([result], layer.size, kind);
      const gib = layer.size / 2 ** 30;
      const row = [layer.size / result.total / MB, usage.cpuSeconds / gib, (contextSwitches(pid) - switches) / (layer.size / 2 ** 20)];
      rows[kind].push(row);
      console.log(`${kind.padEnd(12)} ${row[0]!.toFixed(0)} MB/s, ${row[1]!.toFixed(2)} CPU s/GiB, ${row[2]!.toFixed(2)} context switches/MiB`);
    }
  }
  for (const kind of SERVER_KINDS) {
    const col = (c: number) => median(rows[kind].map((r) => r[c]!));
    console.log(`median ${kind.padEnd(12)} ${col(0).toFixed(0)} MB/s, ${col(1).toFixed(2)} CPU s/GiB, ${col(2).toFixed(2)} switches/MiB`);
  }
} finally {
  for (const kind of SERVER_KINDS) await mirrors[kind]?.stop();
  await upstream.stop();
  rmSync(workDir, { recursive: true, force: true });
}
