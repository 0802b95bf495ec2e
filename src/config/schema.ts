// The one configuration schema. Every option, its default (with units) and its meaning lives here;
// the README's configuration reference is written from this file. Types are derived from the schema.
import { z } from 'zod';
import { isAddressBlock } from '../address-blocks.js';
import { parseDuration, parseSize } from './units.js';

const duration = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as "30s", "10m" or milliseconds (${what})` });
      return z.NEVER;
    }
    return ms;
  });

export const size = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as "512MiB", "50GiB" or bytes (${what})` });
      return z.NEVER;
    }
    return bytes;
  });

/** "host:port", "[v6]:port" or a bare port. */
const listen = z.string().regex(/^(?:(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?\d{1,5}$/, 'expected "host:port", e.g. "127.0.0.1:5000"');

/** A host name or IP address, or "*.example.com": every name under example.com. */
const hostPattern = z.string().regex(/^(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?$|^\[?[0-9A-Fa-f:.]+\]?$/, 'expected a host name, an IP address or "*.example.com"');

const upstreamSchema = z.strictObject({
  /** Base URL of the upstream registry (scheme + host [+ port]); requests go to `${url}/v2/...`. */
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).transform((u) => u.replace(/\/+$/, '')),
  /** Credentials for the upstream's token service or Basic auth. Both or neither. */
  username: z.string().min(1).nullable().default(null),
  password: z.string().min(1).nullable().default(null),
  /** How long a tag's resolution is served from cache before it is revalidated with a HEAD. Default 5 minutes. */
  tagTTL: duration('tagTTL').default(300_000),
  /**
   * How long the upstream's "not found" (or Docker Hub's "denied", its answer for a name it does not
   * have) for one repository and reference is answered from memory, so repeated requests for a missing
   * name cost one upstream request. 0 turns it off. Default 30 s.
   */
  negativeTTL: duration('negativeTTL').default(30_000),
  /**
   * Forward each client's own credentials (HTTP Basic, as `docker login <mirror>` sends them) to this
   * upstream and to no one else, instead of the mirror's; anonymous clients are anonymous upstream.
   * Cached content of this upstream is served to a client only after the upstream accepted that
   * client's credentials for the repository. Cannot be combined with `auth.enabled` (clients then send
   * the mirror's tokens, not their upstream credentials). Default false.
   */
  passThroughCredentials: z.boolean().default(false),
  /** How long the upstream's verdict on a client's credentials for one repository is trusted. Default 1 minute. */
  credentialTTL: duration('credentialTTL').default(60_000),
  /** Never contact this upstream: serve what is cached, answer everything else MANIFEST_UNKNOWN/BLOB_UNKNOWN. Inherits the top-level `offline`. */
  offline: z.boolean().optional(),
  /** Extra attempts for an idempotent request that failed before any byte reached a client. Default 2. */
  retries: z.number().int().min(0).max(10).default(2),
  /** Range requests that resume a blob download whose stream broke, per download. Default 3. */
  resumeAttempts: z.number().int().min(0).max(20).default(3),
  breaker: z.strictObject({
    /** Consecutive failed requests (unreachable, timeout, 5xx) that open the circuit. Default 5. */
    failures: z.number().int().min(1).default(5),
    /** How long an open circuit fails requests at once before one probe is let through. Default 30 s. */
    cooldown: duration('breaker.cooldown').default(30_000),
  }).prefault({}),
  /**
   * Hosts blob redirects may go to besides the upstream's own: exact names or IPs, or "*.example.com"
   * (every name under example.com, not example.com itself). A target must also pass the address rule:
   * its addresses are public, or of the class of the upstream's own addresses (loopback, private, …).
   * Default null: any name that passes the address rule.
   */
  redirectHosts: z.array(hostPattern).nullable().default(null),
  /**
   * Hosts a token realm (WWW-Authenticate) may be on besides the upstream's own, same patterns; a realm
   * elsewhere gets no request and the pull fails. Default null: none, except "auth.docker.io" when the
   * url's host is registry-1.docker.io or index.docker.io.
   */
  tokenHosts: z.array(hostPattern).nullable().default(null),
  /**
   * Tags whose cached resolution never goes stale: globs where "*" matches any characters ("*.*.*",
   * "*-alpine3.19"). A cached tag matching one is served without revalidation, forever (Docker Hub's
   * patch-level tags are in practice never moved; a floating tag such as "latest" must not match).
   * Default none.
   */
  immutableTags: z.array(z.string().regex(/^[A-Za-z0-9_.*-]{1,128}$/, 'expected a tag pattern such as "*.*.*"')).default([]),
  timeouts: z.strictObject({
    /** TCP + TLS connect. Default 10 s. */
    connect: duration('timeouts.connect').default(10_000),
    /** Waiting for response headers. Default 30 s. */
    headers: duration('timeouts.headers').default(30_000),
    /** Longest silence between two body chunks. Default 60 s. */
    idle: duration('timeouts.idle').default(60_000),
  }).prefault({}),
}).refine((u) => (u.username === null) === (u.password === null), {
  message: 'username and password must be given together',
  path: ['password'],
});

/** A bcrypt hash as htpasswd -B and bcryptjs write it: "$2y$10$…". */
const bcryptHash = z.string().regex(/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/, 'expected a bcrypt hash such as "$2y$10$…" (htpasswd -nbB)');

/** Client authentication: the registry token flow, with tokens this mirror issues itself. */
const authSchema = z.strictObject({
  /** Require a token (or an anonymous rule) for every /v2/ request. Default false: no auth code runs at all. */
  enabled: z.boolean().default(false),
  /** The mirror's public base URL ("https://mirror.example:5000"); challenges name `<realm>/token`. Default null: taken from each request's scheme and Host. */
  realm: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).transform((u) => u.replace(/\/+$/, '')).nullable().default(null),
  /** `service` in challenges and the audience of issued tokens. Default "longshore". */
  service: z.string().min(1).default('longshore'),
  /** Issuer (`iss`) of issued tokens. Default "longshore". */
  issuer: z.string().min(1).default('longshore'),
  /** Lifetime of an issued token. Default 5 minutes; at least 1 s (JWT times are in seconds). */
  tokenTTL: duration('auth.tokenTTL').refine((ms) => ms >= 1_000, 'must be at least 1s').default(300_000),
  /** Accounts, each with a bcrypt password hash. */
  users: z.array(z.strictObject({
    username: z.string().regex(/^[^:\s]{1,128}$/, 'expected a user name without ":" or spaces'),
    passwordHash: bcryptHash,
  })).default([]),
  /** An htpasswd file of more accounts (bcrypt entries only), relative to the working directory. Default null. */
  htpasswd: z.string().min(1).nullable().default(null),
  /**
   * Who may do what: users are names, "*" (any authenticated user) or "anonymous"; repositories are
   * routed names ("docker.io/library/alpine") where "*" matches any characters, "/" included.
   */
  rules: z.array(z.strictObject({
    users: z.array(z.string().min(1)).min(1),
    repositories: z.array(z.string().regex(/^[a-z0-9.*][a-z0-9._/:*-]*$/, 'expected a repository name or pattern such as "docker.io/library/*"')).min(1),
    actions: z.array(z.enum(['pull', 'push', 'delete'])).min(1),
  })).default([]),
  /** PEM private key (EC P-256 or Ed25519) that signs tokens. Default null: one generated at first start and kept in the data dir. */
  signingKeyFile: z.string().min(1).nullable().default(null),
  /**
   * Failed logins from one client address within `loginWindow` after which its `/token` requests with
   * credentials are answered 429 (with Retry-After) without checking the password; anonymous token
   * requests still work. Behind a reverse proxy every client has the proxy's address. Default 10.
   */
  loginFailures: z.number().int().min(1).default(10),
  /** The sliding window `loginFailures` counts in. Default 1 minute. */
  loginWindow: duration('auth.loginWindow').refine((ms) => ms >= 1_000, 'must be at least 1s').default(60_000),
  /** Threads that check passwords (bcrypt) off the event loop, started at the first login. Default 2. */
  loginThreads: z.number().int().min(1).max(16).default(2),
  /** Logins that may wait for a password thread; beyond them a login is answered 429 at once. Default 64. */
  loginQueue: z.number().int().min(0).default(64),
}).prefault({});

/** HTTPS on `listen`. Paths are relative to the working directory; SIGHUP reloads both files. */
const tlsSchema = z.strictObject({
  /** PEM certificate, followed by its intermediates. */
  cert: z.string().min(1),
  /** PEM private key of the certificate. */
  key: z.string().min(1),
  /** Also serve plain HTTP here, e.g. "127.0.0.1:5080" for local clients. Default null: none. */
  httpListen: listen.nullable().default(null),
}).nullable().default(null);

/** "linux/amd64", "linux/arm/v7". */
const platform = z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/, 'expected OS/ARCH[/VARIANT] such as "linux/amd64"');

