// Authentication towards one upstream, per the registry token protocol (distribution's docs/spec/auth/token.md):
// a request without credentials gets 401 with a Bearer challenge naming a realm, service and scope; the
// token fetched from the realm (with the mirror's credentials, if configured) is cached per scope until it
// expires. Registries that challenge with Basic get the configured credentials directly.
// Routes never see any of this; only UpstreamClient calls it.
//
// The realm is the upstream's to name, so it is checked before anything is sent: only the upstream's own
// host and the hosts of `tokenHosts` (destinations.ts) are contacted, and the credentials go over
// https — or over http only when the upstream itself is plain http.
import type { Dispatcher } from 'undici';
import { request } from 'undici';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { LongshoreError } from '../errors.js';
import { readLimited } from '../read-limited.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { matchesHost } from './destinations.js';

/** The spec's default when a token response carries no expires_in. */
const DEFAULT_TOKEN_LIFETIME_S = 60;
/** Renew a token this long before the upstream says it expires, so none is used at its last second. */
const EXPIRY_MARGIN_MS = 10_000;
const MAX_TOKEN_RESPONSE = 64 * 1024;
/**
 * Scopes whose token is kept. A token is about 2 KB and every repository name pulled is a scope: without
 * a bound, a client walking through names would grow the cache forever. Evicting one costs a token request.
 */
export const MAX_CACHED_TOKENS = 2_000;

export interface Credentials {
  username: string;
  password: string;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

export interface UpstreamAuthOptions {
  /** The upstream's name in config, for messages. */
  upstream?: string;
  upstreamUrl: URL;
  credentials: Credentials | undefined;
  /** Hosts a realm may be on besides the upstream's own (destinations.ts tokenHostsFor). */
  tokenHosts: readonly string[];
  dispatcher: Dispatcher;
  headersTimeout: number;
  log: Logger;
  onTokenRequest?: (status: number, seconds: number) => void;
  now?: () => number;
  /** Default MAX_CACHED_TOKENS. */
  maxTokens?: number;
}

export class UpstreamAuth {
  /** The challenge last seen from this upstream, to fetch tokens for new scopes without a 401 first. */
  private challenge: Challenge | undefined;
  /** Bounded by count, and each entry dropped at its expiry (the TTL is only memory; `expiresAt` decides). */
  private readonly tokens: LRUCache<string, CachedToken>;
  /** One entry per scope with a token request in flight; each leaves when its request settles. */
  private readonly inflight = new Map<string, Promise<string | undefined>>();
  private readonly upstream: string;
  private readonly upstreamUrl: URL;
  private readonly credentials: Credentials | undefined;
  private readonly tokenHosts: readonly string[];
  private readonly dispatcher: Dispatcher;
  private readonly headersTimeout: number;
  private readonly log: Logger;
  private readonly onTokenRequest: (status: number, seconds: number) => void;
  private readonly now: () => number;

  constructor(options: UpstreamAuthOptions) {
    this.upstream = options.upstream ?? options.upstreamUrl.host;
    this.upstreamUrl = options.upstreamUrl;
    this.credentials = options.credentials;
    this.tokenHosts = options.tokenHosts;
    this.dispatcher = options.dispatcher;
    this.headersTimeout = options.headersTimeout;
    this.log = options.log;
    this.onTokenRequest = options.onTokenRequest ?? (() => undefined);
    this.now = options.now ?? Date.now;
    this.tokens = new LRUCache({ max: options.maxTokens ?? MAX_CACHED_TOKENS });
  }

  /** Scopes with a cached token (at most `maxTokens`). */
  get cachedTokens(): number {
    return this.tokens.size;
  }

  /** The Authorization header for a scope, if one is known or can be obtained without a round trip to the registry. */
  async headerFor(scope: string): Promise<string | undefined> {
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > this.now()) return cached.header;
    if (cached) this.tokens.delete(scope);
    if (!this.challenge) return undefined;
    return this.obtain(this.challenge, scope);
  }

