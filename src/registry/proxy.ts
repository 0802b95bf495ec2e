// The pull-through cache: a Registry that answers from local content and fills misses from the
// upstream the repository routes to. Digests are immutable and served local-first forever; tags are the
// only thing that goes stale (tagTTL, then a HEAD revalidation, which Docker Hub does not count against
// its pull rate limit). One fetch per manifest or blob at a time; concurrent callers join it.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { LongshoreError, isLongshoreError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { AdmissionVerdict } from '../cache/policy.js';
import type { UpstreamBlob, UpstreamClient } from '../upstream/client.js';
import { BlobFill } from './blob-fill.js';
import type { TagRow } from '../metadata/catalog.js';
import type { LocalContent, StoredManifest } from './local-content.js';
import { AcceptSet, MANIFEST_TYPES, MediaType, declaredMediaType, isListedDescriptor, manifestReferences } from './media-types.js';
import { referenceText, type Digest, type Reference } from './reference.js';
import type { RepositoryRef } from './routing.js';
import { paginate } from './pagination.js';
import { SingleFlight } from './single-flight.js';
import { algorithmOf, CANONICAL_ALGORITHM, digestOf, referrersTagOf } from '../digest.js';
import { DigestVerifier } from './verifying-stream.js';
import type { BlobHandle, BlobInfo, CacheOutcome, ManifestAnswer, ReferrerDescriptor, ReferrersAnswer, Registry, RequestContext, TagListAnswer, TagListQuery } from './types.js';

export interface UpstreamEntry {
  client: UpstreamClient;
  /** ms a tag resolution is served without asking the upstream. */
  tagTTL: number;
  /** Never contact the upstream: answer from cache or not at all. */
  offline: boolean;
  /** Range requests allowed per download to resume a broken stream. */
  resumeAttempts: number;
  /** ms an upstream "not found" for a (repository, reference) is answered without asking again. */
  negativeTTL: number;
  /** Act with each client's own credentials (see config passThroughCredentials). */
  passThroughCredentials: boolean;
  /** ms the upstream's verdict on a client's credentials for a repository is trusted. */
  credentialTTL: number;
  /** Tags whose cached resolution is served without revalidation, forever (config immutableTags). */
  immutable?: ((tag: string) => boolean) | undefined;
}

/** A matcher for tag globs where "*" is any run of characters: "*.*.*", "*-alpine3.19". */
export function tagGlobs(patterns: readonly string[]): ((tag: string) => boolean) | undefined {
  if (patterns.length === 0) return undefined;
  const regex = new RegExp(`^(?:${patterns.map((p) => p.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, '\\$&')).join('.*')).join('|')})$`);
  return (tag) => regex.test(tag);
}

/** Tells when the data directory is short of space, and asks for room to be made. */
export interface DiskPressure {
  isLow(): Promise<boolean>;
  relieve(): void;
  /** Whether the cache takes a download of this size (cache/policy.ts Admission); undefined: every one. */
  admit?(key: string, size: number | undefined): AdmissionVerdict;
}

/** A download the cache does not take (admission): its upstream response, for the client that started it. */
class NotAdmitted {
  constructor(readonly upstream: UpstreamBlob, readonly verdict: Exclude<AdmissionVerdict, 'cache'>) {}
}

/** Upstream failures after which a cached tag is served stale rather than failing the pull. */
const STALE_IF = new Set(['LS_UPSTREAM_UNAVAILABLE', 'LS_UPSTREAM_TIMEOUT', 'LS_UPSTREAM_RATE_LIMITED']);

type Method = 'GET' | 'HEAD';

/** Upstream answers meaning "this repository has no such thing" (Docker Hub answers 401 for a name it does not have). */
const NOT_FOUND = new Set(['LS_MANIFEST_NOT_FOUND', 'LS_BLOB_NOT_FOUND', 'LS_NAME_NOT_FOUND', 'LS_UPSTREAM_DENIED']);
/** Remembered "not found" answers, at most (about 200 bytes each). */
const NEGATIVE_ENTRIES = 10_000;
/** Remembered verdicts on clients' pass-through credentials, at most (about 150 bytes each). */
const VERDICT_ENTRIES = 10_000;
/** Remembered sizes of blobs the cache did not admit, at most (about 150 bytes each). */
const OVERSIZE_ENTRIES = 10_000;

/**
 * A repository's referrers list for a subject is cached as a tag resolution: the tag is the subject's
 * digest (which no tag can be: tags have no ":"), under this accept key, pointing at the list stored as
 * an OCI index. So it goes stale after tagTTL, is served stale when the upstream fails, and offline.
 */
export const REFERRERS_KEY = 'referrers';
/** What a referrers tag (the tag schema) is asked for with. */
const INDEX_ACCEPT = AcceptSet.parse(MediaType.OciIndex);

interface PendingFill {
  digest: Digest;
  fill: Promise<BlobFill | NotAdmitted>;
  /** Repositories whose requests started or joined it: they need no confirmation to join. */
  repositories: Set<string>;
}

export class ProxyRegistry implements Registry {
  private readonly manifestFlights = new SingleFlight<ManifestAnswer>();
  /** Referrers lists being fetched, by repository and subject: the stored list's bytes. */
  private readonly referrerFlights = new SingleFlight<Buffer>();
  /**
   * Blob downloads under way, by upstream and digest: only requests routed to the same upstream join a
   * download, so a slow or hostile upstream never holds another upstream's clients.
   */
  private readonly fills = new Map<string, PendingFill>();
  /** Upstream confirmations (a HEAD) that a repository holds content already stored or downloading. */
  private readonly confirmations = new SingleFlight<boolean>();
  /** upstreamHolds() checks under way: concurrent first uploads to one new name ask once. */
  private readonly holdsChecks = new SingleFlight<boolean>();
  /** Upstream "not found" answers, per (upstream, repository, reference), for the upstream's negativeTTL. */
  private readonly absent = new LRUCache<string, { error: LongshoreError; until: number }>({ max: NEGATIVE_ENTRIES });
  /** Pass-through upstreams: whether the upstream accepted a client's credentials for a repository. */
  private readonly verdicts = new LRUCache<string, { allowed: boolean; until: number }>({ max: VERDICT_ENTRIES });
  /** The same downloads once their upstream answered, for counting readers. */
  private readonly running = new Set<BlobFill>();
  /** Sizes of blobs an upstream sent that the cache did not admit: the next request streams at once. */
  private readonly oversize = new LRUCache<string, number>({ max: OVERSIZE_ENTRIES });

