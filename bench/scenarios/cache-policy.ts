// `npm run bench -- --only=cache-policy`: replays one synthetic pull trace through the mirror's own
// eviction code — Catalog (its SQL, priorities and hit flushing) and Evictor (batches, cursor, aging,
// recency guard), on a real SQLite database opened as the server opens it — once per policy and budget,
// and reports the byte and object hit ratios side by side. Only the content store is a stub (evicting
// deletes no file) and time is simulated; admission is decided by the same function the proxy calls.
//
// The trace (seeded, so every policy sees the same requests):
//   - images with Zipf-distributed popularity (s = 0.9), multi-arch (amd64 pulled 90 %, arm64 10 %);
//   - each built on one of a dozen shared base images (alpine 3 MB … a CUDA base of 2.5 GB, the base
//     itself Zipf-popular), plus 1–6 layers of its own, log-normal in size: images from a few MB to
//     several GB;
//   - a daily cycle: daytime images (70 %) and night-time batch images (30 %) whose request rates swing
//     in opposite phase, and a quiet night overall;
//   - churn: each day 10 % of images publish a new version (new top layers, same base), after which
//     the old version is no longer pulled;
//   - clients: 40 % of pulls are re-pulls by a client that has the layers (manifests only), the rest
//     fetch every blob;
//   - one-off huge pulls: 0.4 % of pulls are of an image seen once, with a 1–4 GiB layer.
// The working set is the distinct bytes the trace asks for; budgets are 5 %, 20 % and 50 % of it. The
// first simulated day warms the cache up and is not counted.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Config } from '../../src/config/schema.js';
import { Evictor } from '../../src/cache/evictor.js';
import { Admission, type PolicyName } from '../../src/cache/policy.js';
import { Catalog } from '../../src/metadata/catalog.js';
import { openDatabase } from '../../src/metadata/database.js';
import type { Digest } from '../../src/registry/reference.js';
import { UpstreamRouter } from '../../src/registry/routing.js';
import { DiskSpace } from '../../src/signals.js';
import { prng } from '../lib/prng.js';

const MB = 1e6;
const GiB = 1024 ** 3;
const DAY = 86_400_000;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export interface PolicyVariant {
  /** Shown in the report. */
  label: string;
  policy: PolicyName;
  /** none: every download is cached; cap: cache.admissionShare only; full: and the doorkeeper (cache/policy.ts). */
  admission: 'none' | 'cap' | 'full';
  /** The comparison set; the others are ablations that explain where the gain comes from. */
  compared: boolean;
}

export const VARIANTS: readonly PolicyVariant[] = [
  { label: "today's LRU (image-aware)", policy: 'image-lru', admission: 'none', compared: true },
  { label: 'plain LRU', policy: 'lru', admission: 'none', compared: true },
  { label: 'GDSF (cost 1)', policy: 'gdsf', admission: 'none', compared: true },
  { label: 'new: image LFUDA + admission', policy: 'image-lfuda', admission: 'full', compared: true },
  { label: 'ablation: image LFUDA, no admission', policy: 'image-lfuda', admission: 'none', compared: false },
  { label: 'ablation: image LFUDA, size cap only', policy: 'image-lfuda', admission: 'cap', compared: false },
  { label: "ablation: today's LRU + admission", policy: 'image-lru', admission: 'full', compared: false },
  { label: 'ablation: GDSF + admission', policy: 'gdsf', admission: 'full', compared: false },
];

export const BUDGETS = [0.05, 0.2, 0.5] as const;

export interface TraceSize {
  images: number;
  days: number;
  pullsPerDay: number;
}

export const TRACE_FULL: TraceSize = { images: 800, days: 5, pullsPerDay: 4_000 };
export const TRACE_QUICK: TraceSize = { images: 400, days: 4, pullsPerDay: 3_000 };

interface Blob { digest: Digest; size: number }
interface Platform { digest: Digest; size: number; blobs: Blob[] }
interface ImageVersion { index: Digest; indexSize: number; platforms: Platform[] }
interface Image { repository: string; weight: number; night: boolean; base: number; versions: ImageVersion[] }

type Request = { kind: 'manifest'; repository: string; digest: Digest; size: number; mediaType: string; refs?: { blobs: string[]; manifests: string[] } }
  | { kind: 'blob'; repository: string; digest: Digest; size: number };