/** One scheduled sync: which tags of one upstream repository to keep cached (jobs/sync.ts). */
const syncRuleSchema = z.strictObject({
  /** A configured upstream key ("docker.io"). */
  upstream: z.string().min(1),
  /** The repository on it ("library/node"; Docker Hub's official images need "library/"). */
  repository: z.string().regex(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/, 'expected a repository name such as "library/node"'),
  /** Tags to keep, as globs ("20-alpine", "3.*"). Exactly one of tags, semver and regex. */
  tags: z.array(z.string().regex(/^[A-Za-z0-9_.*-]{1,128}$/, 'expected a tag or a glob such as "3.*"')).min(1).optional(),
  /** A version range over tags that are versions ("20", "20.11.1", "v1.2"): ">=20 <23". */
  semver: z.string().regex(/^\s*(?:(?:>=|<=|>|<|=)?\s*v?\d+(?:\.\d+){0,2}\s*)+$/, 'expected comparators such as ">=20 <23"').optional(),
  /** A regular expression the whole tag must match: "^3\\.1[89]-alpine$". */
  regex: z.string().min(1).max(500).refine((r) => {
    try {
      new RegExp(r);
      return true;
    } catch {
      return false;
    }
  }, 'expected a valid regular expression').optional(),
  /** Platforms fetched for each tag. Default: warm.platforms. */
  platforms: z.array(platform).min(1).optional(),
  /** How often the rule runs. Default 6 hours; at least 1 minute. */
  interval: duration('sync.interval').refine((ms) => ms >= 60_000, 'must be at least 1m').default(6 * 3_600_000),
  /** At most this many tags are kept per run, the highest versions (semver) or last in sort order first. Default 50. */
  maxTags: z.number().int().min(1).max(1000).default(50),
  /** Also keep each image's referrers (signatures, attestations, SBOMs) cached, as `warm --with-referrers` does. Default false. */
  withReferrers: z.boolean().default(false),
}).refine((r) => [r.tags, r.semver, r.regex].filter((x) => x !== undefined).length === 1, { message: 'give exactly one of tags, semver or regex' });

