// `npm run bench`: compares Longshore with Debian's docker-registry (distribution 2.8) in proxy mode,
// both in front of the same token-authenticated upstream, scenario by scenario (bench/README.md).
// Prints a Markdown table and writes bench/results/<commit>[-quick].md and .json (lib/results.ts).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnPath, missingTools } from '../test/support/e2e/tools.js';
import { buildLongshore } from './lib/build.js';
import type { MirrorExtras, ScenarioContext, Sizes } from './lib/context.js';
import { formatSummary, summarizeProfile } from './lib/cpu-profile.js';
import { FULL_SIZES, QUICK_SIZES, prepareImages } from './lib/images.js';
import { hasProc, machineInfo } from './lib/machine.js';
import { parseOptions, type ScenarioId } from './lib/options.js';
import { runNamedScenario } from './lib/named.js';
import { renderMarkdown } from './lib/report.js';
import { resultName, type RunResult, type ScenarioResult } from './lib/results.js';
import { startMirror, type MirrorServer, type ServerKind } from './lib/servers.js';
import { GiB, formatBytes, formatRate } from './lib/units.js';
import { publishMissing, startUpstream, type BenchUpstream } from './lib/upstream.js';
import { airgapScenario } from './scenarios/airgap.js';
import { coalescingScenario } from './scenarios/coalescing.js';
import { fleetScenario } from './scenarios/fleet.js';
import { manifestLoadScenario } from './scenarios/manifest-load.js';
import { pullScenarios } from './scenarios/pull.js';
import { pushScenario } from './scenarios/push.js';
import { resourcesScenario } from './scenarios/resources.js';
import { streamThroughScenario } from './scenarios/stream-through.js';
import { throughputScenario } from './scenarios/throughput.js';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

const FULL: Sizes = { coalescingN: [8, 32], loadSeconds: 10, loadWarmupSeconds: 2, loadRuns: 3, throughputRuns: 3, singleStreamRuns: 9, pullRepeats: 3 };
const QUICK: Sizes = { coalescingN: [8, 32], loadSeconds: 3, loadWarmupSeconds: 1, loadRuns: 1, throughputRuns: 2, singleStreamRuns: 3, pullRepeats: 1 };
/** Free space the cache dir needs: images, the upstream's copy of them, one mirror's cache, a pull. */
const DISK_NEEDED = { full: 6 * GiB, quick: 2 * GiB };

const live = new Set<MirrorServer>();
let upstream: BenchUpstream | undefined;
let workDir: string | undefined;

