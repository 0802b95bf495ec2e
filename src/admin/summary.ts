// The admin API's summary: cache usage against its budget, totals since start, downloads in progress,
// and each upstream's health. Everything is read from counters and state that exist anyway.
import type { Metrics } from '../observability/metrics.js';
import type { UpstreamEntry } from '../registry/proxy.js';
import { readTotals, type Totals } from './totals.js';

export interface UpstreamStatus {
  name: string;
  /** Scheme, host and port only: never a path, user or password. */
  url: string;
  offline: boolean;
  circuit: 'closed' | 'open' | 'half-open';
  /** Docker Hub's pull rate limit as last seen in a response; null until one carried it. */
  rateLimit: { limit: number | null; remaining: number | null; observedAt: string } | null;
}

export interface Summary {
  startedAt: string;
  cache: { bytes: number; objects: number; maxBytes: number | null };
  totals: Omit<Totals, 'time'>;
  downloads: { inFlight: number; followers: number };
  upstreams: UpstreamStatus[];
}

export interface SummaryDeps {
  metrics: Metrics;
  cache(): { bytes: number; objects: number };
  downloads(): { inFlight: number; followers: number };
  upstreams: ReadonlyMap<string, UpstreamEntry>;
  /** The cache's byte budget; null when unbounded. */
  maxBytes: number | null;
  startedAt: number;
}

export async function buildSummary(deps: SummaryDeps): Promise<Summary> {
  const { time: _time, ...totals } = await readTotals(deps.metrics);
  return {
    startedAt: new Date(deps.startedAt).toISOString(),
    cache: { ...deps.cache(), maxBytes: deps.maxBytes },
    totals,
    downloads: deps.downloads(),
    upstreams: [...deps.upstreams].map(([name, { client, offline }]) => ({
      name,
      url: client.url.origin,
      offline,
      circuit: client.breaker.state,
      rateLimit: client.rateLimit
        ? { limit: client.rateLimit.limit ?? null, remaining: client.rateLimit.remaining ?? null, observedAt: new Date(client.rateLimit.observedAt).toISOString() }
        : null,
    })),
  };
}