  /**
   * Called with a 401's WWW-Authenticate header. Returns a header to retry with, or undefined when
   * there is nothing new to try (the registry refused the credentials it just asked for).
   */
  async onUnauthorized(wwwAuthenticate: string | string[] | undefined, scope: string, rejected: string | undefined): Promise<string | undefined> {
    const challenges = parseChallenges(wwwAuthenticate);
    const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge) return undefined;
    this.challenge = challenge;
    this.tokens.delete(scope);
    const header = await this.obtain(challenge, scope);
    return header !== undefined && header !== rejected ? header : undefined;
  }

  private obtain(challenge: Challenge, scope: string): Promise<string | undefined> {
    if (challenge.scheme === 'basic') {
      return Promise.resolve(this.credentials ? basic(this.credentials) : undefined);
    }
    // One token request per scope at a time; concurrent requests wait for it.
    const pending = this.inflight.get(scope);
    if (pending) return pending;
    const promise = this.fetchToken(challenge, scope).finally(() => this.inflight.delete(scope));
    this.inflight.set(scope, promise);
    return promise;
  }

  private async fetchToken(challenge: Challenge, scope: string): Promise<string | undefined> {
    const realm = challenge.params.realm;
    if (!realm) throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', 'upstream sent a Bearer challenge without a realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', 'upstream sent a Bearer challenge with an invalid realm');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', 'upstream token realm is not an http(s) URL');
    }
    // Hosts, not origins: registries commonly serve tokens on another port of their own host.
    if (url.hostname !== this.upstreamUrl.hostname && !matchesHost(url.hostname.replace(/^\[|\]$/g, ''), this.tokenHosts)) {
      this.log.warn({ upstream: this.upstream, realmHost: url.hostname }, 'token realm on a host that is not allowed; nothing sent');
      throw new LongshoreError('LS_UPSTREAM_HOST_REFUSED', `upstream ${this.upstream} names a token realm on ${url.hostname}, which is neither its own host nor in upstreams.${this.upstream}.tokenHosts`, {
        upstream: this.upstream,
        host: url.hostname,
        setting: `upstreams.${this.upstream}.tokenHosts`,
      });
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', scope);

    const headers: Record<string, string> = { accept: 'application/json' };
    // Credentials go to the realm only over https, or over http when the upstream itself is plain http
    // (a test or LAN registry): an https upstream never leaks them to a plain-text realm.
    if (this.credentials && (url.protocol === 'https:' || this.upstreamUrl.protocol === 'http:')) {
      headers.authorization = basic(this.credentials);
    }
    const started = this.now();
    const res = await request(url, { method: 'GET', headers, dispatcher: this.dispatcher, headersTimeout: this.headersTimeout, bodyTimeout: this.headersTimeout });
    const text = (await readLimited(res.body, MAX_TOKEN_RESPONSE, upstreamTooLarge)).toString('utf8');
    this.onTokenRequest(res.statusCode, (this.now() - started) / 1000);
    this.log.debug({ realm: url.origin + url.pathname, scope, status: res.statusCode, ms: this.now() - started }, 'token request');
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new LongshoreError('LS_UPSTREAM_DENIED', 'upstream token service refused the mirror\'s credentials', { scope });
    }
    if (res.statusCode !== 200) {
      throw new LongshoreError('LS_UPSTREAM_UNAVAILABLE', `upstream token service answered ${res.statusCode}`, { status: res.statusCode });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', 'upstream token service sent invalid JSON');
    }
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', 'upstream token service sent no token');
    const lifetimeS = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    const header = `Bearer ${token}`;
    const lifetimeMs = Math.max(lifetimeS * 1000 - EXPIRY_MARGIN_MS, lifetimeS * 500);
    this.tokens.set(scope, { header, expiresAt: started + lifetimeMs }, { ttl: lifetimeMs });
    return header;
  }
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/** An upstream response over the limit of what the mirror reads into memory. */
export function upstreamTooLarge(limit: number): LongshoreError {
  return new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream response is larger than ${limit} bytes`, { limit });
}
