// What gc, verify and du do on the data directory itself, and how their reports are printed (for a
// server's answers too). Loaded by cli/main.ts only for these commands: the database, store and core
// modules cost a command that only talks to a running server (warm, export, import) start-up time it
// does not need.
import type { Config } from '../config/schema.js';
import { Catalog } from '../metadata/catalog.js';
import { openDatabase } from '../metadata/database.js';
import { createLogger } from '../observability/logger.js';
import { LOCAL } from '../registry/routing.js';
import { ContentStore } from '../storage/content-store.js';
import { StorePaths } from '../storage/paths.js';
import { option } from './args.js';
import { human } from './progress.js';

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

/**
 * gc and verify --quarantine when no server holds the directory: the jobs a server runs (jobs/admin-jobs.ts),
 * on the same core (core.ts), with the directory's lock held by this command. The core's own start-up
 * reconciliation is off: gc reconciles (and reports what it found), verify reads every file anyway.
 */
export async function aloneMaintenance(command: 'gc' | 'verify', args: readonly string[], to: number | undefined, config: Config, json: boolean, print: (line: string) => void): Promise<number> {
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
export async function inspect(command: 'du' | 'verify', args: readonly string[], config: Config, json: boolean, print: (line: string) => void): Promise<number> {
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