async function teardown(): Promise<void> {
  for (const server of live) await server.stop().catch(() => undefined);
  live.clear();
  await upstream?.stop().catch(() => undefined);
  upstream = undefined;
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const runStarted = new Date();
  const options = parseOptions(process.argv.slice(2), REPO_ROOT);
  const mode = options.quick ? 'quick' : 'full';
  const sizes = options.quick ? QUICK : FULL;
  // In-process scenarios first: they need none of the tools below.
  for (const name of [...options.named].sort()) await runNamedScenario(name, options, runStarted, REPO_ROOT);
  if (options.only.size === 0) return;

  const missing = [
    ...missingTools(['docker-registry', 'skopeo', 'openssl', ...(options.only.has(8) ? ['haproxy' as const] : [])]),
    ...(findOnPath('curl') ? [] : ['curl not found (Debian package curl)']),
  ];
  if (missing.length > 0) throw new Error(`the bench needs: ${missing.join('; ')}`);
  if (!hasProc()) throw new Error('the bench reads /proc for RSS and CPU time: run it on Linux');
  const wrkPath = findOnPath('wrk');
  let loadgen: 'wrk' | 'net' = options.loadgen === 'auto' ? (wrkPath ? 'wrk' : 'net') : options.loadgen;
  if (loadgen === 'wrk' && !wrkPath) throw new Error('--loadgen=wrk: wrk not found (Debian package wrk: apt-get install wrk)');
  if (options.loadgen === 'auto' && !wrkPath) {
    console.log('wrk not found (Debian package wrk): scenario 5 uses the built-in node:net load generator (bench/lib/loadgen-worker.ts) for GETs too');
    loadgen = 'net';
  }

  mkdirSync(options.cacheDir, { recursive: true });
  const disk = statfsSync(options.cacheDir);
  const free = disk.bavail * disk.bsize;
  if (free < DISK_NEEDED[mode]) {
    throw new Error(`${options.cacheDir} has ${formatBytes(free)} free; the ${mode} bench needs ${formatBytes(DISK_NEEDED[mode])}`);
  }

  const machine = machineInfo(REPO_ROOT, wrkPath);
  console.log(`Longshore bench (${mode}): ${machine.cpuModel}, ${machine.cores} cores, ${(machine.memoryBytes / GiB).toFixed(1)} GiB, Node ${machine.node}, load ${machine.loadAtStart.join(' / ')}`);
  console.log(`cache ${options.cacheDir} (${formatBytes(free)} free); scenarios ${[...options.only].sort().join(', ')}`);
  if (machine.loadAtStart[0] > machine.cores) {
    console.log(`warning: the 1-minute load average (${machine.loadAtStart[0]}) exceeds the core count (${machine.cores}): other work is running, expect noisy numbers`);
  }

  console.log('building Longshore (tsc) …');
  const build = await buildLongshore(REPO_ROOT, join(options.cacheDir, 'build'));
  if (build.typeErrors) console.log(`  warning: src/ does not type-check; benchmarking the emitted JavaScript anyway:\n${build.typeErrors.split('\n').slice(0, 10).join('\n')}`);

  console.log('preparing images …');
  const images = await prepareImages(join(options.cacheDir, `images-${mode}`), mode, options.quick ? QUICK_SIZES : FULL_SIZES);

  console.log('starting the upstream (token server, docker-registry, counting proxy) …');
  upstream = await startUpstream(join(options.cacheDir, 'upstream-storage'));
  await publishMissing(upstream, [images.multi, images.five, images.big]);

  workDir = mkdtempSync(join(options.cacheDir, 'work-'));
  const stamp = runStarted.toISOString().replace(/[:.]/g, '-');
  const profileRoot = join(options.cacheDir, 'profiles', stamp);
  let current = 0;
  let scenarioStarted = process.hrtime.bigint();
  const up = upstream;
  const scratch = workDir;
  const ctx: ScenarioContext = {
    options,
    sizes,
    images,
    upstream: up,
    workDir: scratch,
    resources: [],
    log: (message) => console.log(`  [${current} +${(Number(process.hrtime.bigint() - scenarioStarted) / 1e9).toFixed(1)} s] ${message}`),
    async startMirror(kind: ServerKind, upstreamUrl?: string, extra?: MirrorExtras) {
      const cpuProfileDir = options.profile && kind === 'longshore' ? join(profileRoot, `scenario-${current}`) : undefined;
      if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });
      const server = await startMirror(kind, {
        upstreamUrl: upstreamUrl ?? up.proxy.url,
        credentials: up.mirrorCredentials,
        workDir: join(scratch, 'servers'),
        build,
        ...(cpuProfileDir ? { cpuProfileDir } : {}),
        ...extra,
      });
      live.add(server);
      const stop = server.stop;
      return { ...server, stop: async () => { live.delete(server); await stop(); } };
    },
  };

  const results: ScenarioResult[] = [];
  const profiles: RunResult['profiles'] = [];
  const runScenario = async (id: ScenarioId, title: string, body: () => Promise<ScenarioResult[]>) => {
    current = id;
    scenarioStarted = process.hrtime.bigint();
    console.log(`scenario ${id}: ${title}`);
    const produced = await body();
    results.push(...produced);
    const dir = join(profileRoot, `scenario-${id}`);
    if (options.profile && existsSync(dir)) {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
        const top = formatSummary(summarizeProfile(join(dir, file), 20));
        profiles.push({ scenario: id, file: join(dir, file), top });
        console.log(`  CPU profile ${join(dir, file)}:\n${top.split('\n').map((l) => `    ${l}`).join('\n')}`);
      }
    }
  };

  const only = options.only;
  if (only.has(1) || only.has(2)) {
    await runScenario(1, 'cold and warm pulls through skopeo', async () => (await pullScenarios(ctx)).filter((r) => only.has(r.id as ScenarioId)));
  }
  if (only.has(3)) await runScenario(3, 'concurrent cold GETs of the big layer', () => coalescingScenario(ctx));
  if (only.has(4)) await runScenario(4, 'warm blob throughput', () => throughputScenario(ctx));
  if (only.has(5)) await runScenario(5, `warm manifest load (GET: ${loadgen}, HEAD: net)`, () => manifestLoadScenario(ctx, loadgen));
  if (only.has(6)) results.push(...resourcesScenario(ctx));
  if (only.has(7)) await runScenario(7, `stream-through over a ${formatRate(options.throttle)} link`, () => streamThroughScenario(ctx));
  if (only.has(8)) await runScenario(8, 'the same cold storm through one node and through a three-node fleet', () => fleetScenario(ctx));
  if (only.has(9)) await runScenario(9, 'air gap: warm, export and import against skopeo', () => airgapScenario(ctx));
  if (only.has(10)) await runScenario(10, 'push of the 1 GiB layer into a local repository', () => pushScenario(ctx));
  results.sort((a, b) => a.id - b.id);

  await teardown();

  const run: RunResult = {
    startedAt: runStarted.toISOString(),
    finishedAt: new Date().toISOString(),
    mode,
    machine,
    settings: {
      scenarios: [...only].sort(),
      throttle: options.throttle,
      throttleScenarios: options.throttleGiven ? [1, 2, 7] : [7],
      loadgen,
      coalescingN: sizes.coalescingN,
      manifestLoadSeconds: sizes.loadSeconds,
      manifestLoadRuns: sizes.loadRuns,
      throughputRuns: sizes.throughputRuns,
      singleStreamRuns: sizes.singleStreamRuns,
      pullRepeats: sizes.pullRepeats,
      images: Object.fromEntries(Object.values(images).map((i) => [i.name, { ref: `${i.repository}:${i.tag}`, bytes: i.pullBytes, layers: i.layers.length }])),
      ...(build.typeErrors ? { buildTypeErrors: true } : {}),
    },
    scenarios: results,
    profiles,
  };
  const markdown = renderMarkdown(run);
  console.log(`\n${markdown}`);
  if (!options.noWrite) {
    mkdirSync(options.resultsDir, { recursive: true });
    const name = resultName(options.resultsDir, machine, mode === 'quick' ? ['quick'] : []);
    writeFileSync(join(options.resultsDir, `${name}.md`), markdown);
    writeFileSync(join(options.resultsDir, `${name}.json`), `${JSON.stringify(run, null, 2)}\n`);
    console.log(`wrote ${join(options.resultsDir, name)}.{md,json}`);
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the servers this bench started …`);
    void teardown().finally(() => process.exit(130));
  });
}
// The servers are child processes that would outlive a crashed bench: stop them first.
process.once('uncaughtException', (err) => {
  console.error(`bench failed: ${err.stack ?? String(err)}`);
  void teardown().finally(() => process.exit(1));
});

try {
  await main();
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  await teardown();
  process.exitCode = 1;
}