export const configSchema = z.strictObject({
  /** Address the HTTP server binds. Default 127.0.0.1:5000 (use 0.0.0.0:5000 to serve a network). */
  listen: listen.default('127.0.0.1:5000'),
  /** Directory holding the content store, temp files and the SQLite database. Default ./data. */
  dataDir: z.string().min(1).default('./data'),
  /** pino level: trace, debug, info, warn, error, fatal, silent. Default info. */
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Log output: "json" (one pino JSON object a line) or "pretty" (human-readable, coloured on a TTY). Default json. */
  logFormat: z.enum(['json', 'pretty']).default('json'),
  /**
   * JSON log lines are written in batches: whenever 4 KiB are waiting, and at the latest this long after a
   * line was logged. A process that exits (normally, on a signal, or on a crash that Node reports) writes
   * what is waiting first; a kill -9 loses at most this window. 0 writes every line at once, synchronously
   * (each request then costs a write to the log). Default 100 ms.
   */
  logFlushInterval: duration('logFlushInterval').default(100),
  /** On SIGTERM, how long responses and downloads in progress may take to finish before the process exits anyway. Default 30 s. */
  shutdownGrace: duration('shutdownGrace').default(30_000),
  /**
   * On SIGTERM, how long the node keeps accepting connections and serving, with /readyz answering 503,
   * before it closes its listener and starts the `shutdownGrace` drain. A load balancer that health-checks
   * /readyz takes the node out of rotation within that time, so no client meets a refused connection.
   * Set it above the balancer's time to mark a server down (deploy/haproxy/haproxy.cfg: about 1.5 s →
   * "3s"). Default 0: the listener closes at once, as a single node without a balancer wants.
   */
  drainDelay: duration('drainDelay').default(0),
  /** Names this node: the `node` label on every metric. Default null: the hostname. LONGSHORE_NODE_NAME overrides it. */
  nodeName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'expected a node name such as "longshore-0"').nullable().default(null),
  ui: z.strictObject({
    /** Serve the dashboard at /ui/ and the read-only admin API at /api/v1/. Default true. */
    enabled: z.boolean().default(true),
  }).prefault({}),
  auth: authSchema,
  tls: tlsSchema,
  /** Upstream that serves names with no registry host (dockerd's registry-mirrors sends those). */
  defaultUpstream: z.string().min(1).default('docker.io'),
  /** Registry host → upstream. Only hosts named here are ever contacted. */
  upstreams: z.record(z.string().regex(/^[a-z0-9.-]+(?::\d+)?$/, 'expected a registry host such as "docker.io"'), upstreamSchema)
    .default({ 'docker.io': upstreamSchema.parse({ url: 'https://registry-1.docker.io' }) }),
  /** Air-gapped mode for every upstream that does not set its own `offline`. Default false. */
  offline: z.boolean().default(false),
  /** Largest manifest accepted from an upstream, in bytes. Default 4 MiB (distribution's limit). */
  maxManifestSize: size('maxManifestSize').default(4 * 1024 * 1024),
  /**
   * Largest blob accepted from an upstream, in bytes: a larger Content-Length is refused before anything
   * is written, a body without one is cut off here. Default 64 GiB; it cannot be unbounded.
   */
  maxBlobSize: size('maxBlobSize').refine((bytes) => bytes > 0, 'must be more than 0 bytes').default(64 * 1024 ** 3),
  local: z.strictObject({
    /** Repository name prefixes that are local, pushable repositories ("team/", "local/"); never routed upstream. Default none. */
    prefixes: z.array(z.string().regex(/^[a-z0-9][a-z0-9._/-]*$/, 'expected a repository name prefix such as "team/"')).default([]),
    /**
     * A push to a name that is not local yet creates a local repository, as on `registry:2`, unless mirror
     * clients may ask for that name: `library/…`, a name with a host component, or a name this mirror
     * caches from the default upstream as it is (see src/registry/routing.ts). false: only
     * `local.prefixes` (and repositories pushed before) accept pushes. Default true.
     */
    createOnPush: z.boolean().default(true),
    /** Allow DELETE /v2/<name>/blobs/<digest> on local repositories. Default false. */
    allowBlobDelete: z.boolean().default(false),
    /** Upload sessions untouched this long are cancelled and their data removed. Default 1 hour. */
    uploadTimeout: duration('local.uploadTimeout').default(3_600_000),
    /**
     * Open upload sessions one client may hold: the authenticated user with client auth on, else the remote
     * address (behind a reverse proxy, every client is the proxy). A `docker push` opens one per layer it
     * sends in parallel (dockerd: 5 at a time by default), so 16 leaves room for a few pushes at once.
     * Beyond it POST …/blobs/uploads/ answers 429 TOOMANYREQUESTS. Default 16.
     */
    maxUploadsPerClient: z.number().int().min(1).default(16),
    /** Open upload sessions per repository, whoever holds them; the same answer beyond it. Default 64 (four clients' worth). */
    maxUploadsPerRepository: z.number().int().min(1).default(64),
    /**
     * Largest single blob upload, in bytes. A chunk that would take an upload past it is refused with 413 and
     * not written (the upload keeps the bytes it had). Default 32 GiB: above the largest layers seen in
     * practice (CUDA and ML images ship layers of 10–20 GiB), far below what fills a disk unnoticed.
     */
    maxUploadSize: size('local.maxUploadSize').default(32 * 1024 * 1024 * 1024),
    /**
     * Quota for pushed content: bytes of content that local repositories hold plus bytes in open upload
     * sessions. A push past it is refused with 507 DENIED (dockerd does not retry DENIED). Content shared
     * with local repositories counts once; cached (pulled) content never counts. Default null: no quota
     * (cache.minFreeSpace still protects the disk from the cache, not from pushes).
     */
    maxSize: size('local.maxSize').nullable().default(null),
  }).prefault({}),
  /** The HTTP(S) listeners (`listen` and `tls.httpListen`): timeouts and a connection cap against clients that hold resources. */
  server: z.strictObject({
    /**
     * A request's line and headers must arrive within this, counted from its first byte (for a new
     * connection, from the connect): a slowloris client that trickles headers is cut. Node's default is
     * 60 s; real clients send their headers in one packet. Default 20 s.
     */
    headersTimeout: duration('server.headersTimeout').default(20_000),
    /**
     * Cap on receiving a whole request. Default 0: none, because a push of a large layer over a slow link
     * may take hours while making steady progress (Node's default of 300 s cut such pushes with 408); a
     * stalled body is cut by idleTimeout instead.
     */
    requestTimeout: duration('server.requestTimeout').default(0),
    /**
     * While a request body is being received, the connection is closed after this long without a byte
     * from the client. Not applied while the mirror itself works on the answer (waiting for an upstream,
     * hashing an upload). Default 60 s, as the upstream idle timeout.
     */
    idleTimeout: duration('server.idleTimeout').refine((ms) => ms > 0, 'must be more than 0').default(60_000),
    /**
     * How long a kept-alive connection may wait for its next request. Default 5 s (Node's own): idle
     * connections hold slots of maxConnections. Behind a load balancer, set it above the balancer's idle
     * timeout (AWS ALB: 60 s → 65s) so that the balancer closes first.
     */
    keepAliveTimeout: duration('server.keepAliveTimeout').default(5_000),
    /**
     * Open connections per listener; a connection beyond it is closed at once. Each costs a socket, a file
     * descriptor and buffers; dockerd and containerd open a handful per pull or push. Default 1024.
     */
    maxConnections: z.number().int().min(1).default(1024),
    /**
     * Reverse proxies (addresses or CIDR blocks, e.g. ["10.0.0.0/8"]) whose X-Forwarded-For is believed:
     * a request from one of them is counted against the client address the proxy appended (failed
     * logins per address, upload sessions per anonymous client). Set it when Longshore runs behind
     * HAProxy (`option forwardfor`) or an ingress; otherwise every user shares the proxy's address and
     * one attacker's failed logins lock everyone out. Default []: the header is never read.
     */
    trustedProxies: z.array(z.string().refine(isAddressBlock, 'must be an IP address or CIDR block, e.g. 10.0.0.0/8')).max(1024).default([]),
  }).refine((s) => s.requestTimeout === 0 || s.headersTimeout <= s.requestTimeout, {
    message: 'headersTimeout must not exceed requestTimeout', path: ['headersTimeout'],
  }).prefault({}),
  /** `longshore warm` and `export`, and scheduled syncs. */
  warm: z.strictObject({
    /** Platforms fetched from an index when a command names none (--platform). Default ["linux/amd64"]. */
    platforms: z.array(platform).min(1).default(['linux/amd64']),
    /** Blob downloads at once per job (--concurrency). Default 4. */
    concurrency: z.number().int().min(1).max(64).default(4),
  }).prefault({}),
  /** Scheduled syncs: tags fetched ahead of pulls and kept current (jobs/sync.ts). Default none. */
  sync: z.array(syncRuleSchema).default([]),
  cache: z.strictObject({
    /** Byte budget for cached content; null means unbounded (only minFreeSpace limits it). Default null. */
    maxSize: size('cache.maxSize').nullable().default(null),
    /** Eviction starts when the cache passes this fraction of maxSize… Default 0.9. */
    highWatermark: z.number().gt(0).max(1).default(0.9),
    /** …and removes least recently used content until it is under this fraction. Default 0.8. */
    lowWatermark: z.number().gt(0).max(1).default(0.8),
    /** Evict also while the data directory's filesystem has less free space than this. Default 1 GiB. */
    minFreeSpace: size('cache.minFreeSpace').default(1024 * 1024 * 1024),
    /** Content of these images is never evicted: "library/alpine:3.19", "library/node:*", "library/redis", "ghcr.io/owner/img:1.*". */
    pins: z.array(z.string().regex(/^[a-z0-9][a-z0-9._/:*-]*$/, 'expected "repository", "repository:tag" or a tag pattern with *')).default([]),
    /** How often the budget is checked besides after each download. Default 1 minute. */
    checkInterval: duration('cache.checkInterval').default(60_000),
    /**
     * Admission: a blob larger than this fraction of maxSize is streamed to its clients from the upstream
     * (verified, each client its own download) and not cached, so that one huge pull never evicts the
     * content everyone else uses. Ignored when maxSize is null. Default 0.25.
     */
    admissionShare: z.number().gt(0).max(1).default(0.25),
    /**
     * A blob larger than this fraction of maxSize is cached on its second request within the mirror's
     * memory of recent requests (the first is streamed through uncached), so that one-off pulls of huge
     * images evict nothing. 1 turns it off. Ignored when maxSize is null. Default 0.01.
     */
    doorkeeperShare: z.number().min(0).max(1).default(0.01),
    /**
     * Content a client asked for within this long is never evicted, whether or not its hits have been
     * written to the database yet (they are written every 5 s). At most 5 minutes. Default 10 s.
     */
    protectRecent: duration('cache.protectRecent').refine((ms) => ms <= 300_000, 'must be at most 5m').default(10_000),
  }).refine((c) => c.lowWatermark < c.highWatermark, { message: 'lowWatermark must be below highWatermark', path: ['lowWatermark'] }).prefault({}),
}).refine((c) => !c.auth.enabled || Object.values(c.upstreams).every((u) => !u.passThroughCredentials), {
  message: 'passThroughCredentials cannot be combined with auth.enabled: clients then send the mirror\'s tokens, not their upstream credentials',
  path: ['auth', 'enabled'],
}).refine((c) => c.sync.every((rule) => rule.upstream in c.upstreams), {
  message: 'every sync rule must name one of the configured upstreams',
  path: ['sync'],
}).refine((c) => c.defaultUpstream in c.upstreams, {
  message: 'defaultUpstream must name one of the configured upstreams',
  path: ['defaultUpstream'],
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type AuthConfig = z.output<typeof authSchema>;
export type ServerConfig = z.output<typeof configSchema>['server'];
export type SyncRule = z.output<typeof syncRuleSchema>;
export type TlsConfig = NonNullable<z.output<typeof tlsSchema>>;
