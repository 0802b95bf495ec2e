// A Longshore-only probe of scenario 7 for development (bench/NOTES.md §5): the five-layer image pulled
// with skopeo directly over the emulated 50 MB/s link, then through a fresh Longshore with an empty
// cache over the same link, N times. Prints each upstream request as the link's counting proxy saw it:
// start and end (ms since the pull started), the gap since the previous request ended, status, bytes.
//   node --import tsx bench/probe-stream-through.ts      N=2 by default; WARM=1 lets each fresh
//   mirror pull bench/multi first, as scenario 7 does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CountingProxy } from '../test/support/e2e/counting-proxy.js';
import { buildLongshore } from './lib/build.js';
import { skopeoPull } from './lib/clients.js';
import { FULL_SIZES, prepareImages } from './lib/images.js';
import { startMirror } from './lib/servers.js';
import { publishMissing, startThrottledLink, startUpstream } from './lib/upstream.js';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const cache = process.env.LONGSHORE_BENCH_CACHE ?? join(tmpdir(), 'longshore-bench-cache');
const build = await buildLongshore(repoRoot, join(cache, 'build'));
const images = await prepareImages(join(cache, 'images-full'), 'full', FULL_SIZES);
const upstream = await startUpstream(join(cache, 'upstream-storage'));
await publishMissing(upstream, [images.five, images.multi]);
const link = await startThrottledLink(upstream, 50e6);
const linkHost = new URL(link.proxy.url).host;
const workDir = mkdtempSync(join(cache, 'probe-'));
const pull = (host: string, image: { repository: string; tag: string }, direct = false) =>
  skopeoPull(host, image.repository, image.tag, { workDir, timeoutMs: 600_000, ...(direct ? { credentials: upstream.mirrorCredentials } : {}) });

function timeline(label: string, proxy: CountingProxy, t0: number): void {
  let previousEnd = t0;
  for (const r of proxy.requests) {
    const what = (r.reference ?? r.path).slice(0, 19).padEnd(19);
    console.log(`${label} ${r.method.padEnd(4)} ${r.kind.padEnd(8)} ${what} start ${(r.startedAt - t0).toFixed(0).padStart(5)} ` +
      `(+${(r.startedAt - previousEnd).toFixed(0).padStart(4)}) end ${(r.endedAt - t0).toFixed(0).padStart(5)} ${r.status} ${r.bytes}`);
    previousEnd = r.endedAt;
  }
}

try {
  for (let i = 0; i < Number(process.env.N ?? 2); i++) {
    link.proxy.reset();
    let t0 = performance.now();
    const direct = await pull(linkHost, images.five, true);
    timeline('direct', link.proxy, t0);
    const mirror = await startMirror('longshore', { upstreamUrl: link.proxy.url, credentials: upstream.mirrorCredentials, workDir, build });
    try {
      if (process.env.WARM) await pull(mirror.host, images.multi);
      link.proxy.reset();
      t0 = performance.now();
      const mirrored = await pull(mirror.host, images.five);
      timeline('mirror', link.proxy, t0);
      console.log(`direct ${(direct * 1000).toFixed(0)} ms, through the mirror ${(mirrored * 1000).toFixed(0)} ms: ratio ${(mirrored / direct).toFixed(3)}`);
    } finally {
      await mirror.stop();
    }
  }
} finally {
  await link.stop();
  await upstream.stop();
  rmSync(workDir, { recursive: true, force: true });
}
