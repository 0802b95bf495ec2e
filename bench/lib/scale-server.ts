// The server process of `--only=scale`: Longshore's compiled build (the bench's tsc snapshot, not tsx),
// started on a prepared data directory, with an event-loop delay histogram running from the first line,
// driven by its parent over IPC. Each command measures one phase and resets the histogram.
//   argv: <dist/app.js> <config JSON>
//   → { type: 'listening', url, ms, eld, modules }   as soon as it serves (eld: after module loading)
//   → { type: 'reconciled', ms, eld, result } when the background reconciliation is done
//   ← { cmd: 'batch', times }      choose eviction batches of 256 (as the evictor does), timed
//   ← { cmd: 'hits', digests }     record a hit on each digest, then flush them as the server does (measured)
//   ← { cmd: 'evict', target }     Evictor.run(target)
//   ← { cmd: 'rss' }, { cmd: 'close' }
// Phase reports carry `pauses` (PauseReport: the longest gaps with the GCs and slow calls overlapping
// them); with SCALE_PROFILE_DIR set, the hit flush and the eviction are CPU-profiled, a file each.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { constants as perf, monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const started = performance.now();
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();

// Where each long pause went (issue 17): the loop's own gaps, the GCs that overlap them, and the timed
// synchronous calls (see instrument()) that overlap them.
/** Gaps between two ticks of a 5 ms timer longer than this are recorded. */
const GAP_MS = 30;
interface Span { start: number; end: number; what: string }
const gcs: Span[] = [];
const calls: Span[] = [];
const gaps: Span[] = [];
const GC_KINDS: Record<number, string> = {
  [perf.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perf.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perf.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perf.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
    gcs.push({ start: e.startTime, end: e.startTime + e.duration, what: GC_KINDS[e.detail?.kind ?? 0] ?? 'gc' });
  }
}).observe({ entryTypes: ['gc'] });
// The main thread's time on a CPU and waiting for one (Linux schedstat, ns): a gap spent waiting in the
// run queue is CPU starvation (other processes, the load generator), not work of ours.
const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
function schedstat(): [number, number] {
  try {
    const [cpu, wait] = readFileSync(SCHEDSTAT, 'utf8').split(' ').map(Number) as [number, number];
    return [cpu / 1e6, wait / 1e6];
  } catch {
    return [0, 0];
  }
}
interface Gap extends Span { cpuMs: number; waitMs: number }
let lastTick = performance.now();
let lastSched = schedstat();
setInterval(() => {
  const now = performance.now();
  const sched = schedstat();
  if (now - lastTick > GAP_MS) (gaps as Gap[]).push({ start: lastTick, end: now, what: 'gap', cpuMs: sched[0] - lastSched[0], waitMs: sched[1] - lastSched[1] });
  lastTick = now;
  lastSched = sched;
}, 5).unref();

/** Records every call of obj[name] that takes over 10 ms (synchronous part only). */
function instrument(obj: Record<string, unknown>, name: string, label = name): void {
  const original = obj[name] as (...args: unknown[]) => unknown;
  obj[name] = function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      const t1 = performance.now();
      if (t1 - t0 > 10) calls.push({ start: t0, end: t1, what: label });
    }
  };
}

export interface PauseReport {
  /** The longest gaps of the phase, each with what overlapped it. */
  /** cpu: the main thread ran; wait: it was runnable but waited for a CPU; the rest it slept (I/O). */
  longest: Array<{ ms: number; cpu: number; wait: number; gc: string[]; calls: string[] }>;
  /** Over all gaps of the phase: ms, and how much of it the main thread waited for a CPU. */
  gapMs: number;
  gapWaitMs: number;
  /** Size of the WAL file at the end of the phase. */
  walBytes: number;
  /** GC time in the phase, by kind, and the longest single GC. */
  gc: Record<string, { count: number; ms: number; maxMs: number }>;
  /** Timed synchronous calls over 10 ms, by name: count and longest. */
  slowCalls: Record<string, { count: number; maxMs: number }>;
  gaps: number;
}

function pauses(since: number): PauseReport {
  const overlap = (a: Span, b: Span) => a.start < b.end && b.start < a.end;
  const phaseGaps = (gaps as Gap[]).filter((g) => g.end >= since);
  const phaseGcs = gcs.filter((g) => g.end >= since);
  const phaseCalls = calls.filter((c) => c.end >= since);
  const longest = phaseGaps.sort((a, b) => (b.end - b.start) - (a.end - a.start)).slice(0, 8).map((g) => ({
    ms: Math.round(g.end - g.start),
    cpu: Math.round(g.cpuMs),
    wait: Math.round(g.waitMs),
    gc: phaseGcs.filter((x) => overlap(x, g)).map((x) => `${x.what} ${(x.end - x.start).toFixed(1)}`),
    calls: phaseCalls.filter((x) => overlap(x, g)).map((x) => `${x.what} ${(x.end - x.start).toFixed(1)}`),
  }));
  const gc: PauseReport['gc'] = {};
  for (const g of phaseGcs) {
    const e = (gc[g.what] ??= { count: 0, ms: 0, maxMs: 0 });
    e.count++;
    e.ms = Math.round((e.ms + g.end - g.start) * 10) / 10;
    e.maxMs = Math.max(e.maxMs, Math.round((g.end - g.start) * 10) / 10);
  }
  const slowCalls: PauseReport['slowCalls'] = {};
  for (const c of phaseCalls) {
    const e = (slowCalls[c.what] ??= { count: 0, maxMs: 0 });
    e.count++;
    e.maxMs = Math.max(e.maxMs, Math.round((c.end - c.start) * 10) / 10);
  }
  let walBytes = 0;
  try {
    walBytes = statSync(`${dataDir}/longshore.db-wal`).size;
  } catch { /* no WAL */ }
  const gapMs = Math.round(phaseGaps.reduce((a, g) => a + g.end - g.start, 0));
  const gapWaitMs = Math.round(phaseGaps.reduce((a, g) => a + g.waitMs, 0));
  return { longest, gc, slowCalls, gaps: phaseGaps.length, gapMs, gapWaitMs, walBytes };
}

