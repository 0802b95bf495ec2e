// du, gc and verify working on the data directory itself, and how their reports are printed. Loaded by
// cli/main.ts only for these commands: the database, store and eviction modules cost a command that
// only talks to a running server (warm, export, import) start-up time it does not need.
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Evictor } from '../cache/evictor.js';
import { hashFile, reconcile } from '../cache/recovery.js';
import { algorithmOf, encodedOf } from '../digest.js';
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
import { human } from './progress.js';
import { option } from './args.js';

export function printGc(report: Record<string, unknown>, dryRun: boolean, json: boolean, print: (line: string) => void): void {
  if (json) return print(JSON.stringify(report));
  const r = report as { orphans: unknown; bytes: number; target: number; wouldFree: number; evicted: number; remaining: number; localBlobsReleased: number };
  if (dryRun) return print(`would evict ${human(r.wouldFree)} (cache ${human(r.bytes)}, target ${human(r.target)}); orphans: ${JSON.stringify(r.orphans)}`);
  print(`evicted ${r.evicted} objects, ${human(r.bytes)}; cache now ${human(r.remaining)}; unreferenced local blobs released: ${r.localBlobsReleased}; orphans: ${JSON.stringify(r.orphans)}`);
}

export function printVerify(report: { checked: number; corrupt: string[]; quarantined: number }, quarantine: boolean, json: boolean, print: (line: string) => void): number {
  const bad = report.corrupt;
  if (json) print(JSON.stringify(report));
  else {
    print(`checked ${report.checked} objects: ${bad.length} corrupt${quarantine && bad.length > 0 ? ' (moved to quarantine/ and forgotten)' : ''}`);
    for (const digest of bad) print(`  corrupt: ${digest}`);
  }
  return bad.length > 0 && !quarantine ? 1 : 0;
}

/** du, gc and verify on the data directory itself (gc and verify --quarantine hold its lock). */
export async function maintenance(command: string, args: readonly string[], config: Config, json: boolean, print: (line: string) => void): Promise<number> {
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
      const localGarbage = await new LocalRegistry(local, new UploadTable(db), new LocalUsage(db, LOCAL), config.local, config.maxManifestSize, log).collectGarbage();
      const evictor = new Evictor(local, catalog, config.cache, router, () => [], log);
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
