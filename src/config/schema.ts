// The one configuration schema. Every option, its default (with units) and its meaning lives here;
// the README's configuration reference is written from this file. Types are derived from the schema.
import { z } from 'zod';
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

const upstreamSchema = z.strictObject({
  /** Base URL of the upstream registry (scheme + host [+ port]); requests go to `${url}/v2/...`. */
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).transform((u) => u.replace(/\/+$/, '')),
  /** Credentials for the upstream's token service or Basic auth. Both or neither. */
  username: z.string().min(1).nullable().default(null),
  password: z.string().min(1).nullable().default(null),
  /** How long a tag's resolution is served from cache before it is revalidated with a HEAD. Default 5 minutes. */
  tagTTL: duration('tagTTL').default(300_000),
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

export const configSchema = z.strictObject({
  /** Address the HTTP server binds. Default 127.0.0.1:5000 (use 0.0.0.0:5000 to serve a network). */
  listen: listen.default('127.0.0.1:5000'),
  /** Directory holding the content store, temp files and the SQLite database. Default ./data. */
  dataDir: z.string().min(1).default('./data'),
  /** pino level: trace, debug, info, warn, error, fatal, silent. Default info. */
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Upstream that serves names with no registry host (dockerd's registry-mirrors sends those). */
  defaultUpstream: z.string().min(1).default('docker.io'),
  /** Registry host → upstream. Only hosts named here are ever contacted. */
  upstreams: z.record(z.string().regex(/^[a-z0-9.-]+(?::\d+)?$/, 'expected a registry host such as "docker.io"'), upstreamSchema)
    .default({ 'docker.io': upstreamSchema.parse({ url: 'https://registry-1.docker.io' }) }),
  /** Air-gapped mode for every upstream that does not set its own `offline`. Default false. */
  offline: z.boolean().default(false),
  /** Largest manifest accepted from an upstream, in bytes. Default 4 MiB (distribution's limit). */
  maxManifestSize: size('maxManifestSize').default(4 * 1024 * 1024),
  local: z.strictObject({
    /** Repository name prefixes that are local, pushable repositories ("team/", "local/"); never routed upstream. Default none. */
    prefixes: z.array(z.string().regex(/^[a-z0-9][a-z0-9._/-]*$/, 'expected a repository name prefix such as "team/"')).default([]),
    /** Allow DELETE /v2/<name>/blobs/<digest> on local repositories. Default false. */
    allowBlobDelete: z.boolean().default(false),
    /** Upload sessions untouched this long are cancelled and their data removed. Default 1 hour. */
    uploadTimeout: duration('local.uploadTimeout').default(3_600_000),
  }).prefault({}),
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
  }).refine((c) => c.lowWatermark < c.highWatermark, { message: 'lowWatermark must be below highWatermark', path: ['lowWatermark'] }).prefault({}),
}).refine((c) => c.defaultUpstream in c.upstreams, {
  message: 'defaultUpstream must name one of the configured upstreams',
  path: ['defaultUpstream'],
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
