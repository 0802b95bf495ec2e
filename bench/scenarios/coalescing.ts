// Scenario 3: N clients GET the big layer's blob at the same instant from a mirror with an empty cache.
// One upstream download should serve them all (upstream bytes ÷ layer size = 1.00); the clients that
// did not cause the download ("followers") should see their first byte about as soon as the one that
// did. The server's RSS and CPU time are sampled throughout (scenario 6).
import { concurrentGets, expectComplete } from '../lib/clients.js';
import { turnOrder, type ScenarioContext } from '../lib/context.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { ProcSampler, type ProcUsage } from '../lib/proc-stats.js';
import { describeTraffic, row, upstreamSettled, upstreamTraffic, type Row, type ScenarioResult, type UpstreamTraffic } from '../lib/results.js';
import { SERVER_KINDS, type ServerKind } from '../lib/servers.js';
import { median } from '../lib/stats.js';
import { formatBytes } from '../lib/units.js';

interface CoalescingRun {
  n: number;
  wall: number;
  leaderTtfb: number;
  followersTtfbMedian: number;
  followersTtfbMax: number;
  clientSecondsMax: number;
  traffic: UpstreamTraffic;
  usage: ProcUsage;
  load: LoadSnapshot;
}

export async function coalescingScenario(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const started = process.hrtime.bigint();
  const layer = ctx.images.big.layers[0]!;
  const rows: Row[] = [];
  const details: Record<ServerKind, CoalescingRun[]> = { longshore: [], distribution: [] };
  for (const [i, n] of ctx.sizes.coalescingN.entries()) {
    const per = {} as Record<ServerKind, CoalescingRun>;
    for (const kind of turnOrder(i)) {
      const proxy = ctx.upstream.proxy;
      const mirror = await ctx.startMirror(kind);
      try {
        await upstreamSettled(proxy, 200);
        proxy.reset();
        ctx.upstream.tokens.reset();
        const url = `${mirror.url}/v2/${ctx.images.big.repository}/blobs/${layer.digest}`;
        const load = loadSnapshot();
        const sampler = ProcSampler.start(mirror.pid);
        // Bound: the slowest plausible case (no coalescing, N+1 copies through the counting proxy).
        const { results, wall } = await concurrentGets(url, n, 900);
        await upstreamSettled(proxy);
        const usage = sampler.stop();
        expectComplete(results, layer.size, `${kind}, ${n} concurrent cold GETs`);
        const ttfbs = results.map((r) => r.ttfb).sort((a, b) => a - b);
        const followers = ttfbs.slice(1);
        const run: CoalescingRun = {
          n, wall, load, usage,
          leaderTtfb: ttfbs[0]!,
          followersTtfbMedian: median(followers),
          followersTtfbMax: followers[followers.length - 1]!,
          clientSecondsMax: Math.max(...results.map((r) => r.total)),
          traffic: upstreamTraffic(proxy, ctx.upstream.tokens),
        };
        per[kind] = run;
        details[kind].push(run);
        ctx.resources.push({ phase: `3: ${n} concurrent cold GETs of the big layer`, kind, usage, servedBytes: n * layer.size, load, eightStreams: n === 8 });
        ctx.log(`${kind}, N=${n}: wall ${wall.toFixed(2)} s, upstream ${(run.traffic.blobBytes / layer.size).toFixed(2)} × layer; ` +
          `TTFB leader ${(run.leaderTtfb * 1000).toFixed(0)} ms, followers p50 ${(run.followersTtfbMedian * 1000).toFixed(0)} ms max ${(run.followersTtfbMax * 1000).toFixed(0)} ms; ${describeTraffic(run.traffic)}`);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- ${kind} log ---\n${mirror.recentLog()}`);
      } finally {
        await mirror.stop();
      }
    }
    const values = (pick: (r: CoalescingRun) => number) => ({ longshore: pick(per.longshore), distribution: pick(per.distribution) });
    const load = { longshore: per.longshore.load, distribution: per.distribution.load };
    rows.push(
      row(3, { metric: `N=${n}: upstream bytes ÷ layer size`, unit: '×', better: 'lower', values: values((r) => r.traffic.blobBytes / layer.size), load, target: '1.00', meets: (l) => l < 1.005 }),
      row(3, { metric: `N=${n}: wall time until every client has the layer`, unit: 's', better: 'lower', values: values((r) => r.wall), load }),
      row(3, { metric: `N=${n}: followers' time to first byte, median`, unit: 'ms', better: 'lower', values: values((r) => r.followersTtfbMedian * 1000), load }),
      row(3, { metric: `N=${n}: followers' time to first byte, max`, unit: 'ms', better: 'lower', values: values((r) => r.followersTtfbMax * 1000), load }),
    );
  }
  return [{
    id: 3,
    title: `Concurrent cold GETs of the big layer (${formatBytes(layer.size)})`,
    rows,
    details,
    notes: SERVER_KINDS.flatMap((k) => details[k].map((r) => `${k}, N=${r.n}: leader TTFB ${(r.leaderTtfb * 1000).toFixed(0)} ms; upstream ${describeTraffic(r.traffic)}`)),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }];
}