  constructor(
    private readonly local: LocalContent,
    private readonly upstreams: ReadonlyMap<string, UpstreamEntry>,
    private readonly maxManifestSize: number,
    private readonly metrics: Metrics | undefined,
    private readonly log: Logger,
    private readonly diskPressure?: DiskPressure,
    private readonly now: () => number = Date.now,
  ) {}

  /** Downloads in progress (for shutdown and metrics). */
  get activeFills(): number {
    return this.fills.size;
  }

  /** Digests being downloaded now. */
  *downloading(): Iterable<Digest> {
    for (const pending of this.fills.values()) yield pending.digest;
  }

  /** Downloads in progress and the client streams reading them. */
  downloads(): { inFlight: number; followers: number } {
    let followers = 0;
    for (const fill of this.running) followers += fill.readers;
    return { inFlight: this.fills.size, followers };
  }

  /** Resolves when the download of `digest` from `upstream`, if one is under way, has finished (committed or failed). */
  async fillSettled(upstream: string, digest: Digest): Promise<void> {
    const pending = this.fills.get(fillKey(upstream, digest));
    if (!pending) return;
    const fill = await pending.fill.catch(() => undefined);
    // Not admitted to the cache: nothing is being stored, so there is nothing to wait for.
    if (fill instanceof BlobFill) await fill.done.catch(() => undefined);
  }

  /** Resolves when every download now in progress has finished (committed or failed). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.fills.values()].map(async (p) => {
      const fill = await p.fill;
      if (fill instanceof BlobFill) await fill.done;
    }));
  }

  /**
   * A cache hit answered from memory, synchronously: a digest this repository may be served, or a tag
   * resolved less than tagTTL ago, whose manifest (for a GET, its body too) is in memory. Undefined
   * otherwise; manifest() then does the rest, hits whose body is on disk included. Most warm pulls end
   * here (bench/NOTES.md §3).
   */
  manifestHit(repo: RepositoryRef, reference: Reference, accept: AcceptSet, method: Method): ManifestAnswer | undefined {
    const entry = this.upstream(repo.upstream);
    // Whose credentials the upstream accepted is known only to manifest(), which has the request's.
    if (entry.passThroughCredentials) return undefined;
    let stored: StoredManifest | undefined;
    if (reference.kind === 'digest') {
      if (this.local.holds(repo.upstream, repo.name, reference.digest)) stored = this.local.manifest(reference.digest);
    } else if (!entry.offline) {
      const known = acceptedRow(this.local.tags(repo.upstream, repo.name, reference.tag), accept);
      if (known && this.fresh(known, entry, reference.tag) && this.local.holds(repo.upstream, repo.name, known.digest)) stored = this.local.manifest(known.digest);
    }
    const answer = stored && this.local.answerInMemory(stored, method, 'hit');
    // holds() was true just now, so the link is recorded: only the hit is left to count.
    if (answer) this.local.noteHit(answer.digest);
    return answer;
  }

  async manifest(repo: RepositoryRef, reference: Reference, accept: AcceptSet, method: Method, ctx: RequestContext): Promise<ManifestAnswer> {
    await this.admit(repo, ctx, (client) => client.manifest('HEAD', repo.name, referenceText(reference), MANIFEST_TYPES.join(', '), this.maxManifestSize, ctx.requestId));
    const answer = reference.kind === 'digest'
      ? await this.manifestByDigest(repo, reference.digest, accept, method, ctx)
      : await this.manifestByTag(repo, reference.tag, accept, method, ctx);
    if (answer.outcome !== 'upstream') this.local.noteAccess(repo.upstream, repo.name, answer.digest);
    return answer;
  }

  private async manifestByDigest(repo: RepositoryRef, digest: Digest, accept: AcceptSet, method: Method, ctx: RequestContext): Promise<ManifestAnswer> {
    const stored = this.local.holds(repo.upstream, repo.name, digest) ? this.local.manifest(digest) : undefined;
    if (stored) {
      const answer = await this.local.answerStored(stored, method, 'hit');
      if (answer) return answer;
    }
    this.requireOnline(repo, 'manifest', digest);
    this.rememberedAbsent(repo, digest);
    // Content addressed by digest is the same whatever the client accepts: ask for every manifest type.
    const acceptAll = [...new Set([...accept.forwarded, ...MANIFEST_TYPES])].join(', ');
    const { promise, leader } = this.manifestFlights.join(`${repo.upstream}/${repo.name}@${digest}`, () =>
      this.noteAbsence(repo, digest, async () => {
        // Stored for another repository: served here once the upstream confirms this one holds it too.
        const elsewhere = this.local.privateToLocal(digest) ? undefined : this.local.manifest(digest);
        if (elsewhere) {
          if (await this.confirm(repo, 'manifest', digest, ctx)) {
            const answer = await this.local.answerStored(elsewhere, 'GET', 'revalidated');
            if (answer) return answer;
          }
          // The upstream just said it has no such manifest in this repository: no GET to hear it again.
          this.rememberedAbsent(repo, digest);
        }
        return this.fetchManifest(repo, { kind: 'digest', digest }, acceptAll, ctx);
      }));
    return withOutcome(await promise, method, leader ? 'miss' : 'coalesced');
  }

