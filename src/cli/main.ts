#!/usr/bin/env node
// Admin commands, sharing the server's config loader and modules:
//   longshore du [--top N]                   cache size, object counts, top repositories by size
//   longshore gc [--to SIZE] [--dry-run]     reconcile the store (orphans), release local blobs no manifest
//                                            references, then evict cached content down to SIZE
//                                            (default: the configured low watermark)
//   longshore verify [--quarantine]          re-hash every stored file; report, and with --quarantine move
//                                            mismatching files to <dataDir>/quarantine and forget them
//   longshore health                         exit 0 if the server of this config answers /healthz (the
//                                            container image's HEALTHCHECK)
//   longshore warm [--platform P,…|all] [--concurrency N] [--file LIST] REF…
//                                            fetch images into the cache
//   longshore export --output FILE [--platform …] [--since OLD_BUNDLE…] [--file LIST] REF…
//                                            write images as an OCI image layout tarball (cli/airgap.ts)
//   longshore import FILE…                   store the images of bundles, verified, as cached content
// Every command takes --config PATH like the server. Output is JSON with --json, else plain text.
//
// gc, verify --quarantine, warm, export and import write to the data directory: when a server holds it
// (storage/data-lock.ts) they send the work to that server's admin API, else they take its lock and run
// the same jobs on the same core (core.ts) alone. du and verify without --quarantine only read.
import { Agent, request } from 'undici';
import { localOrigin } from '../config/listen.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { parseSize } from '../config/units.js';
import { ConfigError, isLongshoreError } from '../errors.js';
import { Catalog } from '../metadata/catalog.js';
import { openDatabase } from '../metadata/database.js';
import { createLogger } from '../observability/logger.js';
import { LOCAL } from '../registry/routing.js';
import { ContentStore } from '../storage/content-store.js';
import { StorePaths } from '../storage/paths.js';
import type { AdminClient } from './admin-client.js';
import { findOwner } from './owner.js';
import { human } from './progress.js';

const USAGE = 'usage: longshore <du|gc|verify|health|warm|export|import> [--config PATH] [--json] [du: --top N] [gc: --to SIZE --dry-run] [verify: --quarantine] '
  + '[warm: --platform OS/ARCH,…|all --concurrency N --file LIST REF…] [export: --output FILE --platform … --since OLD_BUNDLE… --file LIST REF…] [import: FILE…]';
const COMMANDS = ['du', 'gc', 'verify', 'health', 'warm', 'export', 'import'];
/** How long `health` waits for an answer (Docker's HEALTHCHECK allows 3 s by default here). */
const HEALTH_TIMEOUT_MS = 2_500;

export function option(args: readonly string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}


export async function run(argv: readonly string[], print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const [command, ...args] = argv;
  if (!command || !COMMANDS.includes(command)) {
    print(USAGE);
    return 2;
  }
  const config = loadConfig({ argv: args });
  if (command === 'health') return health(config, print);
  const json = args.includes('--json');
  if (command === 'warm' || command === 'export' || command === 'import') return (await import('./airgap.js')).airgap(command, args, config, print);
  const to = command === 'gc' ? sizeOption(args) : undefined;
  // Writers go through the directory's owner: the running server, or this command holding the lock.
  if (command === 'gc' || (command === 'verify' && args.includes('--quarantine'))) {
    const owner = await findOwner(config);
    if (owner.kind === 'server') return remoteMaintenance(command as 'gc' | 'verify', args, owner.client, json, print);
    return aloneMaintenance(command as 'gc' | 'verify', args, to, config, json, print);
  }
  return inspect(command as 'du' | 'verify', args, config, json, print);
}

/** gc's --to SIZE, checked before any work is asked for. */
function sizeOption(args: readonly string[]): number | undefined {
  const to = option(args, '--to');
  if (to === undefined) return undefined;
  const size = parseSize(to);
  if (size === undefined) throw new ConfigError(`--to: expected a size such as "10GiB", got ${JSON.stringify(to)}`);
  return size;
}

/** gc and verify sent to the running server: the same reports, printed the same way. */
async function remoteMaintenance(command: 'gc' | 'verify', args: readonly string[], client: AdminClient, json: boolean, print: (line: string) => void): Promise<number> {
  try {
    if (command === 'gc') {
      const report = await client.job('gc', { to: option(args, '--to') ?? null, dryRun: args.includes('--dry-run') }, () => undefined);
      delete report.event;
      printGc(report, args.includes('--dry-run'), json, print);
      return 0;
    }
    const report = await client.job('verify', { quarantine: true }, () => undefined) as unknown as { checked: number; corrupt: string[]; quarantined: number };
    return printVerify({ checked: report.checked, corrupt: report.corrupt, quarantined: report.quarantined }, true, json, print);
  } finally {
    await client.close();
  }
}

function printGc(report: Record<string, unknown>, dryRun: boolean, json: boolean, print: (line: string) => void): void {
  if (json) return print(JSON.stringify(report));
  const r = report as { orphans: unknown; bytes: number; target: number; wouldFree: number; evicted: number; remaining: number; localBlobsReleased: number };
  if (dryRun) return print(`would evict ${human(r.wouldFree)} (cache ${human(r.bytes)}, target ${human(r.target)}); orphans: ${JSON.stringify(r.orphans)}`);
  print(`evicted ${r.evicted} objects, ${human(r.bytes)}; cache now ${human(r.remaining)}; unreferenced local blobs released: ${r.localBlobsReleased}; orphans: ${JSON.stringify(r.orphans)}`);
}

