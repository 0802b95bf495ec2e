// longshore warm | export | import: the CLI side. The work itself is AdminJobs' (jobs/admin-jobs.ts),
// run by the running server (through its admin API) or, when none holds the data directory, by this
// process after taking the directory's lock. This side reads arguments and files, draws progress, and
// writes the export: to FILE.partial-<pid> first, renamed to FILE only when whole, so an interrupted
// export (Ctrl-C included) leaves no file that looks like a bundle.
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Core } from '../core.js';
import type { Config } from '../config/schema.js';
import { ConfigError, LongshoreError, isLongshoreError } from '../errors.js';
import { BUNDLE_JSON, digestOfPath, type BundleInfo } from '../jobs/bundle/layout.js';
import { scanTar } from '../jobs/bundle/tar.js';
import type { JobEvent } from '../jobs/events.js';
import { refsFromList } from '../jobs/image-ref.js';
import { parsePlatforms, type PlatformChoice } from '../jobs/warm.js';
import { findOwner } from './owner.js';
import { ProgressDisplay, human } from './progress.js';

type Print = (line: string) => void;

/**
 * The export file's write buffer. With the default 16 KiB each socket chunk (16–64 KiB) was its own
 * write(2); a few MiB let chunks that arrive during a write go down together in one writev(2).
 */
const WRITE_BUFFER = 4 * 1024 * 1024;

/** Options that take a value; `--since` may repeat. Everything else not starting with "--" is positional. */
const VALUED = new Set(['--config', '-c', '--platform', '--concurrency', '--file', '--output', '--since', '--top', '--to']);

export interface ParsedArgs {
  values: Map<string, string[]>;
  flags: Set<string>;
  positional: string[];
}

export function parseArgs(args: readonly string[]): ParsedArgs {
  const values = new Map<string, string[]>();
  const flags = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (VALUED.has(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined) throw new ConfigError(`${name} needs a value`);
      values.set(name, [...(values.get(name) ?? []), value]);
    } else if (arg.startsWith('-')) {
      flags.add(arg);
    } else {
      positional.push(arg);
    }
  }
  return { values, flags, positional };
}

