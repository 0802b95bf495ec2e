// A Longshore-only probe of scenario 5 for development (bench/NOTES.md §3): one fresh mirror, the
// multi-arch tag fetched once, then GET by tag (wrk when installed) and HEAD by tag (the node:net
// generator) at 32 connections, RUNS times each, printing requests/s, p50 and p99. Faster than
// `npm run bench -- --only=5`, which also runs distribution at ~230 req/s.
//   node --import tsx bench/probe-manifests.ts           SECONDS=10 RUNS=2 by default
// NODE_OPTIONS reaches Longshore too (for example --trace-gc; its stdout is in the mirror's log).
// NODE_ARGS='--flag …' starts Longshore's node with those options (some are refused in NODE_OPTIONS).
// PROFILE=DIR writes Longshore's CPU profile there (summarise it with bench/lib/cpu-profile.ts).
// GET_TOOL=net sends the GETs with the node:net generator as well.
// CONFIG='{"logFlushInterval":0}' adds config keys (JSON) to Longshore's config file.
// LOG_LEVEL=info runs Longshore with request logs (into a file in the probe's work dir), as scenario 5 does.
// PIN=1 pins the servers to CPU 0 and the load generators to CPU 1 (taskset).
// FLOOR=1 alternates each run with the same load on a bare node:http server that answers the same
// status, headers and body from memory: the floor for this machine at that moment, which moves a lot.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLongshore } from './lib/build.js';
import { MANIFEST_ACCEPT } from './lib/context.js';
import { FULL_SIZES, prepareImages } from './lib/images.js';
import { runLoad } from './lib/loadgen.js';
import { loadSnapshot } from './lib/machine.js';
import { ProcSampler } from './lib/proc-stats.js';
import { startMirror } from './lib/servers.js';
import { publishMissing, startUpstream } from './lib/upstream.js';
import { spawnSync } from 'node:child_process';
import { startFloor } from './lib/floor.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const cache = process.env.LONGSHORE_BENCH_CACHE ?? join(tmpdir(), 'longshore-bench-cache');
const seconds = Number(process.env.SECONDS ?? 10);
const runs = Number(process.env.RUNS ?? 2);
const build = await buildLongshore(repoRoot, join(cache, 'build'));
const images = await prepareImages(join(cache, 'images-full'), 'full', FULL_SIZES);
const upstream = await startUpstream(join(cache, 'upstream-storage'));
await publishMissing(upstream, [images.multi]);
const workDir = mkdtempSync(join(cache, 'probe-'));
const getTool = process.env.GET_TOOL === 'net' || spawnSync('wrk', ['--version']).error ? 'net' : 'wrk';
try {
  const mirror = await startMirror('longshore', { upstreamUrl: upstream.proxy.url, credentials: upstream.mirrorCredentials, workDir, build, cpuProfileDir: process.env.PROFILE,
    nodeArgs: process.env.NODE_ARGS?.split(' ').filter(Boolean),
    ...(process.env.CONFIG ? { config: JSON.parse(process.env.CONFIG) as Record<string, unknown> } : {}),
    ...(process.env.LOG_LEVEL ? { logLevel: process.env.LOG_LEVEL as 'info', logFile: join(workDir, 'longshore.log') } : {}) });
  const url = `${mirror.url}/v2/${images.multi.repository}/manifests/${images.multi.tag}`;
  const headers = { accept: MANIFEST_ACCEPT };
  const first = await fetch(url, { headers });
  await first.arrayBuffer();
  if (first.status !== 200) throw new Error(`warm-up GET answered ${first.status}`);
  const floor = process.env.FLOOR ? await startFloor(first.status, first.headers, Buffer.from(await (await fetch(url, { headers })).arrayBuffer())) : undefined;
  const targets: [string, string, number][] = [['longshore', url, mirror.pid], ...(floor ? [['floor', `${floor.url}/v2/x/manifests/y`, floor.pid] as [string, string, number]] : [])];
  if (process.env.PIN) {
    // Each server on CPU 0, this process and the load generators it starts on CPU 1: on two cores the
    // scheduler otherwise sometimes puts a server and its load on one core, and a run's figure moves by
    // a third with that placement alone.
    for (const [, , pid] of targets) spawnSync('taskset', ['-apc', '0', String(pid)], { stdio: 'ignore' });
    spawnSync('taskset', ['-apc', '1', String(process.pid)], { stdio: 'ignore' });
  }
  if (process.env.HOLD) {
    console.log(`holding: ${targets.map(([name, target, pid]) => `${name} pid ${pid} ${target}`).join('; ')}`);
    await new Promise((resolve) => process.once('SIGUSR2', resolve));
  }
  for (const method of ['GET', 'HEAD'] as const) {
    const tool = method === 'GET' ? getTool : 'net';
    for (const [, target] of targets) await runLoad(tool, { url: target, method, headers, connections: 32, seconds: 2 });
    for (let i = 0; i < runs; i++) {
      for (const [name, target, pid] of targets) {
        const load = loadSnapshot().load[0];
        const sampler = ProcSampler.start(pid);
        const r = await runLoad(tool, { url: target, method, headers, connections: 32, seconds });
        const usage = sampler.stop();
        const cpuPerRequest = (usage.cpuSeconds / (r.requestsPerSecond * seconds)) * 1e6;
        const systemPerRequest = (usage.systemSeconds / (r.requestsPerSecond * seconds)) * 1e6;
        console.log(`${method} (${tool}) ${name.padEnd(9)}: ${r.requestsPerSecond.toFixed(0).padStart(5)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ` +
          `server CPU ${cpuPerRequest.toFixed(1)} µs/request (system ${systemPerRequest.toFixed(1)}), non-2xx ${r.non2xx}, errors ${r.errors}; load ${load}`);
      }
    }
  }
  await floor?.stop();
  if (process.env.SHOW_LOG) console.log(mirror.recentLog());
  await mirror.stop();
} finally {
  await upstream.stop();
  rmSync(workDir, { recursive: true, force: true });
}