interface Pull { at: number; requests: Request[] }

export interface Trace {
  pulls: Pull[];
  /** Distinct bytes asked for. */
  workingSet: number;
  requests: number;
  /** Time of the first counted request (after the warm-up day). */
  countFrom: number;
}

export function buildTrace(size: TraceSize, seed = 20261129): Trace {
  const random = prng(seed);
  let counter = 0;
  const digest = (): Digest => `sha256:${(++counter).toString(16).padStart(64, '0')}`;
  const logNormal = (median: number, sigma: number) => median * Math.exp(sigma * gaussian(random));
  const pickWeighted = (weights: readonly number[]) => {
    const total = weights.reduce((a, b) => a + b, 0);
    let r = random() * total;
    for (let i = 0; i < weights.length; i++) if ((r -= weights[i]!) < 0) return i;
    return weights.length - 1;
  };
  // Base images (per platform): a few shared layers each; sizes as the real ones, roughly.
  const baseSizes = [3 * MB, 30 * MB, 29 * MB, 75 * MB, 120 * MB, 180 * MB, 350 * MB, 420 * MB, 600 * MB, 900 * MB, 1500 * MB, 2500 * MB];
  const bases = baseSizes.map((total) => [0, 1].map(() => {
    const layers = Math.max(1, Math.round(total / (150 * MB)));
    return Array.from({ length: layers }, () => ({ digest: digest(), size: Math.round(total / layers) }));
  }));
  const baseWeights = baseSizes.map((_, i) => 1 / (i + 1) ** 0.8);

  const makeVersion = (base: number): ImageVersion => {
    const own = 1 + Math.floor(random() * 6);
    const platforms = [0, 1].map((arch) => {
      const blobs: Blob[] = [{ digest: digest(), size: 1000 + Math.floor(random() * 8000) }]; // config
      blobs.push(...bases[base]![arch]!);
      for (let i = 0; i < own; i++) blobs.push({ digest: digest(), size: Math.round(Math.min(3 * GiB, logNormal(12 * MB, 1.6))) });
      return { digest: digest(), size: 400 + 80 * blobs.length, blobs };
    });
    return { index: digest(), indexSize: 500, platforms };
  };
  const images: Image[] = Array.from({ length: size.images }, (_, i) => {
    const base = pickWeighted(baseWeights);
    return { repository: `library/app${i}`, weight: 1 / (i + 1) ** 0.9, night: random() < 0.3, base, versions: [makeVersion(base)] };
  });

  const pulls: Pull[] = [];
  const asked = new Map<Digest, number>();
  const ask = (r: Request) => asked.set(r.digest, r.size);
  const total = size.days * size.pullsPerDay;
  let day = 0;
  for (let n = 0; n < total; n++) {
    const at = (n / total) * size.days * DAY;
    const dayPhase = ((at % DAY) / DAY) * 2 * Math.PI; // 0 = midnight
    // Churn: at each midnight, 10 % of images publish a new version.
    if (Math.floor(at / DAY) !== day) {
      day = Math.floor(at / DAY);
      for (const image of images) if (random() < 0.1) image.versions.push(makeVersion(image.base));
    }
    // Night is quiet: thin the daytime pulls out at night rather than moving them.
    const activity = 0.55 - 0.45 * Math.cos(dayPhase);
    if (random() > activity + 0.1) continue;
    let requests: Request[];
    if (random() < 0.004) {
      // A one-off huge pull: a model or dataset image, never seen again.
      const repository = `oneoff/model${n}`;
      const layer = { digest: digest(), size: Math.round((1 + 3 * random()) * GiB) };
      const config = { digest: digest(), size: 2000 };
      const platform = { digest: digest(), size: 700 };
      requests = [
        { kind: 'manifest', repository, digest: platform.digest, size: platform.size, mediaType: MANIFEST, refs: { blobs: [config.digest, layer.digest], manifests: [] } },
        { kind: 'blob', repository, ...config },
        { kind: 'blob', repository, ...layer },
      ];
    } else {
      const weights = images.map((image) => image.weight * (image.night ? 1 + 0.9 * Math.cos(dayPhase) : 1 - 0.9 * Math.cos(dayPhase)));
      const image = images[pickWeighted(weights)]!;
      const version = image.versions[image.versions.length - 1]!;
      const platform = version.platforms[random() < 0.9 ? 0 : 1]!;
      const repoPull = random() < 0.4;
      requests = [
        { kind: 'manifest', repository: image.repository, digest: version.index, size: version.indexSize, mediaType: INDEX, refs: { blobs: [], manifests: version.platforms.map((p) => p.digest) } },
        { kind: 'manifest', repository: image.repository, digest: platform.digest, size: platform.size, mediaType: MANIFEST, refs: { blobs: platform.blobs.map((b) => b.digest), manifests: [] } },
        ...(repoPull ? [] : platform.blobs.map((b): Request => ({ kind: 'blob', repository: image.repository, ...b }))),
      ];
    }
    for (const r of requests) ask(r);
    pulls.push({ at, requests });
  }
  let workingSet = 0;
  for (const s of asked.values()) workingSet += s;
  return { pulls, workingSet, requests: pulls.reduce((a, p) => a + p.requests.length, 0), countFrom: DAY };
}

