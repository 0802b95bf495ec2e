// Scenarios 1 and 2: a real client (skopeo copy to a `dir:` layout) pulls the five-layer image through
// a mirror with an empty cache (cold), then the small multi-arch image (cold, latency-bound), then the
// five-layer image again (warm). Upstream traffic is counted for each pull. Repeated with fresh
// mirrors, the servers taking turns; the report shows medians. With --throttle the upstream is
// reached through the emulated WAN link.
import { skopeoPull } from '../lib/clients.js';
import { turnOrder, type ScenarioContext } from '../lib/context.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { describeTraffic, row, upstreamSettled, upstreamTraffic, type ScenarioResult, type UpstreamTraffic } from '../lib/results.js';
import { SERVER_KINDS, type ServerKind } from '../lib/servers.js';
import { median } from '../lib/stats.js';
import { formatBytes, formatRate } from '../lib/units.js';
import { startThrottledLink } from '../lib/upstream.js';

interface PullRun {
  seconds: number;
  traffic: UpstreamTraffic;
  load: LoadSnapshot;
}

interface PullRound {
  cold: PullRun;
  coldMulti: PullRun;
  warm: PullRun;
}

const PULL_TIMEOUT_MS = 600_000;

export async function pullScenarios(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const { five, multi } = ctx.images;
  const started = process.hrtime.bigint();
  const rounds: Record<ServerKind, PullRound[]> = { longshore: [], distribution: [] };
  for (let i = 0; i < ctx.sizes.pullRepeats; i++) {
    for (const kind of turnOrder(i)) {
      const link = ctx.options.throttleGiven ? await startThrottledLink(ctx.upstream, ctx.options.throttle) : undefined;
      const proxy = link?.proxy ?? ctx.upstream.proxy;
      const mirror = await ctx.startMirror(kind, proxy.url);
      try {
        const pull = async (repository: string, tag: string): Promise<PullRun> => {
          await upstreamSettled(proxy, 200);
          proxy.reset();
          ctx.upstream.tokens.reset();
          const load = loadSnapshot();
          const seconds = await skopeoPull(mirror.host, repository, tag, { workDir: ctx.workDir, timeoutMs: PULL_TIMEOUT_MS });
          // A mirror may go on filling its cache after the client is done; count that too.
          await upstreamSettled(proxy);
          return { seconds, traffic: upstreamTraffic(proxy, ctx.upstream.tokens), load };
        };
        const cold = await pull(five.repository, five.tag);
        const coldMulti = await pull(multi.repository, multi.tag);
        // distribution verifies a fetched blob (reading it back) before it moves it into place, after
        // the upstream transfer has ended; give it a moment so that "warm" means cached for both.
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const warm = await pull(five.repository, five.tag);
        rounds[kind].push({ cold, coldMulti, warm });
        ctx.log(`${kind} #${i + 1}: cold ${cold.seconds.toFixed(2)} s, multi-arch cold ${coldMulti.seconds.toFixed(2)} s, warm ${warm.seconds.toFixed(2)} s; ` +
          `cold upstream ${describeTraffic(cold.traffic)}; warm upstream ${describeTraffic(warm.traffic)}`);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- ${kind} log ---\n${mirror.recentLog()}`);
      } finally {
        await mirror.stop();
        await link?.stop();
      }
    }
  }
  /** Median of a time over the rounds; for request counts, the largest (a target of 0 must hold every time). */
  const med = (pick: (r: PullRound) => number) => ({ longshore: median(rounds.longshore.map(pick)), distribution: median(rounds.distribution.map(pick)) });
  const most = (pick: (r: PullRound) => number) => ({ longshore: Math.max(...rounds.longshore.map(pick)), distribution: Math.max(...rounds.distribution.map(pick)) });
  const loads = (pick: (r: PullRound) => PullRun) => ({ longshore: pick(rounds.longshore[0]!).load, distribution: pick(rounds.distribution[0]!).load });
  const requests = (t: UpstreamTraffic) => t.manifestGet + t.manifestHead + t.blobGet + t.blobHead + t.other + t.challenges + t.tokens;
  const link = ctx.options.throttleGiven ? ` over a ${formatRate(ctx.options.throttle)} link` : '';
  const fiveLabel = `${five.repository}:${five.tag} (${formatBytes(five.pullBytes)}, ${five.layers.length} layers)`;
  const times = (k: ServerKind, pick: (r: PullRound) => number) => rounds[k].map((r) => pick(r).toFixed(2)).join(', ');
  const of = ctx.sizes.pullRepeats > 1 ? `, median of ${ctx.sizes.pullRepeats}` : '';
  const cold: ScenarioResult = {
    id: 1,
    title: `Cold pull through skopeo${link}${of}`,
    rows: [
      row(1, { metric: `cold pull of ${fiveLabel}: wall time`, unit: 's', better: 'lower', values: med((r) => r.cold.seconds), load: loads((r) => r.cold) }),
      row(1, {
        metric: 'upstream blob bytes ÷ image bytes', unit: '×', better: 'lower', values: most((r) => r.cold.traffic.blobBytes / five.pullBytes),
        load: loads((r) => r.cold), target: '1.00', meets: (l) => l < 1.005,
      }),
      row(1, { metric: 'upstream requests (all kinds, tokens included)', unit: 'req', better: 'lower', values: most((r) => requests(r.cold.traffic)), load: loads((r) => r.cold) }),
      row(1, { metric: `cold pull of ${multi.repository}:${multi.tag} (multi-arch, ${formatBytes(multi.pullBytes)}): wall time`, unit: 's', better: 'lower', values: med((r) => r.coldMulti.seconds), load: loads((r) => r.coldMulti) }),
    ],
    details: { longshore: rounds.longshore.map(({ cold: c, coldMulti }) => ({ cold: c, coldMulti })), distribution: rounds.distribution.map(({ cold: c, coldMulti }) => ({ cold: c, coldMulti })) },
    notes: SERVER_KINDS.flatMap((k) => [
      `${k}: cold pulls ${times(k, (r) => r.cold.seconds)} s; multi-arch cold pulls ${times(k, (r) => r.coldMulti.seconds)} s`,
      `${k}, upstream traffic of the first cold pull: ${describeTraffic(rounds[k][0]!.cold.traffic)}`,
    ]),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
  const warm: ScenarioResult = {
    id: 2,
    title: `Warm pull (same mirror, right after scenario 1)${of}`,
    rows: [
      row(2, { metric: `warm pull of ${fiveLabel}: wall time`, unit: 's', better: 'lower', values: med((r) => r.warm.seconds), load: loads((r) => r.warm) }),
      row(2, {
        metric: 'upstream blob requests (GET + HEAD), most in any round', unit: 'req', better: 'lower', values: most((r) => r.warm.traffic.blobGet + r.warm.traffic.blobHead),
        load: loads((r) => r.warm), target: '0', meets: (l) => l === 0,
      }),
      row(2, {
        metric: 'upstream manifest GETs, most in any round', unit: 'req', better: 'lower', values: most((r) => r.warm.traffic.manifestGet),
        load: loads((r) => r.warm), target: '0', meets: (l) => l === 0,
      }),
      row(2, { metric: 'upstream requests (all kinds, tokens included)', unit: 'req', better: 'lower', values: most((r) => requests(r.warm.traffic)), load: loads((r) => r.warm) }),
    ],
    details: { longshore: rounds.longshore.map((r) => r.warm), distribution: rounds.distribution.map((r) => r.warm) },
    notes: SERVER_KINDS.flatMap((k) => [
      `${k}: warm pulls ${times(k, (r) => r.warm.seconds)} s`,
      `${k}, upstream traffic of the first warm pull: ${describeTraffic(rounds[k][0]!.warm.traffic)}`,
    ]),
    seconds: 0,
  };
  return [cold, warm];
}