  /** `staleIfError`: when the upstream fails, answer with a cached resolution of the tag (the default), or throw. */
  private async manifestByTag(repo: RepositoryRef, tag: string, accept: AcceptSet, method: Method, ctx: RequestContext, staleIfError = true): Promise<ManifestAnswer> {
    const entry = this.upstream(repo.upstream);
    const rows = this.local.tags(repo.upstream, repo.name, tag);
    if (entry.offline) return this.offlineTag(repo, tag, rows, accept, method);
    const known = acceptedRow(rows, accept);
    if (known && this.fresh(known, entry, tag) && this.local.holds(repo.upstream, repo.name, known.digest)) {
      const stored = this.local.manifest(known.digest);
      const answer = stored && (await this.local.answerStored(stored, method, 'hit'));
      if (answer) return answer;
    }
    this.rememberedAbsent(repo, tag);
    const key = `${repo.upstream}/${repo.name}:${tag}#${accept.key}#${method}`;
    const { promise, leader } = this.manifestFlights.join(key, () => this.noteAbsence(repo, tag, () => this.resolveTag(repo, tag, accept, method, known?.digest, ctx)));
    try {
      const answer = await promise;
      return leader ? answer : { ...answer, outcome: answer.outcome === 'miss' ? 'coalesced' : answer.outcome };
    } catch (err) {
      if (!staleIfError || !isLongshoreError(err) || !STALE_IF.has(err.code)) throw err;
      // Stale-if-error: any cached resolution of this tag the client can accept beats a failed pull.
      for (const row of rows) {
        const stored = accept.accepts(row.media_type) ? this.heldManifest(repo, row.digest) : undefined;
        const answer = stored && (await this.local.answerStored(stored, method, 'stale'));
        if (answer) {
          this.metrics?.staleServed.inc({ upstream: repo.upstream });
          this.log.warn({ requestId: ctx.requestId, upstream: repo.upstream, repository: repo.name, tag, digest: row.digest, reason: err.code }, 'serving stale tag');
          return answer;
        }
      }
      throw err;
    }
  }

  /** Offline: any cached resolution the client accepts, however old; else the tag is unknown. */
  private async offlineTag(repo: RepositoryRef, tag: string, rows: readonly TagRow[], accept: AcceptSet, method: Method): Promise<ManifestAnswer> {
    const ordered = [...rows].sort((a, b) => Number(b.accept_key === accept.key) - Number(a.accept_key === accept.key));
    for (const row of ordered) {
      const stored = accept.accepts(row.media_type) ? this.heldManifest(repo, row.digest) : undefined;
      const answer = stored && (await this.local.answerStored(stored, method, 'hit'));
      if (answer) return answer;
    }
    return this.notCachedOffline(repo, 'manifest', tag);
  }

  /** Throws the not-found answer of an offline upstream; returns otherwise. */
  private requireOnline(repo: RepositoryRef, kind: 'manifest' | 'blob', reference: string): undefined {
    if (this.upstream(repo.upstream).offline) this.notCachedOffline(repo, kind, reference);
    return undefined;
  }

  private notCachedOffline(repo: RepositoryRef, kind: 'manifest' | 'blob', reference: string): never {
    throw new LongshoreError(kind === 'manifest' ? 'LS_MANIFEST_NOT_FOUND' : 'LS_BLOB_NOT_FOUND',
      `${kind} ${repo.name}${reference.includes(':') ? '@' : ':'}${reference} is not cached, and this mirror is offline for ${repo.upstream}`,
      { upstream: repo.upstream, repository: repo.name, reference, offline: true });
  }

  /** Asks the upstream what a tag points to now: a HEAD when a cached answer may still be right, else a GET. */
  private async resolveTag(repo: RepositoryRef, tag: string, accept: AcceptSet, method: Method, cachedDigest: Digest | undefined, ctx: RequestContext): Promise<ManifestAnswer> {
    const client = this.clientFor(repo, ctx);
    // Always a HEAD first, even for a cold GET: Docker Hub counts only manifest GETs against the pull
    // rate limit, so a name that does not exist (an attacker's random names) or a tag whose digest is
    // already stored costs the mirror's quota nothing. The body is then fetched by digest.
    let headDigest: Digest | undefined;
    {
      const head = await client.manifest('HEAD', repo.name, tag, accept.upstreamHeader(), this.maxManifestSize, ctx.requestId);
      headDigest = head.digest;
      // The upstream's answer confirms that this repository holds the digest — unless the digest is of
      // pushed content no proxied repository holds: that is fetched, never taken on an upstream's word.
      const confirmed = head.digest && (this.local.holds(repo.upstream, repo.name, head.digest) || !this.local.privateToLocal(head.digest));
      const stored = confirmed ? this.local.manifest(head.digest!) : undefined;
      if (stored) {
        const answer = await this.local.answerStored(stored, method, 'revalidated');
        if (answer) {
          this.local.link(repo.upstream, repo.name, stored.digest);
          this.local.putTag(repo.upstream, repo.name, tag, accept.key, stored.digest, stored.mediaType);
          return answer;
        }
      }
      // A HEAD the cache cannot answer is passed through: the body is fetched when a client GETs it
      // (dockerd and containerd resolve a tag with HEAD, then GET the index by digest). The resolution
      // is recorded all the same, so the tag can be answered from cache once that digest is stored —
      // also when the upstream is down later.
      if (method === 'HEAD' && head.digest && head.size !== undefined) {
        this.local.putTag(repo.upstream, repo.name, tag, accept.key, head.digest, head.mediaType);
        return { digest: head.digest, mediaType: head.mediaType, size: head.size, outcome: 'upstream' };
      }
    }
    let fetched: ManifestAnswer | undefined;
    if (headDigest !== undefined) {
      try {
        fetched = await this.fetchManifest(repo, { kind: 'digest', digest: headDigest }, accept.upstreamHeader(), ctx);
      } catch (err) {
        // The tag moved between the HEAD and the GET: fetch what it points to now.
        if (!isLongshoreError(err, 'LS_MANIFEST_NOT_FOUND')) throw err;
      }
    }
    fetched ??= await this.fetchManifest(repo, { kind: 'tag', tag }, accept.upstreamHeader(), ctx);
    this.local.putTag(repo.upstream, repo.name, tag, accept.key, fetched.digest, fetched.mediaType);
    return withOutcome(fetched, method, 'miss');
  }

