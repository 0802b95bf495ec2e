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
// (storage/data-lock.ts) they send the work to that server's admin API, else they take its lock and work
// alone. du and verify without --quarantine only read.
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { Evictor } from '../cache/evictor.js';
import { hashFile, reconcile } from '../cache/recovery.js';
import { algorithmOf, encodedOf } from '../digest.js';
import { localOrigin } from '../config/listen.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { parseSize } from '../config/units.js';
import { ConfigError, isLongshoreError } from '../errors.js';
import { Catalog } from '../metadata/catalog.js';
import { LocalUsage } from '../metadata/local-usage.js';
import { UploadTable } from '../metadata/uploads.js';
import { openDatabase } from '../metadata/database.js';
import { createLogger } from '../observability/logger.js';
import { DiskSpace } from '../signals.js';
import { LocalContent } from '../registry/local-content.js';
import { LocalRegistry } from '../registry/local-registry.js';
import { LOCAL, UpstreamRouter } from '../registry/routing.js';
import { ContentStore } from '../storage/content-store.js';
import { StorePaths } from '../storage/paths.js';
import { DataLock } from '../storage/data-lock.js';
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
  // Writers go through the directory's owner: the running server, or this command holding the lock.
  const writes = command === 'gc' || (command === 'verify' && args.includes('--quarantine'));
  let lock: DataLock | undefined;
  if (writes) {
    const owner = await findOwner(config);
    if (owner.kind === 'server') return remoteMaintenance(command as 'gc' | 'verify', args, owner.client, json, print);
    await mkdir(config.dataDir, { recursive: true });
    lock = await DataLock.acquire(new StorePaths(config.dataDir).lock, 'command', command);
  }
  try {
    return await maintenance(command, args, config, json, print);
  } finally {
    await lock?.release();
  }
}

/** gc and verify sent to the running server: the same reports, printed the same way. */
async function remoteMaintenance(command: 'gc' | 'verify', args: readonly string[], client: AdminClient, json: boolean, print: (line: string) => void): Promise<number> {
  try {
    if (command === 'gc') {
      const to = option(args, '--to');
      if (to !== undefined && parseSize(to) === undefined) throw new ConfigError(`--to: expected a size such as "10GiB", got ${JSON.stringify(to)}`);
      const report = await client.job('gc', { to: to ?? null, dryRun: args.includes('--dry-run') }, () => undefined);
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

/** du, gc and verify on the data directory itself (gc and verify --quarantine hold its lock). */
async function maintenance(command: string, args: readonly string[], config: Config, json: boolean, print: (line: string) => void): Promise<number> {
  const log = createLogger(json ? 'silent' : 'warn');
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
    if (command === 'gc') {
      const to = option(args, '--to');
      const target = to === undefined ? undefined : parseSize(to);
      if (to !== undefined && target === undefined) throw new ConfigError(`--to: expected a size such as "10GiB", got ${JSON.stringify(to)}`);
      await store.init();
      const orphans = await reconcile(store, catalog, log);
      const router = new UpstreamRouter(Object.keys(config.upstreams), config.defaultUpstream, {
        prefixes: config.local.prefixes,
        local: { has: (name) => catalog.holdsRepository(LOCAL, name) },
      });
      const local = new LocalContent(store, catalog);
      const before = catalog.totals().bytes;
      if (args.includes('--dry-run')) {
        const limit = target ?? (config.cache.maxSize === null ? before : config.cache.maxSize * config.cache.lowWatermark);
        printGc({ orphans, bytes: before, target: limit, wouldFree: Math.max(0, before - limit) }, true, json, print);
        return 0;
      }
      const localGarbage = await new LocalRegistry(local, catalog, store, new UploadTable(db), new LocalUsage(db, LOCAL), config.local, config.maxManifestSize, log).collectGarbage();
      const evictor = new Evictor(local, catalog, config.cache, router, () => [], new DiskSpace(paths.root, config.cache.minFreeSpace), log);
      const result = await evictor.run(target);
      printGc({ orphans, localBlobsReleased: localGarbage.released, ...result }, false, json, print);
      return 0;
    }
    // verify
    const quarantine = args.includes('--quarantine');
    const bad: string[] = [];
    let checked = 0;
    for (const { digest } of catalog.allContent()) {
      const path = paths.content(digest);
      const actual = await hashFile(path, algorithmOf(digest)).catch(() => 'missing');
      checked++;
      if (actual === digest) continue;
      bad.push(digest);
      if (quarantine) {
        const dir = join(paths.root, 'quarantine');
        await mkdir(dir, { recursive: true });
        if (actual !== 'missing') await rename(path, join(dir, encodedOf(digest)));
        catalog.removeContent(digest);
      }
    }
    return printVerify({ checked, corrupt: bad, quarantined: quarantine ? bad.length : 0 }, quarantine, json, print);
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