export async function airgap(command: 'warm' | 'export' | 'import', args: readonly string[], config: Config, print: Print): Promise<number> {
  const parsed = parseArgs(args);
  const json = parsed.flags.has('--json');
  const platforms = parsePlatforms(parsed.values.get('--platform')?.at(-1), config.warm.platforms);
  const concurrency = Number(parsed.values.get('--concurrency')?.at(-1) ?? config.warm.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new ConfigError('--concurrency: expected an integer from 1 to 64');
  if (command === 'import') {
    if (parsed.positional.length === 0) throw new ConfigError('import: name at least one bundle FILE');
    return importFiles(parsed.positional, config, json, print);
  }
  const refs = [...parsed.positional];
  for (const list of parsed.values.get('--file') ?? []) refs.push(...refsFromList(await readFile(list, 'utf8')));
  if (refs.length === 0) throw new ConfigError(`${command}: name at least one image REF (or --file LIST)`);
  const withReferrers = parsed.flags.has('--with-referrers');
  if (command === 'warm') return warm(refs, platforms, concurrency, withReferrers, config, json, print);
  const output = parsed.values.get('--output')?.at(-1);
  if (!output) throw new ConfigError('export: --output FILE is required');
  return exportBundle(refs, platforms, concurrency, withReferrers, parsed.values.get('--since') ?? [], output, config, json, print);
}

/** Runs `work` against the owner of the data directory: remotely, or alone with the lock held. */
async function withOwner<T>(config: Config, task: string, remote: (client: import('./admin-client.js').AdminClient) => Promise<T>, alone: (core: Core) => Promise<T>): Promise<T> {
  const owner = await findOwner(config);
  if (owner.kind === 'server') {
    try {
      return await remote(owner.client);
    } finally {
      await owner.client.close();
    }
  }
  // Loaded only here: the core is not needed to hand a job to a server (and costs start-up time).
  const [{ buildCore }, { createLogger }] = await Promise.all([import('../core.js'), import('../observability/logger.js')]);
  const core = await buildCore(config, createLogger('silent'), { role: 'command', task });
  try {
    return await alone(core);
  } finally {
    // Downloads this command started finish (or are cut) before the lock goes.
    await core.close(5_000);
  }
}

/** Feeds job events to the progress display and, with --json, prints image lines. */
function reporter(display: ProgressDisplay, json: boolean, print: Print): (event: JobEvent) => void {
  return (event) => {
    if (event.event === 'plan') display.plan(event.ref, event.bytes);
    else if (event.event === 'progress') display.add(event.ref, event.bytes);
    else if (event.event === 'image') {
      const error = event.error as { message?: string } | undefined;
      display.finish(event.ref, error ? `failed: ${error.message ?? ''}` : `done, ${human(Number(event.bytes ?? 0))}`);
      if (json) print(JSON.stringify(event));
      else if (error) print(`${event.ref}: ${error.message ?? 'failed'}`);
      else if (!process.stderr.isTTY) print(`${event.ref}: ${event.digest as string}, ${human(Number(event.bytes))} (${human(Number(event.fetchedBytes ?? event.newBytes ?? 0))} new)`);
    } else if (event.event === 'referrers') {
      const error = event.error as { message?: string } | undefined;
      if (json) print(JSON.stringify(event));
      else if (error) print(`referrers of ${event.subject}: ${error.message ?? 'failed'}`);
    }
  };
}

async function warm(refs: string[], platforms: PlatformChoice, concurrency: number, withReferrers: boolean, config: Config, json: boolean, print: Print): Promise<number> {
  const display = ProgressDisplay.forTerminal(json, 'all images');
  const onEvent = reporter(display, json, print);
  const request = { refs, platforms, concurrency, ...(withReferrers ? { withReferrers } : {}) };
  const summary = await withOwner(config, 'warm',
    (client) => client.job('warm', request, onEvent),
    async (core) => ({ ...(await core.jobs.warm(request, onEvent)).summary }));
  display.stop();
  delete summary.event;
  print(json ? JSON.stringify({ event: 'summary', ...summary }) : `warmed ${String(summary.images)} image(s)${summary.referrers !== undefined ? ` with ${String(summary.referrers)} referrer manifest(s)` : ''}, ${String(summary.blobs)} blobs, ${human(Number(summary.bytes))}: ${human(Number(summary.fetchedBytes))} fetched, ${human(Number(summary.cachedBytes))} already cached, in ${Number(summary.seconds).toFixed(1)} s${Number(summary.failed) > 0 ? `; ${String(summary.failed)} failed` : ''}`);
  return Number(summary.failed) > 0 ? 1 : 0;
}

/** Blobs that earlier bundles carried (or left out in turn, being incremental themselves). */
export async function carriedBy(bundles: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const path of bundles) {
    const handle = await open(path, 'r');
    try {
      const { files, bodies } = await scanTar(handle, new Set([BUNDLE_JSON]));
      for (const name of files.keys()) {
        const digest = digestOfPath(name);
        if (digest) out.add(digest);
      }
      const info = bodies.get(BUNDLE_JSON);
      if (info) for (const o of (JSON.parse(info.toString('utf8')) as Partial<BundleInfo>).omitted ?? []) out.add(o.digest);
    } catch (err) {
      throw new ConfigError(`--since ${path}: ${(err as Error).message}`);
    } finally {
      await handle.close();
    }
  }
  return out;
}

