// Totals since start, read from the Prometheus counters the request path already keeps: the admin API
// and the dashboard add no work of their own per request. "Hits" are requests answered from the store
// (hit, revalidated, stale); "misses" are requests whose content came from an upstream (miss,
// coalesced, upstream). Requests with no cache outcome (health, metrics, the dashboard) count in neither.
import type { Metrics } from '../observability/metrics.js';
import type { CacheOutcome } from '../registry/types.js';

export const FROM_CACHE: readonly CacheOutcome[] = ['hit', 'revalidated', 'stale'];
export const FROM_UPSTREAM: readonly CacheOutcome[] = ['miss', 'coalesced', 'upstream'];
const OUTCOMES: readonly CacheOutcome[] = [...FROM_CACHE, ...FROM_UPSTREAM];

/** Cumulative counters at one moment. */
export interface CounterSample {
  /** ms since epoch */
  time: number;
  hits: number;
  misses: number;
  bytesServedFromCache: number;
  bytesServedFromUpstream: number;
  bytesFromUpstream: number;
}

export interface Totals extends CounterSample {
  requests: Record<CacheOutcome, number>;
  /** hits / (hits + misses); null before the first such request. */
  hitRatio: number | null;
  /** bytesServedFromCache / all bytes served with a cache outcome; null before the first. */
  byteHitRatio: number | null;
}

export async function readTotals(metrics: Metrics, now: () => number = Date.now): Promise<Totals> {
  const requests = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<CacheOutcome, number>;
  for (const { value, labels } of (await metrics.httpRequests.get()).values) {
    const outcome = labels.cache as CacheOutcome;
    if (outcome in requests) requests[outcome] += value;
  }
  const served = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<CacheOutcome, number>;
  for (const { value, labels } of (await metrics.servedBytes.get()).values) {
    const outcome = labels.cache as CacheOutcome;
    if (outcome in served) served[outcome] += value;
  }
  let bytesFromUpstream = 0;
  for (const { value } of (await metrics.upstreamBytes.get()).values) bytesFromUpstream += value;

  const total = (counts: Record<CacheOutcome, number>, outcomes: readonly CacheOutcome[]) => outcomes.reduce((sum, o) => sum + counts[o], 0);
  const hits = total(requests, FROM_CACHE);
  const misses = total(requests, FROM_UPSTREAM);
  const bytesServedFromCache = total(served, FROM_CACHE);
  const bytesServedFromUpstream = total(served, FROM_UPSTREAM);
  return {
    time: now(),
    requests,
    hits,
    misses,
    hitRatio: ratio(hits, hits + misses),
    bytesServedFromCache,
    bytesServedFromUpstream,
    bytesFromUpstream,
    byteHitRatio: ratio(bytesServedFromCache, bytesServedFromCache + bytesServedFromUpstream),
  };
}

function ratio(part: number, whole: number): number | null {
  return whole === 0 ? null : part / whole;
}