  /** GETs a manifest, checks its digest, and stores it. */
  private async fetchManifest(repo: RepositoryRef, reference: Reference, acceptHeader: string, ctx: RequestContext): Promise<ManifestAnswer> {
    const client = this.clientFor(repo, ctx);
    const ref = referenceText(reference);
    const fetched = await client.manifest('GET', repo.name, ref, acceptHeader, this.maxManifestSize, ctx.requestId);
    const body = fetched.body!;
    this.metrics?.upstreamBytes.inc({ upstream: repo.upstream }, body.length);
    const expected = reference.kind === 'digest' ? reference.digest : fetched.digest;
    // Named with the algorithm the client or the upstream named it by (the upstream's sha512 tag stays sha512).
    const digest = digestOf(body, expected !== undefined ? algorithmOf(expected) : CANONICAL_ALGORITHM);
    if (expected !== undefined && expected !== digest) {
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${repo.upstream} sent a manifest for ${repo.name}:${ref} whose content does not match digest ${expected}`, { expected, actual: digest });
    }
    const mediaType = MANIFEST_TYPES.includes(fetched.mediaType) ? fetched.mediaType : declaredMediaType(body) ?? fetched.mediaType;
    await this.local.putManifest({ digest, size: body.length, mediaType, upstream: repo.upstream, repository: repo.name, refs: manifestReferences(body) }, body);
    this.log.debug({ requestId: ctx.requestId, upstream: repo.upstream, repository: repo.name, reference: ref, digest, mediaType }, 'manifest cached');
    return { digest, mediaType, size: body.length, body, outcome: 'miss' };
  }

  async statBlob(repo: RepositoryRef, digest: Digest, ctx: RequestContext): Promise<BlobInfo> {
    await this.admit(repo, ctx, (client) => client.blob('HEAD', repo.name, digest, ctx.requestId));
    if (this.local.holds(repo.upstream, repo.name, digest)) {
      const size = await this.local.blobSize(digest);
      if (size !== undefined) return { digest, size, outcome: 'hit' };
      const pending = this.fills.get(fillKey(repo.upstream, digest));
      const fill = pending && (await pending.fill.catch(() => undefined));
      if (fill instanceof BlobFill && !fill.failed) return { digest, size: fill.size, outcome: 'coalesced' };
    }
    this.requireOnline(repo, 'blob', digest);
    this.rememberedAbsent(repo, digest);
    // Answered from an upstream HEAD: a HEAD never downloads the blob. When the blob is stored (for
    // another repository), the upstream's 200 is the confirmation that this repository holds it too.
    const head = await this.noteAbsence(repo, digest, () => this.clientFor(repo, ctx).blob('HEAD', repo.name, digest, ctx.requestId));
    if (!this.local.privateToLocal(digest) && (await this.local.blobSize(digest)) !== undefined) this.local.link(repo.upstream, repo.name, digest);
    return { digest, size: head.size, outcome: 'upstream' };
  }

  async openBlob(repo: RepositoryRef, digest: Digest, ctx: RequestContext): Promise<BlobHandle> {
    await this.admit(repo, ctx, (client) => client.blob('HEAD', repo.name, digest, ctx.requestId));
    const key = fillKey(repo.upstream, digest);
    let held = this.local.holds(repo.upstream, repo.name, digest);
    for (;;) {
      const pending = this.fills.get(key);
      if (pending) {
        if (!held && !pending.repositories.has(repo.name)) {
          held = await this.confirm(repo, 'blob', digest, ctx);
          if (!held) throw this.absentBlob(repo, digest);
          continue;
        }
        pending.repositories.add(repo.name);
        const fill = await pending.fill;
        // Too large for the cache: each client streams it from the upstream by itself.
        if (fill instanceof NotAdmitted) return this.passThrough(repo, digest, ctx, fill.verdict);
        if (!fill.failed) return joinFill(fill, 'coalesced');
        // A failed download leaves the map when it settles; start afresh after that.
        await fill.done.catch(() => undefined);
        continue;
      }
      if (!held && !this.local.privateToLocal(digest) && (await this.local.blobSize(digest)) !== undefined) {
        // Stored for another repository: served here once the upstream confirms this one holds it too.
        held = await this.confirm(repo, 'blob', digest, ctx);
        if (!held) throw this.absentBlob(repo, digest);
        continue;
      }
      const stored = held ? await this.local.openBlob(digest) : undefined;
      if (stored) {
        this.local.noteAccess(repo.upstream, repo.name, digest);
        return stored;
      }
      // Checked again after the await: a download may have started meanwhile. From here to the
      // registration in startFill nothing yields, so two callers cannot both start one.
      if (this.fills.has(key)) continue;
      this.requireOnline(repo, 'blob', digest);
      this.rememberedAbsent(repo, digest);
      if (this.diskPressure && (await this.diskPressure.isLow())) {
        if (this.fills.has(key)) continue;
        this.diskPressure.relieve();
        return this.passThrough(repo, digest, ctx, 'disk');
      }
      if (this.fills.has(key)) continue;
      // Admission, when the size is known before asking: declared by a manifest of this repository, or
      // sent by the upstream the last time. Otherwise startFill decides once the upstream answers.
      const known = this.local.declaredSize(repo.upstream, repo.name, digest) ?? this.oversize.get(key);
      const verdict = this.diskPressure?.admit?.(key, known) ?? 'cache';
      if (verdict !== 'cache') return this.passThrough(repo, digest, ctx, verdict);
      const fill = await this.startFill(repo, digest, ctx, known !== undefined);
      if (fill instanceof NotAdmitted) return this.passThrough(repo, digest, ctx, fill.verdict, fill.upstream);
      return joinFill(fill, 'miss');
    }
  }

  /**
   * Asks the upstream (a HEAD, with the mirror's credentials; free on Docker Hub) whether `repo` holds
   * content this mirror stored for another repository. A yes is remembered as a link; a "not found" for
   * negativeTTL. Offline, nothing can be confirmed.
   */
  private confirm(repo: RepositoryRef, kind: 'manifest' | 'blob', digest: Digest, ctx: RequestContext): Promise<boolean> {
    if (this.upstream(repo.upstream).offline) return Promise.resolve(false);
    return this.confirmations.join(`${repo.upstream}/${repo.name}@${digest}`, async () => {
      const client = this.clientFor(repo, ctx);
      try {
        const head = kind === 'manifest'
          ? await client.manifest('HEAD', repo.name, digest, MANIFEST_TYPES.join(', '), this.maxManifestSize, ctx.requestId)
          : await client.blob('HEAD', repo.name, digest, ctx.requestId);
        if (kind === 'manifest' && (head as { digest?: Digest }).digest !== undefined && (head as { digest?: Digest }).digest !== digest) return false;
      } catch (err) {
        if (isLongshoreError(err) && NOT_FOUND.has(err.code)) {
          this.rememberAbsence(repo, digest, err);
          return false;
        }
        throw err;
      }
      this.local.link(repo.upstream, repo.name, digest);
      return true;
    }).promise;
  }

  /**
   * Whether the upstream serves the mirror a repository of this name (its tag list answers). Offline,
   * nothing is asked and the answer is no. An unreachable upstream throws: the caller cannot tell.
   * Concurrent checks of one name (and credentials) share one request, and a "no" is remembered for
   * the upstream's negativeTTL, as other "not found" answers are — except on a pass-through upstream,
   * where the answer depends on the client's credentials (a registry may hide a private repository
   * behind a 404), so one client's "no" says nothing about another's.
   */
  async upstreamHolds(repo: RepositoryRef, ctx: RequestContext): Promise<boolean> {
    const entry = this.upstream(repo.upstream);
    if (entry.offline) return false;
    const shared = !entry.passThroughCredentials;
    if (shared && this.knownAbsent(repo, TAG_LIST)) return false;
    return this.holdsChecks.join(verdictKey(repo, shared ? undefined : ctx.credentials), async () => {
      const ask = () => this.clientFor(repo, ctx).tagList(repo.name, 'n=1', this.maxManifestSize, ctx.requestId);
      try {
        await (shared ? this.noteAbsence(repo, TAG_LIST, ask) : ask());
        return true;
      } catch (err) {
        if (isLongshoreError(err) && NOT_FOUND.has(err.code)) return false;
        throw err;
      }
    }).promise;
  }

  /** The upstream client acting for this request: with the client's own credentials on a pass-through upstream. */
  private clientFor(repo: RepositoryRef, ctx: RequestContext): UpstreamClient {
    const entry = this.upstream(repo.upstream);
    return entry.passThroughCredentials && !ctx.operator ? entry.client.as(ctx.credentials) : entry.client;
  }

  /**
   * Pass-through upstreams: a request goes on (to cache or upstream) only when the upstream accepted
   * this client's credentials — or its anonymity — for the repository within credentialTTL; otherwise
   * `probe` asks it (a HEAD, with those credentials). A refusal is answered 401 with a Basic challenge,
   * so that clients send the credentials they hold for this mirror. Offline, nothing can be asked.
   */
  private async admit(repo: RepositoryRef, ctx: RequestContext, probe: (client: UpstreamClient) => Promise<unknown>): Promise<void> {
    const entry = this.upstream(repo.upstream);
    if (!entry.passThroughCredentials || ctx.operator) return;
    const key = verdictKey(repo, ctx.credentials);
    const known = this.verdicts.get(key);
    if (known && known.until > this.now()) {
      if (known.allowed) return;
      throw refusal(repo, ctx);
    }
    if (entry.offline) throw refusal(repo, ctx);
    const until = this.now() + entry.credentialTTL;
    try {
      await probe(entry.client.as(ctx.credentials));
    } catch (err) {
      if (isLongshoreError(err, 'LS_UPSTREAM_DENIED')) {
        this.verdicts.set(key, { allowed: false, until });
        throw refusal(repo, ctx);
      }
      // "Not found" means the credentials were good enough to be told so.
      if (isLongshoreError(err) && NOT_FOUND.has(err.code)) this.verdicts.set(key, { allowed: true, until });
      throw err;
    }
    this.verdicts.set(key, { allowed: true, until });
  }

  /** A stored manifest `repo` holds; undefined otherwise. */
  private heldManifest(repo: RepositoryRef, digest: Digest): StoredManifest | undefined {
    return this.local.holds(repo.upstream, repo.name, digest) ? this.local.manifest(digest) : undefined;
  }

  private absentBlob(repo: RepositoryRef, digest: Digest): LongshoreError {
    return this.absent.get(absentKey(repo, digest))?.error
      ?? new LongshoreError('LS_BLOB_NOT_FOUND', `blob ${digest} is not known to repository ${repo.name} at ${repo.upstream}`, { upstream: repo.upstream, repository: repo.name, digest });
  }

  /** Throws the upstream's remembered "not found" for the reference, if it is still fresh. */
  private rememberedAbsent(repo: RepositoryRef, reference: string): void {
    const error = this.knownAbsent(repo, reference);
    if (error) throw error;
  }

  /** The upstream's remembered "not found" for the reference, if it is still fresh; a stale one is forgotten. */
  private knownAbsent(repo: RepositoryRef, reference: string): LongshoreError | undefined {
    const key = absentKey(repo, reference);
    const known = this.absent.get(key);
    if (!known) return undefined;
    if (known.until > this.now()) return known.error;
    this.absent.delete(key);
    return undefined;
  }

  private rememberAbsence(repo: RepositoryRef, reference: string, error: LongshoreError): void {
    const entry = this.upstream(repo.upstream);
    // One client's refused credentials say nothing about the next client's.
    if (entry.passThroughCredentials && error.code === 'LS_UPSTREAM_DENIED') return;
    const ttl = entry.negativeTTL;
    if (ttl > 0) this.absent.set(absentKey(repo, reference), { error, until: this.now() + ttl });
  }

  /** Runs an upstream request, remembering a "not found" answer for the reference. */
  private async noteAbsence<T>(repo: RepositoryRef, reference: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (isLongshoreError(err) && NOT_FOUND.has(err.code)) this.rememberAbsence(repo, reference, err);
      throw err;
    }
  }

  /**
   * The blob straight from the upstream, verified on the way, not cached: with the disk short of space,
   * or a blob larger than the cache admits. `opened`: the upstream response a fill already has.
   */
  private async passThrough(repo: RepositoryRef, digest: Digest, ctx: RequestContext, why: 'disk' | Exclude<AdmissionVerdict, 'cache'>, opened?: UpstreamBlob): Promise<BlobHandle> {
    const upstream = opened ?? await this.noteAbsence(repo, digest, () => this.clientFor(repo, ctx).blob('GET', repo.name, digest, ctx.requestId, this.local.declaredSize(repo.upstream, repo.name, digest)));
    if (why === 'disk') this.log.warn({ requestId: ctx.requestId, digest, size: upstream.size }, 'disk short of space; streaming from upstream without caching');
    else this.log.info({ requestId: ctx.requestId, digest, size: upstream.size, reason: why }, 'blob not admitted to the cache; streaming from upstream without caching');
    this.metrics?.blobDownloads.inc({ upstream: repo.upstream, result: 'passed-through' });
    if (why !== 'disk') this.metrics?.notAdmitted.inc({ upstream: repo.upstream, reason: why });
    return {
      digest,
      size: upstream.size,
      outcome: 'upstream',
      ranges: false,
      stream: () => {
        const verifier = new DigestVerifier(digest, upstream.size);
        upstream.body.on('error', (err) => verifier.destroy(err));
        // It may have failed already (the size cap), before this listener existed.
        if (upstream.body.errored) verifier.destroy(upstream.body.errored);
        upstream.body.on('data', (chunk: Buffer) => {
          this.metrics?.upstreamBytes.inc({ upstream: repo.upstream }, chunk.length);
          if (why !== 'disk') this.metrics?.notAdmittedBytes.inc({ upstream: repo.upstream, reason: why }, chunk.length);
        });
        return upstream.body.pipe(verifier);
      },
      release: () => void upstream.body.destroy(),
    };
  }

  /** `decided`: admission already saw the size this upstream will send (a manifest declared it). */
  private startFill(repo: RepositoryRef, digest: Digest, ctx: RequestContext, decided = false): Promise<BlobFill | NotAdmitted> {
    const { resumeAttempts } = this.upstream(repo.upstream);
    const client = this.clientFor(repo, ctx);
    const key = fillKey(repo.upstream, digest);
    const log = this.log.child({ requestId: ctx.requestId, upstream: repo.upstream, repository: repo.name, digest });
    const pending = (async () => {
      const started = this.now();
      // A manifest of this repository declares the blob's size: an upstream sending more is cut off there.
      const declared = this.local.declaredSize(repo.upstream, repo.name, digest);
      const upstream = await this.noteAbsence(repo, digest, () => client.blob('GET', repo.name, digest, ctx.requestId, declared));
      const verdict = decided && upstream.size === declared ? 'cache' : this.diskPressure?.admit?.(key, upstream.size) ?? 'cache';
      if (verdict !== 'cache') {
        if (upstream.size !== undefined) this.oversize.set(key, upstream.size);
        return new NotAdmitted(upstream, verdict);
      }
      let writer;
      try {
        writer = await this.local.createWriter(digest, upstream.size);
      } catch (err) {
        upstream.body.destroy();
        throw err;
      }
      const fill = new BlobFill(digest, upstream.size, writer, upstream.body,
        (size) => this.local.recordBlob({ digest, size, upstream: repo.upstream, repository: repo.name }),
        {
          resume: (offset) => client.blobFrom(repo.name, digest, offset, ctx.requestId, declared),
          maxResumes: resumeAttempts,
          onResume: (offset, attempt, cause) => {
            this.metrics?.blobDownloads.inc({ upstream: repo.upstream, result: 'resumed' });
            log.warn({ offset, attempt, cause: cause.message }, 'resuming blob download');
          },
          onBytes: (count) => this.metrics?.upstreamBytes.inc({ upstream: repo.upstream }, count),
          relayFrom: (offset) => client.blobFrom(repo.name, digest, offset, ctx.requestId, declared),
          chunks: this.local.chunks,
        });
      this.running.add(fill);
      fill.done.then(
        () => {
          this.metrics?.blobDownloads.inc({ upstream: repo.upstream, result: 'committed' });
          log.info({ bytes: fill.bytesWritten, ms: this.now() - started }, 'blob cached');
        },
        (err: Error) => {
          this.metrics?.blobDownloads.inc({ upstream: repo.upstream, result: 'failed' });
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
            log.error({ bytes: fill.bytesWritten }, 'disk full while caching; clients continue from upstream, nothing cached');
            this.diskPressure?.relieve();
          } else {
            log.warn({ err, bytes: fill.bytesWritten }, 'blob download failed; nothing cached');
          }
        },
      ).finally(() => {
        this.running.delete(fill);
        if (this.fills.get(key) === entry) this.fills.delete(key);
      });
      return fill;
    })();
    const entry: PendingFill = { digest, fill: pending, repositories: new Set([repo.name]) };
    this.fills.set(key, entry);
    const settled = () => {
      if (this.fills.get(key) === entry) this.fills.delete(key);
    };
    // Not admitted: nothing to join once the requests waiting now have their answer.
    pending.then((fill) => fill instanceof NotAdmitted && settled(), settled);
    return pending;
  }

  /**
   * The upstream's tag list, page by page as it paginates it. When the upstream fails (or the mirror is
   * offline), the tags this mirror has resolved for the repository are listed instead.
   */
  async tags(repo: RepositoryRef, query: TagListQuery, ctx: RequestContext): Promise<TagListAnswer> {
    await this.admit(repo, ctx, (client) => client.tagList(repo.name, 'n=1', this.maxManifestSize, ctx.requestId));
    const entry = this.upstream(repo.upstream);
    if (!entry.offline) {
      const params = new URLSearchParams();
      if (query.n !== undefined) params.set('n', String(query.n));
      if (query.last !== undefined) params.set('last', query.last);
      try {
        const page = await this.clientFor(repo, ctx).tagList(repo.name, params.toString(), this.maxManifestSize, ctx.requestId);
        return { ...page, outcome: 'upstream' };
      } catch (err) {
        if (!isLongshoreError(err) || !STALE_IF.has(err.code)) throw err;
      }
    }
    // Cached referrers lists are kept as resolutions of "tags" that are subject digests (REFERRERS_KEY).
    const known = this.local.tagNames(repo.upstream, repo.name).filter((t) => !t.includes(':'));
    if (known.length === 0) {
      throw new LongshoreError('LS_NAME_NOT_FOUND', `repository ${repo.name} has no cached tags, and upstream ${repo.upstream} cannot be asked`, { upstream: repo.upstream, repository: repo.name });
    }
    return { ...paginate(known, query), name: repo.name, outcome: entry.offline ? 'hit' : 'stale' };
  }

  /**
   * The referrers of `subject` (OCI 1.1), cached like a tag: fresh for tagTTL, then asked again; served
   * stale when the upstream fails and from cache when offline. The upstream's referrers API is asked
   * for the whole list, which is filtered here; an upstream without the API (it answers 404) is asked
   * for the referrers tag schema's index instead, as clients do (distribution-spec "Referrers Tag
   * Schema"), so cosign, notation and oras find signatures through the mirror either way. The list is
   * stored as an index the repository holds: the referrer manifests it names are then this
   * repository's to fetch by digest, as an index's children are.
   */
  async referrers(repo: RepositoryRef, subject: Digest, artifactType: string | undefined, ctx: RequestContext): Promise<ReferrersAnswer> {
    await this.admit(repo, ctx, (client) => client.manifest('HEAD', repo.name, subject, MANIFEST_TYPES.join(', '), this.maxManifestSize, ctx.requestId));
    const entry = this.upstream(repo.upstream);
    const row = this.local.tags(repo.upstream, repo.name, subject).find((r) => r.accept_key === REFERRERS_KEY);
    const cached = async (outcome: CacheOutcome): Promise<ReferrersAnswer | undefined> => {
      const body = row && this.heldManifest(repo, row.digest) ? await this.local.manifestBody(row.digest) : undefined;
      if (!body) return undefined;
      this.local.noteAccess(repo.upstream, repo.name, row!.digest);
      return referrersAnswer(body, artifactType, outcome);
    };
    if (entry.offline) {
      const answer = await cached('hit');
      if (answer) return answer;
      throw new LongshoreError('LS_MANIFEST_NOT_FOUND', `referrers of ${repo.name}@${subject} are not cached, and this mirror is offline for ${repo.upstream}`,
        { upstream: repo.upstream, repository: repo.name, reference: subject, offline: true });
    }
    if (row && this.fresh(row, entry, subject)) {
      const answer = await cached('hit');
      if (answer) return answer;
    }
    const { promise, leader } = this.referrerFlights.join(`${repo.upstream}/${repo.name}@${subject}`, () => this.fetchReferrers(repo, subject, ctx));
    try {
      return referrersAnswer(await promise, artifactType, leader ? 'miss' : 'coalesced');
    } catch (err) {
      if (!isLongshoreError(err) || !STALE_IF.has(err.code)) throw err;
      const answer = await cached('stale');
      if (!answer) throw err;
      this.metrics?.staleServed.inc({ upstream: repo.upstream });
      this.log.warn({ requestId: ctx.requestId, upstream: repo.upstream, repository: repo.name, subject, reason: err.code }, 'serving stale referrers');
      return answer;
    }
  }

  /**
   * The referrers list of `subject` as this repository stores it (an OCI index), after referrers() has
   * answered — fetching, revalidating or serving it stale as for a client. For `warm --with-referrers`
   * and export, which carry the list itself so an offline mirror can answer from it.
   */
  async referrersList(repo: RepositoryRef, subject: Digest, ctx: RequestContext): Promise<{ digest: Digest; mediaType: string; size: number; body: Buffer }> {
    await this.referrers(repo, subject, undefined, ctx);
    const row = this.local.tags(repo.upstream, repo.name, subject).find((r) => r.accept_key === REFERRERS_KEY);
    const body = row && this.heldManifest(repo, row.digest) ? await this.local.manifestBody(row.digest) : undefined;
    if (!row || !body) {
      // Evicted (or replaced and evicted) between the answer and this read: rare, and worth a retry by the caller.
      throw new LongshoreError('LS_MANIFEST_NOT_FOUND', `the referrers list of ${repo.name}@${subject} left the cache while it was read; try again`, { upstream: repo.upstream, repository: repo.name, reference: subject });
    }
    return { digest: row.digest, mediaType: MediaType.OciIndex, size: body.length, body };
  }

  /** Asks the upstream for the whole referrers list of `subject`, stores it, and returns its bytes. */
  private async fetchReferrers(repo: RepositoryRef, subject: Digest, ctx: RequestContext): Promise<Buffer> {
    const listed = await this.clientFor(repo, ctx).referrers(repo.name, subject, this.maxManifestSize, ctx.requestId);
    const manifests = listed ?? await this.referrersByTag(repo, subject, ctx);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
    if (body.length > this.maxManifestSize) {
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${repo.upstream} lists more referrers of ${repo.name}@${subject} than fit in maxManifestSize`, { upstream: repo.upstream, limit: this.maxManifestSize });
    }
    const digest = digestOf(body);
    await this.local.putManifest({ digest, size: body.length, mediaType: MediaType.OciIndex, upstream: repo.upstream, repository: repo.name, refs: manifestReferences(body) }, body);
    this.local.putTag(repo.upstream, repo.name, subject, REFERRERS_KEY, digest, MediaType.OciIndex);
    this.log.debug({ requestId: ctx.requestId, upstream: repo.upstream, repository: repo.name, subject, referrers: manifests.length, api: listed !== undefined }, 'referrers cached');
    return body;
  }

  /** The referrers tag schema: the index the upstream keeps under `<alg>-<hex>`; none when there is no such tag. */
  private async referrersByTag(repo: RepositoryRef, subject: Digest, ctx: RequestContext): Promise<ReferrerDescriptor[]> {
    let answer: ManifestAnswer;
    try {
      // No stale tag: a list built from it would count as fresh for tagTTL. When the upstream fails,
      // referrers() serves its own cached list instead, as when the API itself fails.
      answer = await this.manifestByTag(repo, referrersTagOf(subject), INDEX_ACCEPT, 'GET', ctx, false);
    } catch (err) {
      if (isLongshoreError(err, 'LS_MANIFEST_NOT_FOUND')) return [];
      throw err;
    }
    if (answer.outcome !== 'upstream') this.local.noteAccess(repo.upstream, repo.name, answer.digest);
    return listedDescriptors(answer.body ?? Buffer.alloc(0));
  }

  /** Whether a tag resolution may be served without asking the upstream again: within tagTTL, or an immutable tag. */
  private fresh(row: TagRow, entry: UpstreamEntry, tag: string): boolean {
    return this.now() - row.checked_at < entry.tagTTL || entry.immutable?.(tag) === true;
  }

  private upstream(name: string): UpstreamEntry {
    const entry = this.upstreams.get(name);
    if (!entry) throw new LongshoreError('LS_UPSTREAM_UNKNOWN', `registry host "${name}" is not configured as an upstream of this mirror`, { host: name });
    return entry;
  }
}