export interface ReplayResult {
  label: string;
  policy: PolicyName;
  admission: PolicyVariant['admission'];
  compared: boolean;
  budgetShare: number;
  budgetBytes: number;
  byteHitRatio: number;
  objectHitRatio: number;
  bytesFromUpstream: number;
  evictions: number;
  notAdmittedBytes: number;
  seconds: number;
}

/** Replays the trace through Catalog and Evictor with one policy and budget. */
export async function replay(trace: Trace, variant: PolicyVariant, budgetShare: number): Promise<ReplayResult> {
  const started = process.hrtime.bigint();
  const dir = mkdtempSync(join(tmpdir(), 'longshore-cache-policy-'));
  const db = openDatabase(join(dir, 'metadata.db'));
  let now = 0;
  const clock = () => now;
  const settings: Config['cache'] = {
    maxSize: Math.round(trace.workingSet * budgetShare),
    highWatermark: 0.9,
    lowWatermark: 0.8,
    minFreeSpace: 0,
    pins: [],
    checkInterval: 60_000,
    admissionShare: 0.25,
    doorkeeperShare: variant.admission === 'full' ? 0.01 : 1,
    protectRecent: 10_000,
  };
  const catalog = new Catalog(db, clock, { policy: variant.policy, recentMs: settings.protectRecent });
  const evictor = new Evictor({ deleteFile: async () => true, inUse: () => [], forget: () => undefined }, catalog, settings, new UpstreamRouter(['docker.io'], 'docker.io'), () => [], new DiskSpace(dir, settings.minFreeSpace), pino({ level: 'silent' }));
  const admission = variant.admission === 'none' ? undefined : new Admission(settings);
  let lastFlush = 0;
  let hitBytes = 0;
  let bytes = 0;
  let hits = 0;
  let requests = 0;
  let evictions = 0;
  let notAdmittedBytes = 0;
  let upstreamBytes = 0;
  for (const pull of trace.pulls) {
    // Real time is ms; simulated requests within one pull are a few ms apart.
    now = Math.max(now + 1, Math.round(pull.at));
    if (now - lastFlush >= 5_000) {
      catalog.flush();
      lastFlush = now;
    }
    const counted = pull.at >= trace.countFrom;
    for (const r of pull.requests) {
      now++;
      const stored = catalog.contentInfo(r.digest) !== undefined;
      if (counted) {
        requests++;
        bytes += r.size;
        if (stored) {
          hits++;
          hitBytes += r.size;
        } else {
          upstreamBytes += r.size;
        }
      }
      if (stored) {
        catalog.recordHit(r.digest); // LocalContent.noteAccess
        continue;
      }
      if (r.kind === 'blob' && admission && admission.decide(r.digest, r.size) !== 'cache') {
        if (counted) notAdmittedBytes += r.size;
        continue;
      }
      catalog.recordContent({ digest: r.digest, size: r.size, mediaType: r.kind === 'manifest' ? r.mediaType : undefined, upstream: 'docker.io', repository: r.repository, refs: r.kind === 'manifest' ? r.refs : undefined });
      if (r.kind === 'manifest') catalog.recordHit(r.digest); // a manifest miss is noted as an access too
      if (catalog.totals().bytes > settings.maxSize! * settings.highWatermark) evictions += (await evictor.run()).evicted;
    }
  }
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    label: variant.label,
    policy: variant.policy,
    admission: variant.admission,
    compared: variant.compared,
    budgetShare,
    budgetBytes: settings.maxSize!,
    byteHitRatio: hitBytes / bytes,
    objectHitRatio: hits / requests,
    bytesFromUpstream: upstreamBytes,
    evictions,
    notAdmittedBytes,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export interface CachePolicyReport {
  trace: { images: number; days: number; pulls: number; requests: number; workingSetBytes: number };
  results: ReplayResult[];
  /** Per budget: the new policy's byte hit ratio against the best compared other, and against today's. */
  targets: Array<{ budgetShare: number; newByteHit: number; bestOtherByteHit: number; todayByteHit: number; met: boolean }>;
}

export async function cachePolicyScenario(quick: boolean, log: (message: string) => void): Promise<CachePolicyReport> {
  const size = quick ? TRACE_QUICK : TRACE_FULL;
  const trace = buildTrace(size);
  log(`trace: ${trace.pulls.length} pulls, ${trace.requests} requests, working set ${(trace.workingSet / GiB).toFixed(1)} GiB`);
  const results: ReplayResult[] = [];
  for (const budget of BUDGETS) {
    for (const variant of VARIANTS) {
      const result = await replay(trace, variant, budget);
      results.push(result);
      log(`${(budget * 100).toFixed(0)} % ${variant.label}: byte hit ${(result.byteHitRatio * 100).toFixed(1)} %, object hit ${(result.objectHitRatio * 100).toFixed(1)} % (${result.seconds.toFixed(1)} s)`);
    }
  }
  const targets = BUDGETS.map((budgetShare) => {
    const at = results.filter((r) => r.budgetShare === budgetShare && r.compared);
    const fresh = at.find((r) => r.policy === 'image-lfuda')!;
    const others = at.filter((r) => r !== fresh);
    const best = Math.max(...others.map((r) => r.byteHitRatio));
    const today = others.find((r) => r.policy === 'image-lru')!.byteHitRatio;
    const met = fresh.byteHitRatio >= best && (budgetShare !== 0.05 || fresh.byteHitRatio - today >= 0.1);
    return { budgetShare, newByteHit: fresh.byteHitRatio, bestOtherByteHit: best, todayByteHit: today, met };
  });
  return { trace: { images: size.images, days: size.days, pulls: trace.pulls.length, requests: trace.requests, workingSetBytes: trace.workingSet }, results, targets };
}

export function renderCachePolicy(report: CachePolicyReport, header: string): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  const lines = [
    `# Cache policy simulation, ${header}`,
    '',
    `Trace: ${report.trace.images} images over ${report.trace.days} simulated days, ${report.trace.pulls} pulls, ${report.trace.requests} requests; working set ${(report.trace.workingSetBytes / GiB).toFixed(1)} GiB. The first day is warm-up and not counted. Replayed through src/metadata/catalog.ts and src/cache/evictor.ts (bench/scenarios/cache-policy.ts).`,
    '',
    '| budget | policy | byte hit ratio | object hit ratio | from upstream | evictions | not admitted |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of report.results) {
    lines.push(`| ${pct(r.budgetShare)} (${(r.budgetBytes / GiB).toFixed(1)} GiB) | ${r.label} | ${pct(r.byteHitRatio)} | ${pct(r.objectHitRatio)} | ${(r.bytesFromUpstream / GiB).toFixed(1)} GiB | ${r.evictions} | ${(r.notAdmittedBytes / GiB).toFixed(1)} GiB |`);
  }
  lines.push('', '| budget | new policy, byte hit | best other | today\'s LRU | target met |', '|---|---|---|---|---|');
  for (const t of report.targets) {
    lines.push(`| ${pct(t.budgetShare)} | ${pct(t.newByteHit)} | ${pct(t.bestOtherByteHit)} | ${pct(t.todayByteHit)} | ${t.met ? 'yes' : 'no'} |`);
  }
  lines.push('', 'Target: the new policy\'s byte hit ratio ≥ the best of the others at every budget, and ≥ 10 points above today\'s LRU at 5 %.', '');
  return lines.join('\n');
}
