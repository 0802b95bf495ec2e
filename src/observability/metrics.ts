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
  /** Log lines dropped because the output's reader stopped reading (observability/logger.ts). */
  droppedLogLines?(): number;
}

/** Upper bounds of longshore_http_request_duration_seconds, in seconds. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** One combination of a finished request's labels, and what was tallied for it. */
export interface TallyRow {
  readonly route: string;
  readonly method: string;
  readonly status: string;
  readonly cache: string;
  count: number;
  bytes: number;
  seconds: number;
  /** Requests per duration bucket (not cumulative); the last slot is above the largest bound. */
  readonly buckets: Float64Array;
}

/**
 * Every finished request, counted in plain fields (http/middleware/request-context.ts). Three prom-client
 * updates per request, each validating and hashing its labels, cost a warm manifest hit ~5 % of its CPU
 * time (bench/NOTES.md §3); here a request costs one map lookup, and the requests counter, the duration
 * histogram and the served-bytes counter read the rows when they are scraped. The rows are bounded:
 * routes, methods (Node's parser knows a fixed set), statuses and cache outcomes are small sets.
 */
export class RequestTally {
  private readonly byKey = new Map<string, TallyRow>();

  constructor(readonly bounds: readonly number[] = DURATION_BUCKETS) {}

  note(route: string, method: string, status: number, cache: string, seconds: number, bytes: number): void {
    const key = `${route} ${method} ${status} ${cache}`;
    let row = this.byKey.get(key);
    if (!row) {
      row = { route, method, status: String(status), cache, count: 0, bytes: 0, seconds: 0, buckets: new Float64Array(this.bounds.length + 1) };
      this.byKey.set(key, row);
    }
    row.count++;
    row.bytes += bytes;
    row.seconds += seconds;
    // The first bound the value does not exceed (Prometheus' le), as prom-client places it.
    let bucket = 0;
    while (bucket < this.bounds.length && seconds > this.bounds[bucket]!) bucket++;
    row.buckets[bucket]!++;
  }

  rows(): Iterable<TallyRow> {
    return this.byKey.values();
  }

  clear(): void {
    this.byKey.clear();
  }
}

type DurationLabels = 'route' | 'cache';
type DurationExport = Awaited<ReturnType<Histogram<DurationLabels>['get']>>;

const DURATION_NAME = 'longshore_http_request_duration_seconds';

/**
 * longshore_http_request_duration_seconds, exported from a RequestTally's rows in the shape prom-client's
 * own Histogram exports (test/unit/metrics.test.ts compares the two). prom-client's typings describe that
 * shape loosely (a numeric `type` enum where the library uses strings), hence the one cast.
 */
class TalliedDurations extends Histogram<DurationLabels> {
  constructor(private readonly tally: RequestTally, registry: Registry) {
    super({
      name: DURATION_NAME,
      help: 'Time from request to the end of the response, by route and cache outcome.',
      labelNames: ['route', 'cache'] as const,
      buckets: [...tally.bounds],
      registers: [registry],
    });
  }

  override async get(): Promise<DurationExport> {
    const groups = new Map<string, { route: string; cache: string; buckets: Float64Array; sum: number; count: number }>();
    for (const row of this.tally.rows()) {
      const key = `${row.route} ${row.cache}`;
      let group = groups.get(key);
      if (!group) groups.set(key, group = { route: row.route, cache: row.cache, buckets: new Float64Array(row.buckets.length), sum: 0, count: 0 });
      for (let i = 0; i < row.buckets.length; i++) group.buckets[i]! += row.buckets[i]!;
      group.sum += row.seconds;
      group.count += row.count;
    }
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const { route, cache, buckets, sum, count } of groups.values()) {
      let cumulative = 0;
      this.tally.bounds.forEach((le, i) => {
        cumulative += buckets[i]!;
        values.push({ labels: { le, route, cache }, value: cumulative, metricName: `${DURATION_NAME}_bucket` });
      });
      values.push({ labels: { le: '+Inf', route, cache }, value: count, metricName: `${DURATION_NAME}_bucket` });
      values.push({ labels: { route, cache }, value: sum, metricName: `${DURATION_NAME}_sum` });
      values.push({ labels: { route, cache }, value: count, metricName: `${DURATION_NAME}_count` });
    }
    const { help, aggregator } = this as unknown as { help: string; aggregator: string };
    return { name: DURATION_NAME, help, type: 'histogram', values, aggregator } as unknown as DurationExport;
  }

  /** What the registry's text format reads when a metric has it (prom-client's Histogram does). */
  getForPromString(): Promise<DurationExport> {
    return this.get();
  }

  /** Called by prom-client's constructor too, before the tally is set. */
  override reset(): void {
    (this.tally as RequestTally | undefined)?.clear();
  }
}

