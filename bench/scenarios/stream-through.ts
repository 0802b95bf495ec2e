// Scenario 7: stream-through over an emulated WAN link. The five-layer image is pulled with skopeo
// directly from the upstream through the throttled link, then through a mirror with an empty cache
// that reaches the upstream through the same link. A mirror that streams each layer to the client
// while it downloads it takes about as long as the direct pull (ratio ≤ 1.05); one that stores a
// layer before serving it, or downloads it twice, takes longer. Repeated with fresh mirrors, the
// servers taking turns; each ratio compares a mirror pull with the direct pull just before it. Each
// fresh mirror pulls the small multi-arch image first, so the measured pull is not the process's first.
import { skopeoPull } from '../lib/clients.js';
import { turnOrder, type ScenarioContext } from '../lib/context.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { describeTraffic, row, upstreamSettled, upstreamTraffic, type ScenarioResult, type UpstreamTraffic } from '../lib/results.js';
import { SERVER_KINDS, type ServerKind } from '../lib/servers.js';
import { median } from '../lib/stats.js';
import { formatBytes, formatRate } from '../lib/units.js';
import { startThrottledLink } from '../lib/upstream.js';

interface StreamThroughRun {
  direct: number;
  mirrored: number;
  ratio: number;
  traffic: UpstreamTraffic;
  load: LoadSnapshot;
}

const PULL_TIMEOUT_MS = 600_000;

export async function streamThroughScenario(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const started = process.hrtime.bigint();
  const image = ctx.images.five;
  const link = await startThrottledLink(ctx.upstream, ctx.options.throttle);
  const linkHost = new URL(link.proxy.url).host;
  const runs: Record<ServerKind, StreamThroughRun[]> = { longshore: [], distribution: [] };
  try {
    for (let i = 0; i < ctx.sizes.pullRepeats; i++) {
      for (const kind of turnOrder(i)) {
        const load = loadSnapshot();
        const direct = await skopeoPull(linkHost, image.repository, image.tag, {
          credentials: ctx.upstream.mirrorCredentials, workDir: ctx.workDir, timeoutMs: PULL_TIMEOUT_MS,
        });
        const mirror = await ctx.startMirror(kind, link.proxy.url);
        try {
          // The process serves one pull of another image first: a mirror in service is past its start-up.
          // Through a fresh Longshore process the first layer took 49-122 ms longer than in the direct
          // pull, after one earlier pull 15-66 ms (bench/probe-stream-through.ts, NOTES §5). bench/five
          // is still not cached, and its token scope still unused.
          await skopeoPull(mirror.host, ctx.images.multi.repository, ctx.images.multi.tag, { workDir: ctx.workDir, timeoutMs: PULL_TIMEOUT_MS });
          await upstreamSettled(link.proxy, 200);
          link.proxy.reset();
          ctx.upstream.tokens.reset();
          const mirrored = await skopeoPull(mirror.host, image.repository, image.tag, { workDir: ctx.workDir, timeoutMs: PULL_TIMEOUT_MS });
          await upstreamSettled(link.proxy);
          const run = { direct, mirrored, ratio: mirrored / direct, load, traffic: upstreamTraffic(link.proxy, ctx.upstream.tokens) };
          runs[kind].push(run);
          ctx.log(`${kind} #${i + 1}: direct ${direct.toFixed(2)} s, through the mirror ${mirrored.toFixed(2)} s (${run.ratio.toFixed(3)}); upstream ${describeTraffic(run.traffic)}`);
        } catch (err) {
          throw new Error(`${(err as Error).message}\n--- ${kind} log ---\n${mirror.recentLog()}`);
        } finally {
          await mirror.stop();
        }
      }
    }
  } finally {
    await link.stop();
  }
  const med = (pick: (r: StreamThroughRun) => number) => ({ longshore: median(runs.longshore.map(pick)), distribution: median(runs.distribution.map(pick)) });
  const load = { longshore: runs.longshore[0]!.load, distribution: runs.distribution[0]!.load };
  const of = ctx.sizes.pullRepeats > 1 ? `, median of ${ctx.sizes.pullRepeats}` : '';
  return [{
    id: 7,
    title: `Stream-through: cold pull of ${image.repository}:${image.tag} (${formatBytes(image.pullBytes)}) over a ${formatRate(ctx.options.throttle)} link${of}`,
    rows: [
      row(7, { metric: 'direct pull from the upstream (reference, measured before each mirror pull)', unit: 's', better: 'none', values: med((r) => r.direct), load }),
      row(7, { metric: 'cold pull through the mirror', unit: 's', better: 'lower', values: med((r) => r.mirrored), load }),
      row(7, { metric: 'stream-through ratio (mirror ÷ direct)', unit: '×', better: 'lower', values: med((r) => r.ratio), load, target: '≤ 1.05', meets: (l) => l <= 1.05 }),
      row(7, { metric: 'upstream blob bytes ÷ image bytes', unit: '×', better: 'lower', values: med((r) => r.traffic.blobBytes / image.pullBytes), load, target: '1.00', meets: (l) => l < 1.005 }),
    ],
    details: runs,
    notes: SERVER_KINDS.flatMap((k) => [
      `${k}: direct / mirror pairs ${runs[k].map((r) => `${r.direct.toFixed(2)} / ${r.mirrored.toFixed(2)} s`).join(', ')}; ratios ${runs[k].map((r) => r.ratio.toFixed(3)).join(', ')}`,
      `${k}, upstream traffic of the first mirror pull: ${describeTraffic(runs[k][0]!.traffic)}`,
    ]),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }];
}
