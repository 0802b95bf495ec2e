// What the cache keeps: which downloads are admitted into it, and in which order content leaves it.
//
// Every content row carries a priority; eviction removes the lowest first (an index range, see
// Catalog.evictionCandidates), so each policy is a rule for the priority a row gets when it is stored
// and when it is asked for again. Hits are counted in memory and written in time-bounded slices
// (Catalog.flush). The image policies see images: a manifest's hits count for the content it names two
// levels down (an index → its platform manifests → their config and layers), so a client that re-pulls
// an image it already has asks for the manifests only and the layers stay wanted all the same, and a
// base layer shared by many images is wanted by all of them. Content newly named by a manifest that
// ranks higher (a new tag on old layers) is lifted to that manifest's rank when eviction meets it.
//
//   image-lfuda  the default. LFU with dynamic aging (Squid's heap LFUDA), by image: priority =
//                L + frequency, where frequency counts requests for the content or for an image naming
//                it, and L ("the age") is the priority of the last victim, so content that was popular
//                long ago sinks below content wanted now. Size-neutral, which
//                is what the byte hit ratio (the bandwidth bill) rewards: a layer earns its bytes by how
//                often they are wanted. Admission (below) is where size counts.
//   image-lru    recency by image (the policy before this one): priority = the last time the content or
//                a manifest naming it was asked for.
//   lru          plain recency of the content itself (nginx, Varnish).
//   gdsf         Greedy-Dual-Size-Frequency with cost 1 (Squid's heap GDSF): priority = L + frequency /
//                size; favours small objects, so it maximises the object hit ratio, not the byte one.
//
// Only image-lfuda is used by the server; the others exist for bench/scenarios/cache-policy.ts, which
// replays one trace through each of them with this same code.
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.js';

export type PolicyName = 'image-lfuda' | 'image-lru' | 'lru' | 'gdsf';
export const POLICIES: readonly PolicyName[] = ['image-lfuda', 'image-lru', 'lru', 'gdsf'];

/** SQL fragments of a policy. Parameters: @n hits, @t time (ms), @age L; columns as before the update. */
export interface PolicyRules {
  /** The priority of content asked for again (its own hits). */
  readonly self: string;
  /** The priority of content named by a manifest that was asked for; undefined: not an image policy. */
  readonly named: string | undefined;
  /** Priority and frequency of newly stored content, given the highest frequency of a manifest naming it. */
  initial(size: number, now: number, age: number, parentFrequency: number): { priority: number; frequency: number };
}

const MiB = 1024 * 1024;
/** Milliseconds since the epoch divided by this are a fraction of one hit: recency breaks frequency ties. */
const TIE = 1e13;

export const RULES: Readonly<Record<PolicyName, PolicyRules>> = {
  'image-lfuda': {
    // Ties (the same frequency) go to the most recently wanted: t / 1e13 is below 1 until the year 2286.
    self: `@age + frequency + @n + @t / ${TIE}`,
    named: `@age + frequency + @n + @t / ${TIE}`,
    // Stored again for an image that is still wanted (it was evicted, or a new tag shares it): it is as
    // wanted as that image, not a newcomer.
    initial: (_size, now, age, parentFrequency) => ({ priority: age + parentFrequency + 1 + now / TIE, frequency: parentFrequency + 1 }),
  },
  'image-lru': {
    self: '@t',
    named: '@t',
    initial: (_size, now) => ({ priority: now, frequency: 1 }),
  },
  lru: {
    self: '@t',
    named: undefined,
    initial: (_size, now) => ({ priority: now, frequency: 1 }),
  },
  gdsf: {
    self: `@age + (frequency + @n) * ${MiB}.0 / MAX(size, 1)`,
    named: undefined,
    initial: (size, _now, age) => ({ priority: age + MiB / Math.max(size, 1), frequency: 1 }),
  },
};

/** Remembered first requests of large blobs (about 150 bytes each). */
const DOORKEEPER_ENTRIES = 10_000;

export type AdmissionVerdict = 'cache' | 'too-large' | 'first-request';

/**
 * Admission, decided before a download is written (the proxy asks with the size a manifest declares,
 * then again with the size the upstream sends):
 *   - a blob larger than cache.admissionShare of the budget is never cached: caching it would evict
 *     content wanted far more often per byte, and a blob larger than the low watermark's room would be
 *     evicted again by the very run it set off — the whole cache traded for nothing;
 *   - a blob larger than cache.doorkeeperShare of the budget is cached on its second request (TinyLFU's
 *     doorkeeper, nginx's proxy_cache_min_uses, for large blobs only): a one-off pull of a huge image
 *     streams through and evicts nothing, an image pulled twice is cached from then on;
 *   - everything else, and everything when the size is not known yet or there is no budget, is cached.
 * Each refused client streams the blob from the upstream itself, verified on the way.
 */
export class Admission {
  private readonly seen = new LRUCache<string, true>({ max: DOORKEEPER_ENTRIES });

  constructor(private readonly settings: Pick<Config['cache'], 'maxSize' | 'admissionShare' | 'doorkeeperShare'>) {}

  /** The verdict for a download of `size` bytes of `key` (upstream and digest); records the request. */
  decide(key: string, size: number | undefined): AdmissionVerdict {
    const budget = this.settings.maxSize;
    if (size === undefined || budget === null) return 'cache';
    if (size > budget * this.settings.admissionShare) return 'too-large';
    if (size <= budget * this.settings.doorkeeperShare || this.seen.has(key)) return 'cache';
    this.seen.set(key, true);
    return 'first-request';
  }
}