/** The well-formed descriptors of an index's `manifests`. */
function listedDescriptors(body: Buffer): ReferrerDescriptor[] {
  let doc: { manifests?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    return [];
  }
  return Array.isArray(doc?.manifests) ? (doc.manifests as unknown[]).filter(isListedDescriptor) : [];
}

/** A stored referrers list, filtered by artifactType when one is asked for. */
function referrersAnswer(body: Buffer, artifactType: string | undefined, outcome: CacheOutcome): ReferrersAnswer {
  const all = listedDescriptors(body);
  const manifests = artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
  return { manifests, filtered: artifactType !== undefined, outcome };
}

/** The tag's resolution recorded for this Accept set, if the client accepts its media type. */
function acceptedRow(rows: readonly TagRow[], accept: AcceptSet): TagRow | undefined {
  return rows.find((r) => r.accept_key === accept.key && accept.accepts(r.media_type));
}

function withOutcome(answer: ManifestAnswer, method: Method, outcome: CacheOutcome): ManifestAnswer {
  const { body, ...rest } = answer;
  return method === 'GET' && body ? { ...rest, body, outcome } : { ...rest, outcome };
}

function verdictKey(repo: RepositoryRef, credentials: RequestContext['credentials']): string {
  const who = credentials ? createHash('sha256').update(`${credentials.username}\0${credentials.password}`).digest('base64') : 'anonymous';
  return `${repo.upstream}\0${repo.name}\0${who}`;
}

function refusal(repo: RepositoryRef, ctx: RequestContext): LongshoreError {
  const message = ctx.credentials
    ? `upstream ${repo.upstream} refused these credentials for ${repo.name}`
    : `upstream ${repo.upstream} needs your credentials for ${repo.name}: log in to this mirror with your ${repo.upstream} account`;
  return new LongshoreError('LS_UNAUTHORIZED', message, { upstream: repo.upstream, repository: repo.name, challenge: 'basic' });
}

function fillKey(upstream: string, digest: Digest): string {
  return `${upstream}\0${digest}`;
}

/** The reference under which an upstream's "no such repository" (its tag list's 404) is remembered: never a tag or digest. */
const TAG_LIST = 'tags/list';

function absentKey(repo: RepositoryRef, reference: string): string {
  return `${repo.upstream}\0${repo.name}\0${reference}`;
}

function joinFill(fill: BlobFill, outcome: CacheOutcome): BlobHandle {
  return {
    digest: fill.digest,
    size: fill.size,
    outcome,
    stream: (range) => fill.reader(range),
    release: () => undefined,
    stored: (onBytes) => fill.stored(onBytes),
  };
}
