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
// Every command takes --config PATH like the server. Output is JSON with --json, else plain text.
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
import { ConfigError } from '../errors.js';
import { Catalog } from '../metadata/catalog.js';
import { LocalUsage } from '../metadata/local-usage.js';
import { UploadTable } from '../metadata/uploads.js';
import { openDatabase } from '../metadata/database.js';
import { createLogger } from '../observability/logger.js';
import { LocalContent } from '../registry/local-content.js';
import { LocalRegistry } from '../registry/local-registry.js';
import { LOCAL, UpstreamRouter } from '../registry/routing.js';
import { ContentStore } from '../storage/content-store.js';
import { StorePaths } from '../storage/paths.js';

const USAGE = 'usage: longshore <du|gc|verify|health> [--config PATH] [--json] [du: --top N] [gc: --to SIZE --dry-run] [verify: --quarantine]';
/** How long `health` waits for an answer (Docker's HEALTHCHECK allows 3 s by default here). */
const HEALTH_TIMEOUT_MS = 2_500;

function option(args: readonly string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export async function run(argv: readonly string[], print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const [command, ...args] = argv;
  if (!command || !['du', 'gc', 'verify', 'health'].includes(command)) {
    print(USAGE);
    return 2;
  }
  const config = loadConfig({ argv: args });
  if (command === 'health') return health(config, print);
  const json = args.includes('--json');
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
        const report = { orphans, bytes: before, target: limit, wouldFree: Math.max(0, before - limit) };
        print(json ? JSON.stringify(report) : `would evict ${human(report.wouldFree)} (cache ${human(before)}, target ${human(limit)}); orphans: ${JSON.stringify(orphans)}`);
        return 0;
      }
      const localGarbage = await new LocalRegistry(local, new UploadTable(db), new LocalUsage(db, LOCAL), config.local, config.maxManifestSize, log).collectGarbage();
      const evictor = new Evictor(local, catalog, config.cache, router, () => [], log);
      const result = await evictor.run(target);
      const report = { orphans, localBlobsReleased: localGarbage.released, ...result };
      print(json ? JSON.stringify(report) : `evicted ${result.evicted} objects, ${human(result.bytes)}; cache now ${human(result.remaining)}; unreferenced local blobs released: ${localGarbage.released}; orphans: ${JSON.stringify(orphans)}`);
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
    const report = { checked, corrupt: bad, quarantined: quarantine ? bad.length : 0 };
    if (json) print(JSON.stringify(report));
    else {
      print(`checked ${checked} objects: ${bad.length} corrupt${quarantine && bad.length > 0 ? ' (moved to quarantine/ and forgotten)' : ''}`);
      for (const digest of bad) print(`  corrupt: ${digest}`);
    }
    return bad.length > 0 && !quarantine ? 1 : 0;
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
      console.error(`longshore: ${err instanceof ConfigError ? err.message : (err as Error).stack ?? String(err)}`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    },
  );
}