// SCALE_PROFILE_DIR: a CPU profile of the hit flush and of the eviction, one file each.
const profileDir = process.env.SCALE_PROFILE_DIR;
const inspector = profileDir ? new Session() : undefined;
inspector?.connect();
const post = (method: string, params?: object) => new Promise<unknown>((resolve, reject) =>
  inspector!.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));
async function profileStart(): Promise<void> {
  if (!inspector) return;
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 500 });
  await post('Profiler.start');
}
async function profileStop(name: string): Promise<string | undefined> {
  if (!inspector) return undefined;
  const { profile } = (await post('Profiler.stop')) as { profile: object };
  const file = join(profileDir!, `${name}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  return file;
}

export interface DelayStats {
  maxMs: number;
  p99Ms: number;
  meanMs: number;
}

function take(): DelayStats {
  const stats = { maxMs: delay.max / 1e6, p99Ms: delay.percentile(99) / 1e6, meanMs: delay.mean / 1e6 };
  delay.reset();
  return stats;
}

const send = (message: object) => process.send!(message);

const [appPath, configJson] = process.argv.slice(2) as [string, string];
type AppModule = typeof import('../../src/app.js');
type ConfigModule = typeof import('../../src/config/load.js');
type LoggerModule = typeof import('../../src/observability/logger.js');
const dist = (name: string) => pathToFileURL(appPath.replace(/app\.js$/, name)).href;
const { createLongshore } = (await import(pathToFileURL(appPath).href)) as AppModule;
const { parseConfig } = (await import(dist('config/load.js'))) as ConfigModule;
const { createLogger } = (await import(dist('observability/logger.js'))) as LoggerModule;

// Loading the modules blocks the loop before the mirror exists; reported apart from its start-up work.
const modules = { ms: performance.now() - started, eld: take() };
const config = parseConfig(JSON.parse(configJson) as object);
const dataDir = config.dataDir;
const longshore = await createLongshore(config, createLogger('warn'));
const server = createServer(longshore.handler);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;
send({ type: 'listening', url: `http://127.0.0.1:${port}`, ms: performance.now() - started, eld: take(), modules });
const reconcileStarted = performance.now();
void longshore.reconciled.then((result) => send({ type: 'reconciled', ms: performance.now() - reconcileStarted, eld: take(), result, pauses: pauses(reconcileStarted) }));

{
  const catalog = longshore.catalog as unknown as Record<string, unknown>;
  for (const name of ['flush', 'removeContents', 'liftToImage', 'inTransaction', 'inSlice', 'evictionCandidates', 'recordHit']) instrument(catalog, name);
  // Each prepared statement too: a pause inside one statement names it; a pause in a call whose
  // statements are all fast is the commit (or GC).
  for (const [field, value] of Object.entries(catalog)) {
    if (!field.endsWith('Stmt') || typeof value !== 'object' || value === null) continue;
    for (const method of ['run', 'get', 'all']) instrument(value as Record<string, unknown>, method, `${field}.${method}`);
  }
}

process.on('message', (message: { cmd: string; times?: number; digests?: string[]; target?: number }) => {
  void (async () => {
    const catalog = longshore.catalog;
    if (message.cmd === 'batch') {
      take();
      const times: number[] = [];
      let cursor;
      for (let i = 0; i < (message.times ?? 20); i++) {
        const t0 = performance.now();
        const batch = catalog.evictionCandidates(256, cursor);
        times.push(performance.now() - t0);
        cursor = batch[batch.length - 1];
      }
      send({ type: 'batch', times, eld: take() });
    } else if (message.cmd === 'hits') {
      // The hits as requests record them (in memory), then the flush alone is measured.
      for (const digest of message.digests ?? []) catalog.recordHit(digest as `sha256:${string}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await profileStart();
      take();
      const t0 = performance.now();
      const written = await catalog.flushSlices();
      const ms = performance.now() - t0;
      const eld = take();
      send({ type: 'hits', written, ms, eld, pauses: pauses(t0), profile: await profileStop('hits') });
    } else if (message.cmd === 'evict') {
      await profileStart();
      take();
      const before = catalog.totals();
      const t0 = performance.now();
      const result = await longshore.evictor.run(message.target);
      const ms = performance.now() - t0;
      const eld = take();
      send({ type: 'evict', ms, before, result, objectsAfter: catalog.totals().objects, eld, pauses: pauses(t0), profile: await profileStop('evict') });
    } else if (message.cmd === 'rss') {
      send({ type: 'rss', rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed });
    } else if (message.cmd === 'close') {
      server.closeAllConnections();
      server.close();
      await longshore.close(1_000);
      process.exit(0);
    }
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
