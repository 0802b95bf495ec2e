// Scenario 5: warm manifest load. The multi-arch image's tag is fetched once through each of two fresh
// mirrors, then GET and HEAD by tag run at concurrency 32 for a fixed time after a short warm-up, the
// servers taking turns. GETs use wrk when it is installed. HEADs always use the node:net generator
// (bench/lib/loadgen-worker.ts): wrk 4.1 does not know that a HEAD response has no body, so it waits
// for Content-Length bytes and times out. Upstream requests during the measured runs are counted: a mirror that revalidates every
// tag request with the upstream pays for it here.
// Longshore runs at logLevel info here (one request line per request, into a file: bench/lib/servers.ts),
// as a production mirror does. Beside the two mirrors, a bare node:http server in its own process answers
// the same status, headers and body from memory (bench/lib/floor.ts), under the same load right after or
// before each Longshore run: the row "Longshore ÷ bare node:http" is the median of those pairs' ratios.
import { MANIFEST_ACCEPT, turnOrder, type ScenarioContext } from '../lib/context.js';
import { runLoad, type LoadResult } from '../lib/loadgen.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { describeTraffic, row, upstreamSettled, upstreamTraffic, type ScenarioResult, type UpstreamTraffic } from '../lib/results.js';
import { SERVER_KINDS, type MirrorServer, type ServerKind } from '../lib/servers.js';
import { median } from '../lib/stats.js';
import { startFloor, type FloorServer } from '../lib/floor.js';
import { join } from 'node:path';

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
  let floor: FloorServer | undefined;
  const floorRuns: Record<'GET' | 'HEAD', LoadRun[]> = { GET: [], HEAD: [] };
  try {
    const urls = {} as Record<ServerKind, string>;
    for (const kind of SERVER_KINDS) {
      mirrors[kind] = await ctx.startMirror(kind, undefined, kind === 'longshore' ? { logLevel: ctx.options.manifestLogLevel, logFile: join(ctx.workDir, 'scenario-5-longshore.log') } : {});
      urls[kind] = `${mirrors[kind].url}/v2/${image.repository}/manifests/${image.tag}`;
      const first = await fetch(urls[kind], { headers });
      await first.arrayBuffer();
      if (first.status !== 200 || first.headers.get('docker-content-digest') !== image.manifest.digest) {
        throw new Error(`${kind} answered the warm-up GET of ${image.repository}:${image.tag} with ${first.status} ${first.headers.get('docker-content-digest')}`);
      }
    }
    const sample = await fetch(urls.longshore, { headers });
    floor = await startFloor(sample.status, sample.headers, Buffer.from(await sample.arrayBuffer()));
    const floorUrl = `${floor.url}/v2/${image.repository}/manifests/${image.tag}`;
    for (const method of ['GET', 'HEAD'] as const) {
      const tool = toolFor(method);
      for (const url of [...SERVER_KINDS.map((k) => urls[k]), floorUrl]) await runLoad(tool, { url, method, headers, connections: CONNECTIONS, seconds: ctx.sizes.loadWarmupSeconds });
      const measureFloor = async (i: number) => {
        const load = loadSnapshot();
        const result = await runLoad(tool, { url: floorUrl, method, headers, connections: CONNECTIONS, seconds: ctx.sizes.loadSeconds });
        floorRuns[method].push({ result, load, traffic: upstreamTraffic(proxy, ctx.upstream.tokens) });
        ctx.log(`bare node:http ${method} #${i + 1}: ${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`);
      };
      for (let i = 0; i < ctx.sizes.loadRuns; i++) {
        // The floor runs next to Longshore's run in every turn, so each pair shares the machine's state.
        for (const kind of turnOrder(i)) {
          if (kind === 'longshore' && turnOrder(i)[0] === 'distribution') await measureFloor(i);
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
          if (kind === 'longshore' && turnOrder(i)[0] === 'longshore') await measureFloor(i);
        }
      }
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${SERVER_KINDS.filter((k) => mirrors[k]).map((k) => `--- ${k} log ---\n${mirrors[k].recentLog()}`).join('\n')}`);
  } finally {
    await floor?.stop();
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
      row(5, {
        metric: `${by}: Longshore ÷ bare node:http, requests/s`, unit: '×', better: 'higher', load: { longshore: per.longshore[method][0]!.load },
        values: { longshore: median(per.longshore[method].map((run, i) => run.result.requestsPerSecond / floorRuns[method][i]!.result.requestsPerSecond)) },
        target: '≥ 0.5', meets: (l) => l >= 0.5,
      }),
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
    details: { ...per, floor: floorRuns } as ScenarioResult['details'],
    notes: [
      ...SERVER_KINDS.flatMap((k) => (['GET', 'HEAD'] as const).map((m) => {
        const each = per[k][m].map((r) => `${r.result.requestsPerSecond.toFixed(0)} req/s, p99 ${r.result.p99Ms.toFixed(2)} ms`).join('; ');
        const total = (pick: (r: LoadRun) => number) => per[k][m].reduce((sum, r) => sum + pick(r), 0);
        return `${k} ${m}: ${each}; in all ${total((r) => r.result.requests)} requests, non-2xx ${total((r) => r.result.non2xx)}, ` +
          `socket errors ${total((r) => r.result.errors)}; upstream in the first run ${describeTraffic(per[k][m][0]!.traffic)}`;
      })),
      ...(['GET', 'HEAD'] as const).map((m) => `bare node:http ${m} (same body and headers, own process): ` +
        floorRuns[m].map((r, i) => `${r.result.requestsPerSecond.toFixed(0)} req/s, p99 ${r.result.p99Ms.toFixed(2)} ms, load ${r.load.load[0]} ` +
          `(Longshore ÷ bare ${(per.longshore[m][i]!.result.requestsPerSecond / r.result.requestsPerSecond).toFixed(2)})`).join('; ')),
      ctx.options.manifestLogLevel === 'info' ? 'Longshore ran at logLevel info: one request log line per request, written to a file.' : 'Longshore ran at logLevel warn (--manifest-log=warn): no request log lines.',
    ],
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }];
}

function totalRequests(t: UpstreamTraffic): number {
  return t.manifestGet + t.manifestHead + t.blobGet + t.blobHead + t.other + t.challenges + t.tokens;
}
