// A Longshore-only memory probe for development (bench/NOTES.md §2): N concurrent cold GETs of the big
// layer, then N warm GETs twice, printing wall time, RSS at the start and peak, and CPU seconds of each
// phase. Much faster than `npm run bench -- --only=3,4,6`, which also runs distribution. Needs the
// images and upstream storage a full bench run leaves in the cache dir (it builds what is missing).
//   node --import tsx bench/probe-memory.ts            N=8 by default; N=32 node --import tsx …
// To see the heap and ArrayBuffers behind the RSS, preload a script that logs process.memoryUsage()
// through NODE_OPTIONS=--require (the bench passes the environment on to Longshore). NODE_ARGS='--flag …'
// starts Longshore's node with options that NODE_OPTIONS refuses.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLongshore } from './lib/build.js';
import { concurrentGets, expectComplete } from './lib/clients.js';
import { FULL_SIZES, prepareImages } from './lib/images.js';
import { ProcSampler } from './lib/proc-stats.js';
import { startMirror } from './lib/servers.js';
import { publishMissing, startUpstream } from './lib/upstream.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const cache = process.env.LONGSHORE_BENCH_CACHE ?? join(tmpdir(), 'longshore-bench-cache');
const build = await buildLongshore(repoRoot, join(cache, 'build'));
const images = await prepareImages(join(cache, 'images-full'), 'full', FULL_SIZES);
const upstream = await startUpstream(join(cache, 'upstream-storage'));
await publishMissing(upstream, [images.multi, images.five, images.big]);
const n = Number(process.env.N ?? 8);
const workDir = mkdtempSync(join(cache, 'probe-'));
try {
  const mirror = await startMirror('longshore', {
    upstreamUrl: upstream.proxy.url, credentials: upstream.mirrorCredentials, workDir, build, nodeArgs: process.env.NODE_ARGS?.split(' ').filter(Boolean),
  });
  const layer = images.big.layers[0]!;
  const url = `${mirror.url}/v2/${images.big.repository}/blobs/${layer.digest}`;
  for (const phase of ['cold', 'warm', 'warm']) {
    const sampler = ProcSampler.start(mirror.pid);
    const { results, wall } = await concurrentGets(url, n, 900);
    const u = sampler.stop();
    expectComplete(results, layer.size, phase);
    console.log(`${phase} N=${n}: wall ${wall.toFixed(2)} s; RSS start ${(u.startRss / 1e6).toFixed(0)} peak ${(u.peakRss / 1e6).toFixed(0)} MB; CPU ${(u.cpuSeconds).toFixed(2)} s (${(u.cpuSeconds / n).toFixed(2)} s/GiB)`);
  }
  await mirror.stop();
} finally {
  await upstream.stop();
  rmSync(workDir, { recursive: true, force: true });
}
