// Reconciliation of the store with the catalog, so that a kill -9 at any moment (mid-download,
// mid-eviction, between a rename and its row) heals itself:
//   - temp files are removed (ContentStore.init, before anything is served);
//   - rows whose file is gone, or whose file has another size, are removed (with the file);
//   - files without a row are hashed: adopted when the bytes match the digest in their name, else removed.
//
// The server runs it in the background after it starts serving: rows are walked a page at a time in
// digest order and files a directory at a time, so the event loop is never held for long and the work
// is proportional to a page, not to the store. Serving does not depend on it having finished:
// LocalContent serves a file only when its row exists and the sizes agree, and a file without a row is
// never served (it is fetched again, or adopted here once hashed).
import type { Logger } from 'pino';
import type { RecoveryIndex } from '../metadata/interfaces.js';
import type { Digest } from '../digest.js';
import type { MaintenanceStore } from '../storage/interfaces.js';

export interface ReconcileResult {
  rowsRemoved: number;
  filesAdopted: number;
  filesRemoved: number;
  /** False when it was stopped (shutdown) before the end. */
  complete: boolean;
}

export interface ReconcileOptions {
  /** Stops the walk between two steps (the server is closing). */
  signal?: AbortSignal;
}

/** Rows read per page. */
const PAGE = 1000;
/** Files examined at once (stat runs on libuv's thread pool). */
const PARALLEL = 16;
/** Directory entries looked up in the catalog between two turns of the event loop. */
const NAMES_PER_TURN = 250;

export async function reconcile(store: MaintenanceStore, catalog: RecoveryIndex, log: Logger, options: ReconcileOptions = {}): Promise<ReconcileResult> {
  const result: ReconcileResult = { rowsRemoved: 0, filesAdopted: 0, filesRemoved: 0, complete: false };
  const stopped = () => options.signal?.aborted === true;
  // Files written from here on were verified by this process before they were renamed into place.
  const startedAt = Date.now();
  for (let after = ''; !stopped();) {
    const page = catalog.contentPage(after, PAGE);
    if (page.length === 0) break;
    after = page[page.length - 1]!.digest;
    for (let i = 0; i < page.length && !stopped(); i += PARALLEL) {
      await Promise.all(page.slice(i, i + PARALLEL).map(async (row) => {
        const size = (await store.stat(row.digest))?.size;
        if (size === row.size) return;
        // The row may have been removed or replaced meanwhile (eviction, a new download): ask again.
        const current = catalog.content(row.digest);
        if (!current || current.size === size) return;
        if (size !== undefined) await store.delete(row.digest);
        if (catalog.removeContent(row.digest)) result.rowsRemoved++;
      }));
    }
  }
  for await (const names of store.contentDirectories()) {
    if (stopped()) break;
    const orphans: Digest[] = [];
    for (let i = 0; i < names.length; i++) {
      if (i % NAMES_PER_TURN === NAMES_PER_TURN - 1) await new Promise((resolve) => setImmediate(resolve));
      const digest = names[i]!;
      if (!catalog.content(digest)) orphans.push(digest); // not contentInfo: a million names would churn its cache
    }
    for (const digest of orphans) {
      if (stopped()) break;
      const info = await store.stat(digest);
      if (!info || info.mtimeMs >= startedAt || catalog.content(digest)) continue;
      if ((await store.hash(digest).catch(() => undefined)) === digest) {
        catalog.adopt(digest, info.size);
        result.filesAdopted++;
      } else {
        await store.delete(digest);
        result.filesRemoved++;
      }
    }
  }
  result.complete = !stopped();
  if (result.rowsRemoved + result.filesAdopted + result.filesRemoved > 0) log.warn(result, 'reconciled the store with the catalog');
  else log.debug(result, 'reconciled the store with the catalog');
  return result;
}
