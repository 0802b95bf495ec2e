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
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const started = performance.now();
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();

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
const longshore = await createLongshore(config, createLogger('warn'));
const server = createServer(longshore.handler);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;
send({ type: 'listening', url: `http://127.0.0.1:${port}`, ms: performance.now() - started, eld: take(), modules });
const reconcileStarted = performance.now();
void longshore.reconciled.then((result) => send({ type: 'reconciled', ms: performance.now() - reconcileStarted, eld: take(), result }));

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
      take();
      const t0 = performance.now();
      const written = await catalog.flushSlices();
      send({ type: 'hits', written, ms: performance.now() - t0, eld: take() });
    } else if (message.cmd === 'evict') {
      take();
      const before = catalog.totals();
      const t0 = performance.now();
      const result = await longshore.evictor.run(message.target);
      send({ type: 'evict', ms: performance.now() - t0, before, result, objectsAfter: catalog.totals().objects, eld: take() });
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
