// The HTTP client for one upstream registry, on undici. It owns everything that crosses the network:
// the keep-alive pool, timeouts, token auth (auth.ts), redirects, and the translation of transport
// failures and upstream statuses into typed errors. Nothing else builds upstream URLs, and the only
// hosts it contacts are the configured upstream, the token realm its challenge names (if allowed:
// auth.ts), and the targets of its own redirects (Docker Hub answers blob GETs with a redirect to its
// CDN), which go through a separate agent whose every connection is checked (destinations.ts).
// Blob bodies are capped at maxBlobSize, and at the size a manifest declared when the caller knows it.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { Transform, pipeline, type Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/schema.js';
import { LongshoreError, isLongshoreError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { isDigest, type Digest } from '../digest.js';
import { isListedDescriptor, MediaType } from '../registry/media-types.js';
import type { ReferrerDescriptor } from '../registry/types.js';
import { readLimited } from '../read-limited.js';
import { UpstreamAuth, upstreamTooLarge, type Credentials } from './auth.js';
import { CircuitBreaker } from './breaker.js';
import { RedirectGuard, tokenHostsFor, type ClassifyAddress, type ResolveHost } from './destinations.js';

const MAX_REDIRECTS = 5;
/** Clients with pass-through credentials whose token caches are kept at once. */
const MAX_CREDENTIAL_VIEWS = 256;
/** How long an idle keep-alive connection to an upstream stays open. */
const KEEP_ALIVE_MS = 30_000;
/** First retry waits about this long; each further one twice as long, plus jitter. */
const RETRY_BASE_MS = 100;
/** Upstream statuses worth another attempt: the gateway or the registry is briefly unwell. */
const RETRY_STATUSES = new Set([502, 503, 504]);
/** Pages of an upstream's referrers list followed, at most. */
const MAX_REFERRER_PAGES = 16;
/**
 * After an upstream answered its referrers API with 404 (it has none), this long before it is asked
 * again: meanwhile the tag schema is read directly, one request per list instead of two.
 */
const REFERRERS_API_RECHECK_MS = 60 * 60 * 1000;
/** Bytes of a 404's body read for its error code. */
const ERROR_BODY_LIMIT = 4096;

export interface UpstreamManifest {
  /** From Docker-Content-Digest; the caller verifies it against the body. */
  digest: Digest | undefined;
  mediaType: string;
  size: number | undefined;
  /** Present for GET. */
  body?: Buffer;
}

export interface UpstreamBlob {
  size: number | undefined;
  /** The body stream (GET only); the caller must consume or destroy it. */
  body: Readable;
}

export interface RateLimitState {
  limit: number | undefined;
  remaining: number | undefined;
  observedAt: number;
}

export interface UpstreamClientOptions {
  /** Largest blob accepted (config `maxBlobSize`). Default 64 GiB. */
  maxBlobSize?: number;
  /** Address classes for redirect targets; tests inject one under which a loopback fake is "public". */
  classifyAddress?: ClassifyAddress;
  /** DNS for redirect targets and the upstream's own class; tests inject one to play DNS rebinding. */
  resolveHost?: ResolveHost;
}

/** The schema's default for maxBlobSize, for clients built without a config (tests). */
const DEFAULT_MAX_BLOB_SIZE = 64 * 1024 ** 3;

type Method = 'GET' | 'HEAD';
type BodyReadable = Dispatcher.ResponseData['body'];

export class UpstreamClient {
  readonly url: URL;
  private readonly agent: Agent;
  /** For redirect targets other than the upstream: its DNS lookup is RedirectGuard.lookup. */
  private readonly redirectAgent: Agent;
  private readonly redirects: RedirectGuard;
  private auth: UpstreamAuth;
  /** Views acting with one client's own credentials (pass-through upstreams), by credential hash. */
  private readonly views = new LRUCache<string, UpstreamClient>({ max: MAX_CREDENTIAL_VIEWS });
  private readonly newAuth: (credentials: Credentials | undefined) => UpstreamAuth;
  private readonly maxBlobSize: number;
  readonly breaker: CircuitBreaker;
  /** Until when the upstream is known to have no referrers API; one object shared by every view (as()). */
  private readonly referrersApi = { absentUntil: 0 };
  /** Docker Hub's pull rate limit as of the last response that carried it. */
  rateLimit: RateLimitState | undefined;

  constructor(
    readonly name: string,
    private readonly config: UpstreamConfig,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
    options: UpstreamClientOptions = {},
  ) {
    this.url = new URL(config.url);
    this.maxBlobSize = options.maxBlobSize ?? DEFAULT_MAX_BLOB_SIZE;
    const agentOptions = {
      keepAliveTimeout: KEEP_ALIVE_MS,
      headersTimeout: config.timeouts.headers,
      bodyTimeout: config.timeouts.idle,
    };
    this.agent = new Agent({ ...agentOptions, connect: { timeout: config.timeouts.connect } });
    this.redirects = new RedirectGuard({
      upstream: name,
      upstreamUrl: this.url,
      redirectHosts: config.redirectHosts,
      ...(options.resolveHost ? { resolve: options.resolveHost } : {}),
      ...(options.classifyAddress ? { classify: options.classifyAddress } : {}),
      onRefused: (host, address, addressClass) => log.warn({ upstream: name, host, address, addressClass }, 'upstream redirect refused; nothing sent'),
    });
    this.redirectAgent = new Agent({ ...agentOptions, connect: { timeout: config.timeouts.connect, lookup: this.redirects.lookup } });
    const credentials = config.username !== null && config.password !== null ? { username: config.username, password: config.password } : undefined;
    this.newAuth = (as) => new UpstreamAuth({
      upstream: name,
      upstreamUrl: this.url,
      credentials: as,
      tokenHosts: tokenHostsFor(this.url, config.tokenHosts),
      dispatcher: this.agent,
      headersTimeout: config.timeouts.headers,
      log,
      onTokenRequest: (status, seconds) => {
        metrics?.upstreamRequests.inc({ upstream: name, method: 'GET', kind: 'token', status: String(status) });
        metrics?.upstreamDuration.observe({ upstream: name, kind: 'token' }, seconds);
      },
    });
    this.auth = this.newAuth(credentials);
    this.breaker = new CircuitBreaker(name, config.breaker.failures, config.breaker.cooldown);
  }

  /**
   * This client acting with a client's own credentials, for pass-through upstreams — or with none: an
   * anonymous client is anonymous upstream, never the mirror's configured account. Each view has its
   * own token cache and shares the connection pool and circuit breaker. Views are few and bounded.
   */
  as(credentials: Credentials | undefined): UpstreamClient {
    const key = credentials ? createHash('sha256').update(`${credentials.username}\0${credentials.password}`).digest('base64') : '';
    let view = this.views.get(key);
    if (!view) {
      view = Object.create(this) as UpstreamClient;
      view.auth = this.newAuth(credentials);
      this.views.set(key, view);
    }
    return view;
  }

  /** GET or HEAD a manifest by tag or digest, asking with the given Accept list. */
  async manifest(method: Method, repository: string, reference: string, accept: string, maxSize: number, requestId?: string): Promise<UpstreamManifest> {
    const res = await this.send(method, repository, `manifests/${reference}`, { accept }, requestId);
    if (res.statusCode !== 200) throw await this.statusError(res, 'manifest', repository, reference);
    const mediaType = contentType(res.headers['content-type']);
    const size = contentLength(res.headers);
    const digestHeader = header(res.headers, 'docker-content-digest');
    const digest = digestHeader && isDigest(digestHeader) ? digestHeader : undefined;
    if (method === 'HEAD') {
      await discard(res.body);
      return { digest, mediaType, size };
    }
    if (size !== undefined && size > maxSize) {
      res.body.destroy();
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream manifest is larger than the ${maxSize}-byte limit`, { size, limit: maxSize });
    }
    const body = await this.guard(readLimited(res.body, maxSize, upstreamTooLarge));
    return { digest, mediaType, size: body.length, body };
  }

  /**
   * GET (streaming) or HEAD a blob. A GET's body must be consumed or destroyed by the caller. A GET is
   * refused before its body is read when its Content-Length is over maxBlobSize or `expectedSize` (the
   * size a manifest declared for the blob, when the caller knows it); a body without Content-Length
   * fails with the same error as soon as it passes either.
   */
  async blob(method: Method, repository: string, digest: Digest, requestId?: string, expectedSize?: number): Promise<UpstreamBlob> {
    const res = await this.send(method, repository, `blobs/${digest}`, {}, requestId);
    if (res.statusCode !== 200) throw await this.statusError(res, 'blob', repository, digest);
    const size = contentLength(res.headers);
    if (method === 'HEAD') {
      await discard(res.body);
      return { size, body: res.body };
    }
    return { size, body: this.capped(res.body, size, digest, 0, expectedSize) };
  }

  /** One page of the upstream's tag list; `next` is the query of the following page, if any. */
  async tagList(repository: string, query: string, maxSize: number, requestId?: string): Promise<{ name: string; tags: string[]; next?: string }> {
    const res = await this.send('GET', repository, `tags/list${query ? `?${query}` : ''}`, { accept: 'application/json' }, requestId);
    if (res.statusCode === 404) {
      await discard(res.body);
      throw new LongshoreError('LS_NAME_NOT_FOUND', `repository ${repository} not found upstream at ${this.name}`, { upstream: this.name, repository });
    }
    if (res.statusCode !== 200) throw await this.statusError(res, 'manifest', repository, 'tags/list');
    const link = /<[^>]*\?([^>]*)>\s*;\s*rel="?next"?/.exec(header(res.headers, 'link') ?? '');
    const body = await this.guard(readLimited(res.body, maxSize, upstreamTooLarge));
    let doc: { name?: unknown; tags?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${this.name} sent an invalid tag list for ${repository}`);
    }
    const tags = Array.isArray(doc.tags) ? doc.tags.filter((t): t is string => typeof t === 'string') : [];
    return { name: typeof doc.name === 'string' ? doc.name : repository, tags, ...(link?.[1] ? { next: link[1] } : {}) };
  }

  /**
   * Every referrer of `digest` the upstream lists (OCI 1.1 referrers API), following its pages (Link
   * rel="next", at most MAX_REFERRER_PAGES, `maxSize` bytes in all). Undefined when the upstream answers
   * 404: a registry that has the API never does (spec "Listing Referrers"), so it has none, and the
   * referrers tag schema is where to look. That is remembered for REFERRERS_API_RECHECK_MS, unless the
   * 404 said NAME_UNKNOWN (a registry with the API that does not know the repository, as oras reads it).
   * Only well-formed descriptors are kept.
   */
  async referrers(repository: string, digest: Digest, maxSize: number, requestId?: string): Promise<ReferrerDescriptor[] | undefined> {
    if (this.referrersApi.absentUntil > Date.now()) return undefined;
    const out: ReferrerDescriptor[] = [];
    let query = '';
    let read = 0;
    for (let page = 0; page < MAX_REFERRER_PAGES; page++) {
      const res = await this.send('GET', repository, `referrers/${digest}${query ? `?${query}` : ''}`, { accept: MediaType.OciIndex }, requestId);
      if (res.statusCode === 404 && page === 0) {
        if ((await errorCode(res.body)) !== 'NAME_UNKNOWN') {
          this.referrersApi.absentUntil = Date.now() + REFERRERS_API_RECHECK_MS;
          this.log.debug({ upstream: this.name }, 'upstream has no referrers API; reading the referrers tag schema for an hour');
        }
        return undefined;
      }
      if (res.statusCode !== 200) throw await this.statusError(res, 'manifest', repository, `referrers/${digest}`);
      // Only the query of the next page is taken: the request stays on this upstream and repository.
      const link = /<[^>]*\?([^>]*)>\s*;\s*rel="?next"?/.exec(header(res.headers, 'link') ?? '');
      const body = await this.guard(readLimited(res.body, maxSize - read, upstreamTooLarge));
      read += body.length;
      let doc: { manifests?: unknown };
      try {
        doc = JSON.parse(body.toString('utf8')) as typeof doc;
      } catch {
        throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${this.name} sent an invalid referrers list for ${repository}`, { upstream: this.name });
      }
      for (const d of Array.isArray(doc.manifests) ? doc.manifests as unknown[] : []) {
        if (isListedDescriptor(d)) out.push(d);
      }
      if (!link?.[1]) break;
      query = link[1];
    }
    return out;
  }

  /**
   * The bytes of a blob from `offset` on, to resume a download whose stream broke. Asks with Range; an
   * upstream that ignores it and sends the whole blob (200) has the first `offset` bytes skipped here.
   */
  async blobFrom(repository: string, digest: Digest, offset: number, requestId?: string, expectedSize?: number): Promise<Readable> {
    const res = await this.send('GET', repository, `blobs/${digest}`, { range: `bytes=${offset}-` }, requestId);
    if (res.statusCode === 206) {
      const range = /^bytes (\d+)-/.exec(header(res.headers, 'content-range') ?? '');
      if (!range || Number(range[1]) !== offset) {
        res.body.destroy();
        throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${this.name} answered a resume at byte ${offset} with another range`, { digest, offset });
      }
      return this.capped(res.body, contentLength(res.headers), digest, offset, expectedSize);
    }
    if (res.statusCode === 200) return skipBytes(this.capped(res.body, contentLength(res.headers), digest, 0, expectedSize), offset);
    throw await this.statusError(res, 'blob', repository, digest);
  }

  /**
   * A blob body that is bytes [offset, …) of the blob, held to the blob's limit: over it, by
   * Content-Length, is refused at once; a body without Content-Length fails as it passes it. The failure
   * is not one a resume would repair (BlobFill gives up), and it destroys the upstream response.
   */
  private capped(body: BodyReadable, length: number | undefined, digest: Digest, offset: number, expectedSize: number | undefined): Readable {
    const declared = expectedSize !== undefined && expectedSize < this.maxBlobSize;
    const limit = declared ? expectedSize : this.maxBlobSize;
    const tooLarge = (seen: number) => declared
      ? new LongshoreError('LS_CONTENT_MISMATCH', `upstream ${this.name} sent more than the ${limit} bytes declared for blob ${digest}`, { upstream: this.name, digest, expected: limit, size: seen })
      : new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${this.name} sent a blob larger than maxBlobSize (${limit} bytes)`, { upstream: this.name, digest, limit, size: seen, setting: 'maxBlobSize' });
    if (length !== undefined) {
      if (offset + length <= limit) return body; // undici ends the body at Content-Length
      // undici's body emits an abort error when destroyed unread; no one is listening any more.
      body.on('error', () => undefined).destroy();
      throw tooLarge(offset + length);
    }
    let seen = offset;
    const cap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        seen += chunk.length;
        if (seen > limit) return callback(tooLarge(seen));
        callback(null, chunk);
      },
    });
    return pipeline(body, cap, () => undefined);
  }

  /**
   * Closes the connection pool at once, aborting requests still in flight. Shutdown calls it after its
   * grace period; undici's graceful close would wait for a stalled download until its idle timeout.
   */
  async close(): Promise<void> {
    await Promise.all([this.agent.destroy(), this.redirectAgent.destroy()]);
  }

  /**
   * Sends one request to `<url>/v2/<repository>/<path>`, with token auth (a single retry after a 401
   * challenge) and redirects. The Authorization header never follows a redirect to another origin.
   */
  private async send(method: Method, repository: string, path: string, headers: Record<string, string>, requestId: string | undefined): Promise<Dispatcher.ResponseData> {
    for (let attempt = 0; ; attempt++) {
      this.breaker.admit();
      let res: Dispatcher.ResponseData;
      try {
        res = await this.sendOnce(method, repository, path, headers, requestId);
      } catch (err) {
        if (isLongshoreError(err)) this.metrics?.upstreamErrors.inc({ upstream: this.name, code: err.code });
        // Connection-level failures count against the circuit; timeouts are not retried (the breaker
        // bounds how often one is waited out), refused or reset connections are.
        if (isLongshoreError(err) && (err.code === 'LS_UPSTREAM_UNAVAILABLE' || err.code === 'LS_UPSTREAM_TIMEOUT')) {
          this.breaker.failure();
          if (err.code === 'LS_UPSTREAM_UNAVAILABLE' && attempt < this.config.retries && this.breaker.state === 'closed') {
            await this.backoff(attempt, method, path, err.message);
            continue;
          }
        } else if (isLongshoreError(err)) {
          // Any other typed failure (a refused redirect or realm, denied credentials) means the upstream
          // answered: a half-open circuit whose probe ended so must close, or it would never admit again.
          this.breaker.success();
        }
        throw err;
      }
      if (res.statusCode >= 500) {
        this.breaker.failure();
        if (RETRY_STATUSES.has(res.statusCode) && attempt < this.config.retries && this.breaker.state === 'closed') {
          await discard(res.body);
          await this.backoff(attempt, method, path, `status ${res.statusCode}`);
          continue;
        }
      } else {
        this.breaker.success();
      }
      return res;
    }
  }

  private async backoff(attempt: number, method: Method, path: string, reason: string): Promise<void> {
    const delay = RETRY_BASE_MS * 2 ** attempt + Math.floor(Math.random() * RETRY_BASE_MS);
    this.log.debug({ upstream: this.name, method, path, attempt: attempt + 1, delay, reason }, 'retrying upstream request');
    await sleep(delay);
  }

  private async sendOnce(method: Method, repository: string, path: string, headers: Record<string, string>, requestId: string | undefined): Promise<Dispatcher.ResponseData> {
    const scope = `repository:${repository}:pull`;
    const target = new URL(`${this.url.pathname.replace(/\/$/, '')}/v2/${repository}/${path}`, this.url);
    let authorization = await this.guard(this.auth.headerFor(scope));
    const kind = path.startsWith('manifests/') ? 'manifest' : path.startsWith('tags/') ? 'tags' : 'blob';
    let res = await this.follow(method, target, headers, authorization, kind, requestId);
    if (res.statusCode === 401) {
      const challenge = res.headers['www-authenticate'];
      await discard(res.body);
      const retry = await this.guard(this.auth.onUnauthorized(challenge, scope, authorization));
      if (retry === undefined) {
        throw new LongshoreError('LS_UPSTREAM_DENIED', `upstream ${this.name} requires credentials for ${repository} (it may not exist, or the mirror is not allowed to pull it)`, { upstream: this.name, repository });
      }
      authorization = retry;
      res = await this.follow(method, target, headers, authorization, kind, requestId);
    }
    this.observeRateLimit(res.headers);
    return res;
  }

  private async follow(method: Method, target: URL, headers: Record<string, string>, authorization: string | undefined, kind: 'manifest' | 'blob' | 'tags', requestId: string | undefined): Promise<Dispatcher.ResponseData> {
    let url = target;
    let auth = authorization;
    for (let hop = 0; ; hop++) {
      const started = Date.now();
      const res = await this.guard(request(url, {
        method,
        headers: auth ? { ...headers, authorization: auth } : headers,
        dispatcher: this.redirects.isUpstream(url) ? this.agent : this.redirectAgent,
        // undici closes the connection after a HEAD unless told otherwise (servers that send a body
        // anyway); registries do not, and tag revalidation is a stream of HEADs: keep the connection.
        ...(method === 'HEAD' ? { reset: false } : {}),
      }));
      const ms = Date.now() - started;
      this.metrics?.upstreamRequests.inc({ upstream: this.name, method, kind, status: String(res.statusCode) });
      this.metrics?.upstreamDuration.observe({ upstream: this.name, kind }, ms / 1000);
      this.log.debug({ requestId, upstream: this.name, method, url: url.origin + url.pathname, status: res.statusCode, ms }, 'upstream request');
      const location = header(res.headers, 'location');
      if (![301, 302, 303, 307, 308].includes(res.statusCode) || !location) return res;
      await discard(res.body);
      if (hop >= MAX_REDIRECTS) {
        throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${this.name} redirected more than ${MAX_REDIRECTS} times`);
      }
      const next = new URL(location, url);
      if (!this.redirects.isUpstream(next)) await this.redirects.checkTarget(next);
      // Credentials belong to the origin that asked for them; a CDN gets a pre-signed URL instead.
      if (next.origin !== url.origin) auth = undefined;
      url = next;
    }
  }

  private observeRateLimit(headers: Dispatcher.ResponseData['headers']): void {
    const limit = header(headers, 'ratelimit-limit');
    const remaining = header(headers, 'ratelimit-remaining');
    if (limit === undefined && remaining === undefined) return;
    // Docker Hub sends "100;w=21600": the count, then the window.
    const count = (v: string | undefined) => (v === undefined ? undefined : Number.parseInt(v, 10));
    this.rateLimit = { limit: count(limit), remaining: count(remaining), observedAt: Date.now() };
  }

  private async statusError(res: Dispatcher.ResponseData, kind: 'manifest' | 'blob', repository: string, reference: string): Promise<LongshoreError> {
    await discard(res.body);
    const status = res.statusCode;
    const where = { upstream: this.name, repository, reference, status };
    if (status === 404) {
      return kind === 'manifest'
        ? new LongshoreError('LS_MANIFEST_NOT_FOUND', `manifest ${repository}${reference.includes(':') ? '@' : ':'}${reference} not found upstream at ${this.name}`, where)
        : new LongshoreError('LS_BLOB_NOT_FOUND', `blob ${reference} not found upstream at ${this.name}`, where);
    }
    if (status === 401 || status === 403) {
      return new LongshoreError('LS_UPSTREAM_DENIED', `upstream ${this.name} denied access to ${repository}`, where);
    }
    if (status === 429) {
      const retryAfter = header(res.headers, 'retry-after');
      return new LongshoreError('LS_UPSTREAM_RATE_LIMITED', `upstream ${this.name} is rate limiting this mirror`, { ...where, ...(retryAfter ? { retryAfter } : {}) });
    }
    if (status >= 500) {
      return new LongshoreError('LS_UPSTREAM_UNAVAILABLE', `upstream ${this.name} answered ${status}`, where);
    }
    return new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${this.name} answered ${status} for ${kind} ${repository}:${reference}`, where);
  }

  /** Turns transport failures (refused, reset, timeouts) into typed errors; typed errors pass through. */
  private async guard<T>(promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (err) {
      throw transportError(err, this.name);
    }
  }
}

export function transportError(err: unknown, upstream: string): LongshoreError {
  if (isLongshoreError(err)) return err;
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new LongshoreError('LS_UPSTREAM_TIMEOUT', `upstream ${upstream} timed out (${code})`, { upstream, cause: code }, { cause: err });
  }
  return new LongshoreError('LS_UPSTREAM_UNAVAILABLE', `upstream ${upstream} is unreachable (${code || (err as Error).message})`, { upstream, cause: code || 'error' }, { cause: err });
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function contentType(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value[0] : value;
  return (text ?? 'application/octet-stream').split(';', 1)[0]!.trim().toLowerCase();
}

function contentLength(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const text = header(headers, 'content-length');
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

/** Drops the first `count` bytes of a stream (an upstream that answered a Range request with 200). */
function skipBytes(source: Readable, count: number): Readable {
  let remaining = count;
  const skipper = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (remaining >= chunk.length) {
        remaining -= chunk.length;
        return callback();
      }
      const rest = remaining > 0 ? chunk.subarray(remaining) : chunk;
      remaining = 0;
      callback(null, rest);
    },
  });
  return pipeline(source, skipper, () => undefined);
}

/** The first OCI error code of an error body (bounded), if it has one. */
async function errorCode(body: BodyReadable): Promise<string | undefined> {
  try {
    const text = (await readLimited(body, ERROR_BODY_LIMIT, upstreamTooLarge)).toString('utf8');
    const code = (JSON.parse(text) as { errors?: Array<{ code?: unknown }> }).errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined; // not JSON, or too long: no code
  }
}

async function discard(body: BodyReadable): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    // A body we do not want may fail to drain; the connection is then closed, which is what we want.
  }
}
