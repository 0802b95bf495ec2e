// Scenario 4: warm blob throughput. The big layer is pulled once through each of two fresh mirrors
// (untimed; the bench checks its digest), then read back with curl: one stream at a time, then 8
// streams at once, the servers taking turns. Their RSS and CPU time are sampled during the runs
// (scenario 6).
import { createHash } from 'node:crypto';
import { request } from 'undici';
import type { CountingProxy } from '../../test/support/e2e/counting-proxy.js';
import { concurrentGets, curlGet, expectComplete } from '../lib/clients.js';
import { turnOrder, type ScenarioContext } from '../lib/context.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { ProcSampler, combineUsage, type ProcUsage } from '../lib/proc-stats.js';
import { row, upstreamSettled, upstreamTraffic, type ScenarioResult, type UpstreamTraffic } from '../lib/results.js';
import { SERVER_KINDS, type MirrorServer, type ServerKind } from '../lib/servers.js';
import { median } from '../lib/stats.js';
import { formatBytes, MB } from '../lib/units.js';

const PARALLEL = 8;

interface ThroughputRun {
  singleMBps: number[];
  parallelMBps: number[];
  singleUsage: ProcUsage;
  parallelUsage: ProcUsage;
  singleLoad: LoadSnapshot;
  parallelLoad: LoadSnapshot;
  /** Upstream traffic while the warm reads ran (should be none). */
  traffic: UpstreamTraffic;
}