export class Metrics {
  readonly registry = new Registry();

  /** Finished requests; the three metrics below are read from it at scrape time. */
  readonly requests = new RequestTally();

  // Read-only outside: they are fed from `requests` only (an inc here would be lost at the next scrape).
  readonly httpRequests: Pick<Counter<'route' | 'method' | 'status' | 'cache'>, 'get'> = requestCounter(this.registry, this.requests, {
    name: 'longshore_http_requests_total',
    help: 'Requests answered, by route, method, status and cache outcome.',
    labelNames: ['route', 'method', 'status', 'cache'],
    value: (row) => row.count,
  });

  readonly httpDuration: Pick<Histogram<DurationLabels>, 'get'> = new TalliedDurations(this.requests, this.registry);

  readonly servedBytes: Pick<Counter<'cache'>, 'get'> = requestCounter(this.registry, this.requests, {
    name: 'longshore_served_bytes_total',
    help: 'Response bytes sent to clients, by cache outcome (hit: from the local store).',
    labelNames: ['cache'],
    value: (row) => row.bytes,
  });

  /** A counter in this registry. */
  private counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  readonly upstreamBytes = this.counter('longshore_upstream_bytes_total', 'Content bytes received from upstreams (blobs and manifests).', ['upstream'] as const);

  readonly upstreamRequests = this.counter('longshore_upstream_requests_total', 'Requests sent to upstreams (each redirect hop and token request counts), by kind and status.', ['upstream', 'method', 'kind', 'status'] as const);

  readonly upstreamDuration = new Histogram({
    name: 'longshore_upstream_request_duration_seconds',
    help: 'Time to an upstream response\'s headers, by kind.',
    labelNames: ['upstream', 'kind'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly upstreamErrors = this.counter('longshore_upstream_errors_total', 'Upstream requests that failed without an HTTP answer, or whose stream broke, by error code.', ['upstream', 'code'] as const);

  readonly staleServed = this.counter('longshore_stale_tags_served_total', 'Tags answered from cache because the upstream failed.', ['upstream'] as const);

  readonly blobDownloads = this.counter('longshore_blob_downloads_total', 'Blob downloads from upstreams, by result (committed, failed) and resumes.', ['upstream', 'result'] as const);

  readonly evictions = this.counter('longshore_evictions_total', 'Blobs and manifests evicted from the cache, by reason: budget (over cache.maxSize), disk (under cache.minFreeSpace), requested (an explicit run, e.g. gc).', ['reason'] as const);

  readonly evictedBytes = this.counter('longshore_evicted_bytes_total', 'Bytes evicted from the cache, by reason (as longshore_evictions_total).', ['reason'] as const);

  readonly notAdmitted = this.counter('longshore_cache_not_admitted_total', 'Blob downloads streamed to clients without being cached, by reason: too-large (over cache.admissionShare of the budget), first-request (over cache.doorkeeperShare, not asked for before).', ['upstream', 'reason'] as const);

  readonly notAdmittedBytes = this.counter('longshore_cache_not_admitted_bytes_total', 'Bytes streamed to clients without being cached because of admission, by reason (as longshore_cache_not_admitted_total).', ['upstream', 'reason'] as const);

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
    new Counter({
      name: 'longshore_log_lines_dropped_total',
      help: 'Log lines dropped because 16 MiB were waiting for the output (stdout) to be read.',
      registers,
      collect() {
        this.reset();
        this.inc(probes.droppedLogLines?.() ?? 0);
      },
    });
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

/**
 * A counter whose value per label set is summed from a RequestTally's rows when it is scraped: a label set
 * whose sum is 0 is not exported (as a prom-client counter that was never incremented).
 */
function requestCounter<L extends keyof TallyRow & string>(registry: Registry, tally: RequestTally, spec: { name: string; help: string; labelNames: L[]; value: (row: TallyRow) => number }): Counter<L> {
  return new Counter<L>({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const row of tally.rows()) {
        const value = spec.value(row);
        if (value === 0) continue;
        const labels = {} as Record<L, string>;
        for (const name of spec.labelNames) labels[name] = String(row[name]);
        this.inc(labels, value);
      }
    },
  });
}