async function exportBundle(refs: string[], platforms: PlatformChoice, concurrency: number, withReferrers: boolean, since: readonly string[], output: string, config: Config, json: boolean, print: Print): Promise<number> {
  const started = Date.now();
  const exclude = [...(await carriedBy(since))];
  const partial = join(dirname(output), `.${basename(output)}.partial-${process.pid}`);
  const display = ProgressDisplay.forTerminal(json, 'bundle');
  const onEvent = reporter(display, json, print);
  const interrupted = () => {
    void rm(partial, { force: true }).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const request = { refs, platforms, concurrency, ...(withReferrers ? { withReferrers } : {}) };
    const result = await withOwner<{ size: number; blobs: number; omitted: number; fetchedBytes?: unknown; cachedBytes?: unknown }>(config, 'export',
      async (client) => {
        const warmed = await client.job('warm', request, onEvent);
        if (Number(warmed.failed) > 0) throw new LongshoreError('LS_MANIFEST_NOT_FOUND', `${String(warmed.failed)} image(s) could not be fetched; nothing was exported`);
        const written = await client.exportTo({ ...request, exclude }, createWriteStream(partial, { flags: 'wx', highWaterMark: WRITE_BUFFER }),
          (n) => display.add(undefined, n), (n) => display.plan(undefined, n));
        return { ...warmed, ...written };
      },
      async (core) => {
        const { plan, stream, summary } = await core.jobs.exportBundle({ ...request, exclude }, onEvent);
        display.plan(undefined, plan.size);
        await pipeline(stream, counter((n) => display.add(undefined, n)), createWriteStream(partial, { flags: 'wx', highWaterMark: WRITE_BUFFER }));
        return { ...summary, size: plan.size, blobs: plan.blobs, omitted: plan.omitted.length };
      });
    await rename(partial, output);
    display.stop();
    const summary = {
      output, images: refs.length, blobs: result.blobs, omitted: result.omitted, bytes: result.size,
      fetchedBytes: result.fetchedBytes, cachedBytes: result.cachedBytes, seconds: (Date.now() - started) / 1000,
    };
    print(json ? JSON.stringify({ event: 'summary', ...summary }) : `wrote ${output}: ${refs.length} image(s), ${String(summary.blobs)} blobs${summary.omitted ? ` (${String(summary.omitted)} left out: carried by earlier bundles)` : ''}, ${human(Number(summary.bytes))}, in ${summary.seconds.toFixed(1)} s`);
    return 0;
  } catch (err) {
    display.stop();
    await rm(partial, { force: true });
    throw err;
  } finally {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
  }
}

async function importFiles(files: readonly string[], config: Config, json: boolean, print: Print): Promise<number> {
  const started = Date.now();
  const display = ProgressDisplay.forTerminal(json, 'bundles');
  const onEvent = reporter(display, json, print);
  const totals = { images: 0, failed: 0, blobs: 0, bytes: 0, referrers: 0 };
  await withOwner(config, 'import',
    async (client) => {
      for (const file of files) {
        display.plan(undefined, (await stat(file)).size);
        const result = await client.job('import', reading(file, (n) => display.add(undefined, n)), (event) => {
          if (event.event !== 'progress') onEvent(event); // bytes are counted as they are sent
        }).catch((err: unknown) => {
          throw isLongshoreError(err) ? new LongshoreError(err.code, `${file}: ${err.message}`, err.detail) : err;
        });
        add(totals, result);
      }
    },
    async (core) => {
      for (const file of files) {
        display.plan(undefined, (await stat(file)).size);
        const result = await core.jobs.importBundle(reading(file, () => undefined), onEvent).catch((err: unknown) => {
          throw isLongshoreError(err) ? new LongshoreError(err.code, `${file}: ${err.message}`, err.detail) : err;
        });
        const failed = result.images.filter((i) => i.error).length;
        const listsFailed = result.referrers.filter((r) => r.error).length;
        add(totals, { images: result.images.length - failed, failed: failed + listsFailed, blobs: result.blobs, bytes: result.bytes, referrers: result.referrers.length - listsFailed });
      }
    });
  display.stop();
  const summary = { ...totals, seconds: (Date.now() - started) / 1000 };
  print(json ? JSON.stringify({ event: 'summary', ...summary }) : `imported ${summary.images} image(s)${summary.referrers > 0 ? `, ${summary.referrers} referrers list(s)` : ''}, ${summary.blobs} blobs, ${human(summary.bytes)} in ${summary.seconds.toFixed(1)} s${summary.failed > 0 ? `; ${summary.failed} failed` : ''}`);
  return summary.failed > 0 ? 1 : 0;
}

function add(totals: { images: number; failed: number; blobs: number; bytes: number; referrers: number }, result: Record<string, unknown>): void {
  totals.images += Number(result.images ?? 0);
  totals.referrers += Number(result.referrers ?? 0);
  totals.failed += Number(result.failed ?? 0);
  totals.blobs += Number(result.blobs ?? 0);
  totals.bytes += Number(result.bytes ?? 0);
}

function reading(file: string, onBytes: (n: number) => void): Readable {
  return createReadStream(file, { highWaterMark: 1024 * 1024 }).pipe(counter(onBytes));
}

function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}