export async function throughputScenario(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const started = process.hrtime.bigint();
  const layer = ctx.images.big.layers[0]!;
  const proxy = ctx.upstream.proxy;
  const runs = ctx.sizes.throughputRuns;
  const singleRuns = ctx.sizes.singleStreamRuns;
  // Both mirrors run for the whole scenario and take turns, so that changing load from other work on
  // the machine spreads over both. The one not being measured is idle.
  const mirrors = {} as Record<ServerKind, MirrorServer>;
  try {
    for (const kind of SERVER_KINDS) mirrors[kind] = await ctx.startMirror(kind);
    const urls = {} as Record<ServerKind, string>;
    for (const kind of SERVER_KINDS) {
      urls[kind] = `${mirrors[kind].url}/v2/${ctx.images.big.repository}/blobs/${layer.digest}`;
      await verifiedGet(urls[kind], layer.digest, layer.size, kind);
      await warmUp(urls[kind], proxy, kind);
    }
    proxy.reset();
    ctx.upstream.tokens.reset();
    const per = {} as Record<ServerKind, ThroughputRun>;
    const single = { longshore: [] as ProcUsage[], distribution: [] as ProcUsage[] };
    const parallel = { longshore: [] as ProcUsage[], distribution: [] as ProcUsage[] };
    const singleMBps = { longshore: [] as number[], distribution: [] as number[] };
    const parallelMBps = { longshore: [] as number[], distribution: [] as number[] };
    const singleLoad = {} as Record<ServerKind, LoadSnapshot>;
    const parallelLoad = {} as Record<ServerKind, LoadSnapshot>;
    for (let i = 0; i < singleRuns; i++) {
      for (const kind of turnOrder(i)) {
        singleLoad[kind] ??= loadSnapshot();
        const sampler = ProcSampler.start(mirrors[kind].pid);
        const result = await curlGet(urls[kind], 600);
        single[kind].push(sampler.stop());
        expectComplete([result], layer.size, `${kind}, warm single-stream GET`);
        singleMBps[kind].push(layer.size / result.total / MB);
      }
    }
    for (let i = 0; i < runs; i++) {
      for (const kind of turnOrder(i)) {
        parallelLoad[kind] ??= loadSnapshot();
        const sampler = ProcSampler.start(mirrors[kind].pid);
        const { results, wall } = await concurrentGets(urls[kind], PARALLEL, 900);
        parallel[kind].push(sampler.stop());
        expectComplete(results, layer.size, `${kind}, warm ${PARALLEL}-stream GETs`);
        parallelMBps[kind].push((PARALLEL * layer.size) / wall / MB);
      }
    }
    await upstreamSettled(proxy);
    const traffic = upstreamTraffic(proxy, ctx.upstream.tokens);
    for (const kind of SERVER_KINDS) {
      const singleUsage = combineUsage(single[kind]);
      const parallelUsage = combineUsage(parallel[kind]);
      ctx.resources.push(
        { phase: '4: warm GETs of the big layer, 1 stream', kind, usage: singleUsage, servedBytes: singleRuns * layer.size, load: singleLoad[kind], eightStreams: false },
        { phase: `4: warm GETs of the big layer, ${PARALLEL} streams`, kind, usage: parallelUsage, servedBytes: runs * PARALLEL * layer.size, load: parallelLoad[kind], eightStreams: true },
      );
      per[kind] = {
        singleMBps: singleMBps[kind], parallelMBps: parallelMBps[kind], singleUsage, parallelUsage,
        singleLoad: singleLoad[kind], parallelLoad: parallelLoad[kind], traffic,
      };
      ctx.log(`${kind}: 1 stream ${singleMBps[kind].map((v) => v.toFixed(0)).join(', ')} MB/s; ${PARALLEL} streams ${parallelMBps[kind].map((v) => v.toFixed(0)).join(', ')} MB/s`);
    }
    const l = per.longshore;
    const d = per.distribution;
    return [{
      id: 4,
      title: `Warm blob throughput of the big layer (${formatBytes(layer.size)}), curl, median of ${singleRuns} single-stream and ${runs} 8-stream runs, servers taking turns`,
      rows: [
        row(4, {
          metric: 'single stream', unit: 'MB/s', better: 'higher', values: { longshore: median(l.singleMBps), distribution: median(d.singleMBps) },
          load: { longshore: l.singleLoad, distribution: d.singleLoad }, target: '≥ distribution', meets: (lv, dv) => dv !== null && lv >= dv,
        }),
        row(4, {
          metric: `${PARALLEL} parallel streams, aggregate`, unit: 'MB/s', better: 'higher', values: { longshore: median(l.parallelMBps), distribution: median(d.parallelMBps) },
          load: { longshore: l.parallelLoad, distribution: d.parallelLoad }, target: '≥ distribution', meets: (lv, dv) => dv !== null && lv >= dv,
        }),
      ],
      details: per,
      notes: [
        ...SERVER_KINDS.map((k) => `${k}: single-stream runs ${per[k].singleMBps.map((v) => v.toFixed(0)).join(', ')} MB/s; ` +
          `${PARALLEL}-stream runs ${per[k].parallelMBps.map((v) => v.toFixed(0)).join(', ')} MB/s`),
        `upstream blob GETs during the warm runs (both servers): ${traffic.blobGet}`,
      ],
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    }];
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${SERVER_KINDS.filter((k) => mirrors[k]).map((k) => `--- ${k} log ---\n${mirrors[k].recentLog()}`).join('\n')}`);
  } finally {
    for (const kind of SERVER_KINDS) await mirrors[kind]?.stop();
  }
}

/**
 * Repeats untimed GETs until one causes no upstream blob GET: a mirror may still be committing its
 * copy after the first client is done (distribution re-reads the blob to verify it before it moves it
 * into place, and fetches from the upstream again meanwhile). Bounded by `attempts`.
 */
async function warmUp(url: string, proxy: CountingProxy, kind: ServerKind, attempts = 10): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    await upstreamSettled(proxy);
    proxy.reset();
    const res = await request(url);
    await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
    await upstreamSettled(proxy);
    if (proxy.ofKind('blob', 'GET').length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`${kind} still fetched the big layer from the upstream after ${attempts} warm-up GETs`);
}

/** GETs the blob in-process and throws unless its bytes have the expected digest and size. */
async function verifiedGet(url: string, digest: string, size: number, kind: ServerKind): Promise<void> {
  const res = await request(url, { bodyTimeout: 120_000, headersTimeout: 120_000 });
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (res.statusCode !== 200 || bytes !== size || actual !== digest) {
    throw new Error(`${kind} served the big layer as ${res.statusCode}, ${bytes} bytes, ${actual}; expected ${size} bytes, ${digest}`);
  }
}
