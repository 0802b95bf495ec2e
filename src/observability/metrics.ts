// Prometheus metrics, named after cache behaviour. One prom-client Registry per Longshore instance (no
// global default registry), so tests and several instances in one process never share counters.
// Gauges that describe state (cache size, downloads, rate limit, circuits) are read at scrape time
// through collect callbacks, so nothing on a request's path keeps them up to date.
// In a fleet every series carries a `node` label (config `nodeName`, else the hostname), so one
// Prometheus scraping all nodes can break each metric down per node.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface StateProbes {
  cache(): { bytes: number; objects: number };
  /** Optional here: a registry built after the metrics (it counts into them) is observed with observeDownloads. */
  downloads?(): { inFlight: number; followers: number };
  upstreams(): Array<{ name: string; rateLimitRemaining: number | undefined; rateLimitLimit: number | undefined; circuitOpen: boolean }>;
}

export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'longshore_http_requests_total',
    help: 'Requests answered, by route, method, status and cache outcome.',
    labelNames: ['route', 'method', 'status', 'cache'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'longshore_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by route and cache outcome.',
    labelNames: ['route', 'cache'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly servedBytes = new Counter({
    name: 'longshore_served_bytes_total',
    help: 'Response bytes sent to clients, by cache outcome (hit: from the local store).',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });

  readonly upstreamBytes = new Counter({
    name: 'longshore_upstream_bytes_total',
    help: 'Content bytes received from upstreams (blobs and manifests).',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  readonly upstreamRequests = new Counter({
    name: 'longshore_upstream_requests_total',
    help: 'Requests sent to upstreams (each redirect hop and token request counts), by kind and status.',
    labelNames: ['upstream', 'method', 'kind', 'status'] as const,
    registers: [this.registry],
  });

  readonly upstreamDuration = new Histogram({
    name: 'longshore_upstream_request_duration_seconds',
    help: 'Time to an upstream response\'s headers, by kind.',
    labelNames: ['upstream', 'kind'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly upstreamErrors = new Counter({
    name: 'longshore_upstream_errors_total',
    help: 'Upstream requests that failed without an HTTP answer, or whose stream broke, by error code.',
    labelNames: ['upstream', 'code'] as const,
    registers: [this.registry],
  });

  readonly staleServed = new Counter({
    name: 'longshore_stale_tags_served_total',
    help: 'Tags answered from cache because the upstream failed.',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  readonly blobDownloads = new Counter({
    name: 'longshore_blob_downloads_total',
    help: 'Blob downloads from upstreams, by result (committed, failed) and resumes.',
    labelNames: ['upstream', 'result'] as const,
    registers: [this.registry],
  });

  readonly evictions = new Counter({
    name: 'longshore_evictions_total',
    help: 'Blobs and manifests evicted from the cache, by reason: budget (over cache.maxSize), disk (under cache.minFreeSpace), requested (an explicit run, e.g. gc).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly evictedBytes = new Counter({
    name: 'longshore_evicted_bytes_total',
    help: 'Bytes evicted from the cache, by reason (as longshore_evictions_total).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly notAdmitted = new Counter({
    name: 'longshore_cache_not_admitted_total',
    help: 'Blob downloads streamed to clients without being cached, by reason: too-large (over cache.admissionShare of the budget), first-request (over cache.doorkeeperShare, not asked for before).',
    labelNames: ['upstream', 'reason'] as const,
    registers: [this.registry],
  });

  readonly notAdmittedBytes = new Counter({
    name: 'longshore_cache_not_admitted_bytes_total',
    help: 'Bytes streamed to clients without being cached because of admission, by reason (as longshore_cache_not_admitted_total).',
    labelNames: ['upstream', 'reason'] as const,
    registers: [this.registry],
  });

  readonly pinnedBytes = new Gauge({
    name: 'longshore_pinned_bytes',
    help: 'Bytes of content covered by pins, as of the last eviction run.',
    registers: [this.registry],
  });

  /** `node`: the value of the `node` label on every series; none when undefined. */
  constructor(probes: StateProbes, node?: string) {
    if (node !== undefined) this.registry.setDefaultLabels({ node });
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    new Gauge({
      name: 'longshore_cache_size_bytes',
      help: 'Bytes of verified content in the store.',
      registers,
      collect() {
        this.set(probes.cache().bytes);
      },
    });
    new Gauge({
      name: 'longshore_cache_objects',
      help: 'Blobs and manifests in the store.',
      registers,
      collect() {
        this.set(probes.cache().objects);
      },
    });
    if (probes.downloads) this.observeDownloads(probes.downloads.bind(probes));
    new Gauge({
      name: 'longshore_upstream_ratelimit_remaining',
      help: 'Pulls left in the upstream\'s rate-limit window (Docker Hub ratelimit-remaining), as last seen.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        this.reset();
        for (const u of probes.upstreams()) if (u.rateLimitRemaining !== undefined) this.set({ upstream: u.name }, u.rateLimitRemaining);
      },
    });
    new Gauge({
      name: 'longshore_upstream_ratelimit_limit',
      help: 'Size of the upstream\'s rate-limit window (Docker Hub ratelimit-limit), as last seen.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        this.reset();
        for (const u of probes.upstreams()) if (u.rateLimitLimit !== undefined) this.set({ upstream: u.name }, u.rateLimitLimit);
      },
    });
    new Gauge({
      name: 'longshore_upstream_circuit_open',
      help: '1 while the upstream\'s circuit breaker is open or probing, else 0.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        for (const u of probes.upstreams()) this.set({ upstream: u.name }, u.circuitOpen ? 1 : 0);
      },
    });
  }

  /** Blob downloads in progress (registry/proxy.ts), read at scrape time. */
  observeDownloads(downloads: () => { inFlight: number; followers: number }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'longshore_downloads_in_flight',
      help: 'Blob downloads from upstreams in progress.',
      registers,
      collect() {
        this.set(downloads().inFlight);
      },
    });
    new Gauge({
      name: 'longshore_download_followers',
      help: 'Client responses currently reading a download in progress.',
      registers,
      collect() {
        this.set(downloads().followers);
      },
    });
  }

  /** Scheduled sync rules (jobs/sync.ts), read at scrape time; `rule` is "<index>:<upstream>/<repository>". */
  observeSync(statuses: () => ReadonlyArray<{ rule: number; upstream: string; repository: string; lastRun: string | null; lastSuccess: string | null; images: number; bytes: number; failures: number }>): void {
    const registers = [this.registry];
    const label = (s: { rule: number; upstream: string; repository: string }) => ({ rule: `${s.rule}:${s.upstream}/${s.repository}` });
    const gauge = (name: string, help: string, value: (s: ReturnType<typeof statuses>[number]) => number | undefined) => new Gauge({
      name,
      help,
      labelNames: ['rule'] as const,
      registers,
      collect() {
        this.reset();
        for (const s of statuses()) {
          const v = value(s);
          if (v !== undefined) this.set(label(s), v);
        }
      },
    });
    gauge('longshore_sync_last_run_timestamp_seconds', 'When the sync rule last ran (Unix time).', (s) => (s.lastRun ? Date.parse(s.lastRun) / 1000 : undefined));
    gauge('longshore_sync_last_success_timestamp_seconds', 'When the sync rule last ran without any error (Unix time).', (s) => (s.lastSuccess ? Date.parse(s.lastSuccess) / 1000 : undefined));
    gauge('longshore_sync_images', 'Images the sync rule kept cached in its last run.', (s) => s.images);
    gauge('longshore_sync_bytes', 'Bytes of the images the sync rule kept cached in its last run.', (s) => s.bytes);
    gauge('longshore_sync_failed_runs', 'Runs of the sync rule that met an error, since start.', (s) => s.failures);
  }
}
