// Scenario 5: warm manifest load. The multi-arch image's tag is fetched once through each of two fresh
// mirrors, then GET and HEAD by tag run at concurrency 32 for a fixed time after a short warm-up, the
// servers taking turns. GETs use wrk when it is installed. HEADs always use the node:net generator
// (bench/lib/loadgen-worker.ts): wrk 4.1 does not know that a HEAD response has no body, so it waits
// for Content-Length bytes and times out. Upstream requests during the measured runs are counted: a mirror that revalidates every
// tag request with the upstream pays for it here.
import { MANIFEST_ACCEPT, turnOrder, type ScenarioContext } from '../lib/context.js';
import { runLoad, type LoadResult } from '../lib/loadgen.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { describeTraffic, row, upstreamSettled, upstreamTraffic, type ScenarioResult, type UpstreamTraffic } from '../lib/results.js';
import { SERVER_KINDS, type MirrorServer, type ServerKind } from '../lib/servers.js';
import { median } from '../lib/stats.js';

const CONNECTIONS = 32;

interface LoadRun {
  result: LoadResult;
  traffic: UpstreamTraffic;
  load: LoadSnapshot;
}

export async function manifestLoadScenario(ctx: ScenarioContext, getTool: 'wrk' | 'net'): Promise<ScenarioResult[]> {
  const toolFor = (method: 'GET' | 'HEAD') => (method === 'GET' ? getTool : 'net');
  const started = process.hrtime.bigint();
  const image = ctx.images.multi;
  const per = {
    longshore: { GET: [], HEAD: [] },
    distribution: { GET: [], HEAD: [] },
  } as Record<ServerKind, Record<'GET' | 'HEAD', LoadRun[]>>;
  const proxy = ctx.upstream.proxy;
  const headers = { accept: MANIFEST_ACCEPT };
  // Both mirrors run for the whole scenario and take turns; the one not being measured is idle.
  const mirrors = {} as Record<ServerKind, MirrorServer>;
  try {
    const urls = {} as Record<ServerKind, string>;
    for (const kind of SERVER_KINDS) {
      mirrors[kind] = await ctx.startMirror(kind);
      urls[kind] = `${mirrors[kind].url}/v2/${image.repository}/manifests/${image.tag}`;
      const first = await fetch(urls[kind], { headers });
      await first.arrayBuffer();
      if (first.status !== 200 || first.headers.get('docker-content-digest') !== image.manifest.digest) {
        throw new Error(`${kind} answered the warm-up GET of ${image.repository}:${image.tag} with ${first.status} ${first.headers.get('docker-content-digest')}`);
      }
    }
    for (const method of ['GET', 'HEAD'] as const) {
      const tool = toolFor(method);
      for (const kind of SERVER_KINDS) await runLoad(tool, { url: urls[kind], method, headers, connections: CONNECTIONS, seconds: ctx.sizes.loadWarmupSeconds });
      for (let i = 0; i < ctx.sizes.loadRuns; i++) {
        for (const kind of turnOrder(i)) {
          await upstreamSettled(proxy, 200);
          proxy.reset();
          ctx.upstream.tokens.reset();
          const load = loadSnapshot();
          const result = await runLoad(tool, { url: urls[kind], method, headers, connections: CONNECTIONS, seconds: ctx.sizes.loadSeconds });
          await upstreamSettled(proxy, 200);
          const run = { result, load, traffic: upstreamTraffic(proxy, ctx.upstream.tokens) };
          per[kind][method].push(run);
          ctx.log(`${kind} ${method} #${i + 1}: ${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ` +
            `non-2xx ${result.non2xx}, errors ${result.errors}; upstream ${describeTraffic(run.traffic)}`);
        }
      }
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${SERVER_KINDS.filter((k) => mirrors[k]).map((k) => `--- ${k} log ---\n${mirrors[k].recentLog()}`).join('\n')}`);
  } finally {
    for (const kind of SERVER_KINDS) await mirrors[kind]?.stop();
  }
  const rows = (['GET', 'HEAD'] as const).flatMap((method) => {
    // Each value is the median over the runs (the most, for upstream requests); the rows show the load
    // when each server's first run started.
    const values = (pick: (r: LoadResult) => number) => ({
      longshore: median(per.longshore[method].map((run) => pick(run.result))),
      distribution: median(per.distribution[method].map((run) => pick(run.result))),
    });
    const load = { longshore: per.longshore[method][0]!.load, distribution: per.distribution[method][0]!.load };
    const by = `${method} by tag (${toolFor(method)})`;
    return [
      row(5, { metric: `${by}: requests/s`, unit: 'req/s', better: 'higher', values: values((r) => r.requestsPerSecond), load, target: '≥ distribution', meets: (l, d) => d !== null && l >= d }),
      row(5, { metric: `${by}: p50 latency`, unit: 'ms', better: 'lower', values: values((r) => r.p50Ms), load }),
      row(5, { metric: `${by}: p99 latency`, unit: 'ms', better: 'lower', values: values((r) => r.p99Ms), load, target: '< 5 ms', meets: (l) => l < 5 }),
      row(5, {
        metric: `${by}: upstream requests during a run, most in any run`, unit: 'req', better: 'lower', load,
        values: {
          longshore: Math.max(...per.longshore[method].map((run) => totalRequests(run.traffic))),
          distribution: Math.max(...per.distribution[method].map((run) => totalRequests(run.traffic))),
        },
      }),
    ];
  });
  const runs = ctx.sizes.loadRuns;
  return [{
    id: 5,
    title: `Warm manifest load: ${image.repository}:${image.tag} by tag, ${CONNECTIONS} connections, ${ctx.sizes.loadSeconds} s per run, ` +
      (runs > 1 ? `median of ${runs} runs` : '1 run'),
    rows,
    details: per,
    notes: SERVER_KINDS.flatMap((k) => (['GET', 'HEAD'] as const).map((m) => {
      const each = per[k][m].map((r) => `${r.result.requestsPerSecond.toFixed(0)} req/s, p99 ${r.result.p99Ms.toFixed(2)} ms`).join('; ');
      const total = (pick: (r: LoadRun) => number) => per[k][m].reduce((sum, r) => sum + pick(r), 0);
      return `${k} ${m}: ${each}; in all ${total((r) => r.result.requests)} requests, non-2xx ${total((r) => r.result.non2xx)}, ` +
        `socket errors ${total((r) => r.result.errors)}; upstream in the first run ${describeTraffic(per[k][m][0]!.traffic)}`;
    })),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }];
}

function totalRequests(t: UpstreamTraffic): number {
  return t.manifestGet + t.manifestHead + t.blobGet + t.blobHead + t.other + t.challenges + t.tokens;
}