function printVerify(report: { checked: number; corrupt: string[]; quarantined: number }, quarantine: boolean, json: boolean, print: (line: string) => void): number {
  const bad = report.corrupt;
  if (json) print(JSON.stringify(report));
  else {
    print(`checked ${report.checked} objects: ${bad.length} corrupt${quarantine && bad.length > 0 ? ' (moved to quarantine/ and forgotten)' : ''}`);
    for (const digest of bad) print(`  corrupt: ${digest}`);
  }
  return bad.length > 0 && !quarantine ? 1 : 0;
}

/**
 * gc and verify --quarantine when no server holds the directory: the jobs a server runs (jobs/admin-jobs.ts),
 * on the same core (core.ts), with the directory's lock held by this command. The core's own start-up
 * reconciliation is off: gc reconciles (and reports what it found), verify reads every file anyway.
 */
async function aloneMaintenance(command: 'gc' | 'verify', args: readonly string[], to: number | undefined, config: Config, json: boolean, print: (line: string) => void): Promise<number> {
  const { buildCore } = await import('../core.js');
  const core = await buildCore(config, createLogger(json ? 'silent' : 'warn'), { role: 'command', task: command, reconcile: false });
  try {
    if (command === 'gc') {
      const dryRun = args.includes('--dry-run');
      printGc(await core.jobs.gc({ to, dryRun }), dryRun, json, print);
      return 0;
    }
    return printVerify(await core.jobs.verify({ quarantine: true }), true, json, print);
  } finally {
    await core.close(5_000);
  }
}

/** du and verify without --quarantine: they only read, so they take no lock and build no core. */
async function inspect(command: 'du' | 'verify', args: readonly string[], config: Config, json: boolean, print: (line: string) => void): Promise<number> {
  const paths = new StorePaths(config.dataDir);
  const store = new ContentStore(paths);
  const db = openDatabase(paths.database);
  const catalog = new Catalog(db);
  try {
    if (command === 'du') {
      const top = Number(option(args, '--top') ?? 10);
      const totals = catalog.totals();
      const manifests = catalog.allContent().filter((c) => catalog.content(c.digest)?.media_type !== null).length;
      // Local (pushed) repositories are primary data: marked, and never counted as evictable cache.
      const repositories = catalog.repositorySizes(top).map((r) => ({ ...r, local: r.upstream === LOCAL }));
      const report = { bytes: totals.bytes, objects: totals.objects, manifests, blobs: totals.objects - manifests, maxBytes: config.cache.maxSize, repositories };
      if (json) print(JSON.stringify(report));
      else {
        print(`cache: ${human(totals.bytes)} in ${totals.objects} objects (${report.blobs} blobs, ${manifests} manifests)${config.cache.maxSize === null ? '' : ` of ${human(config.cache.maxSize)}`}`);
        for (const r of repositories) {
          const name = r.upstream === LOCAL ? `${r.repository} (local)` : `${r.upstream}/${r.repository}`;
          print(`  ${human(r.bytes).padStart(10)}  ${String(r.objects).padStart(6)} objects  ${name}`);
        }
      }
      return 0;
    }
    const bad: string[] = [];
    let checked = 0;
    for (const { digest } of catalog.allContent()) {
      const actual = await store.hash(digest).catch(() => 'missing');
      checked++;
      if (actual !== digest) bad.push(digest);
    }
    return printVerify({ checked, corrupt: bad, quarantined: 0 }, false, json, print);
  } finally {
    db.close();
  }
}

/**
 * Asks the server that `config` describes for /healthz, from this host: plain HTTP on `listen`, or on
 * `tls.httpListen` when TLS has one, else HTTPS without checking the certificate (it names the host
 * clients use, and this asks the server itself over loopback).
 */
async function health(config: Config, print: (line: string) => void): Promise<number> {
  const plainListen = config.tls ? config.tls.httpListen : config.listen;
  const url = `${plainListen ? localOrigin(plainListen, 'http') : localOrigin(config.listen, 'https')}/healthz`;
  const dispatcher = plainListen ? undefined : new Agent({ connect: { rejectUnauthorized: false } });
  try {
    const res = await request(url, { dispatcher, signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    await res.body.dump();
    print(`${url}: ${res.statusCode}`);
    return res.statusCode === 200 ? 0 : 1;
  } catch (err) {
    print(`${url}: ${(err as Error).message}`);
    return 1;
  } finally {
    await dispatcher?.close();
  }
}

// Run only as the process entry, not when imported by tests.
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli/main.js') || process.argv[1]?.endsWith('/cli/main.ts')) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // A typed error is the answer (a corrupt bundle, a locked directory): its message, not a stack.
      const known = err instanceof ConfigError || (isLongshoreError(err) && err.code !== 'LS_INTERNAL');
      console.error(`longshore: ${known ? (err as Error).message : (err as Error).stack ?? String(err)}`);
      if (isLongshoreError(err) && process.argv.includes('--json')) {
        process.stdout.write(`${JSON.stringify({ event: 'error', code: err.code, message: err.message, ...(err.detail ? { detail: err.detail } : {}) })}\n`);
      }
      process.exit(err instanceof ConfigError || isLongshoreError(err, 'LS_DATA_DIR_LOCKED') ? 2 : 1);
    },
  );
}
