// Scheduled sync (config `sync`): per rule, list the repository's tags upstream, keep those the rule
// selects (globs, a semver range or a regex; at most maxTags, highest first), revalidate each with a
// HEAD (free on Docker Hub) whatever tagTTL says, and warm the digest it names through the same
// ProxyRegistry path as a pull: an unchanged digest costs nothing more, a changed one is fetched,
// sharing any download a live pull of the same layer has under way. An upstream failure is recorded in
// the rule's status and the next run comes all the same.
import type { Logger } from 'pino';
import type { SyncRule } from '../config/schema.js';
import { LongshoreError } from '../errors.js';
import type { ProxyRegistry, UpstreamEntry } from '../registry/proxy.js';
import { tagGlobs } from '../registry/proxy.js';
import { describe } from './admin-jobs.js';
import { ACCEPT_ALL, Semaphore, Warmer, type PlatformChoice } from './warm.js';
import type { LocalContent } from '../registry/local-content.js';

/** Pages of a tag list read at most (Docker Hub answers up to 1000 tags a page with n=1000). */
const MAX_PAGES = 50;
/** Until the first run, after start-up: the mirror settles first. */
const FIRST_RUN_MS = 5_000;

export interface SyncStatus {
  rule: number;
  upstream: string;
  repository: string;
  selector: string;
  intervalMs: number;
  running: boolean;
  lastRun: string | null;
  lastSuccess: string | null;
  nextRun: string | null;
  /** Tags kept by the last run, and how many of them were warmed without error. */
  tags: string[];
  images: number;
  /** Bytes of the synced images, and of those how many were fetched by the last run. */
  bytes: number;
  fetchedBytes: number;
  lastError: string | null;
  runs: number;
  failures: number;
}

export interface SyncDeps {
  registry: ProxyRegistry;
  local: LocalContent;
  upstreams: ReadonlyMap<string, UpstreamEntry>;
  maxManifestSize: number;
  platforms: readonly string[];
  concurrency: number;
  log: Logger;
  now?: () => number;
}

export class SyncScheduler {
  private readonly statuses: SyncStatus[];
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly running = new Map<number, Promise<SyncStatus>>();
  private stopped = false;
  private paused = false;

  constructor(private readonly rules: readonly SyncRule[], private readonly deps: SyncDeps) {
    this.statuses = rules.map((rule, i) => ({
      rule: i,
      upstream: rule.upstream,
      repository: rule.repository,
      selector: rule.tags ? `tags ${rule.tags.join(' ')}` : rule.semver ? `semver ${rule.semver}` : `regex ${rule.regex}`,
      intervalMs: rule.interval,
      running: false,
      lastRun: null,
      lastSuccess: null,
      nextRun: null,
      tags: [],
      images: 0,
      bytes: 0,
      fetchedBytes: 0,
      lastError: null,
      runs: 0,
      failures: 0,
    }));
  }

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  start(): void {
    this.rules.forEach((_rule, i) => this.schedule(i, FIRST_RUN_MS));
  }

  /** No more scheduled runs; a run under way stops after its current tag. */
  stop(): void {
    this.stopped = true;
    this.pause();
  }

  /** No more scheduled runs; run() still runs a rule when asked (tests, an operator's "sync now"). */
  pause(): void {
    this.paused = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** Copies of every rule's status, for /api/v1 and metrics. */
  status(): SyncStatus[] {
    return this.statuses.map((s) => ({ ...s, tags: [...s.tags] }));
  }

  private schedule(i: number, delay: number): void {
    if (this.stopped || this.paused) return;
    clearTimeout(this.timers.get(i));
    this.statuses[i]!.nextRun = new Date(this.now + delay).toISOString();
    const timer = setTimeout(() => void this.run(i).finally(() => this.schedule(i, this.rules[i]!.interval)), delay);
    timer.unref();
    this.timers.set(i, timer);
  }

  /** Runs rule `i` now (or joins the run under way). */
  run(i: number): Promise<SyncStatus> {
    const pending = this.running.get(i);
    if (pending) return pending;
    const work = this.execute(i).finally(() => this.running.delete(i));
    this.running.set(i, work);
    return work;
  }

  private async execute(i: number): Promise<SyncStatus> {
    const rule = this.rules[i]!;
    const status = this.statuses[i]!;
    const log = this.deps.log.child({ rule: i, upstream: rule.upstream, repository: rule.repository });
    status.running = true;
    status.lastRun = new Date(this.now).toISOString();
    status.runs++;
    const errors: string[] = [];
    try {
      const entry = this.deps.upstreams.get(rule.upstream);
      if (!entry) throw new LongshoreError('LS_UPSTREAM_UNKNOWN', `upstream ${rule.upstream} is not configured`, { upstream: rule.upstream });
      if (entry.offline) throw new LongshoreError('LS_UPSTREAM_UNAVAILABLE', `upstream ${rule.upstream} is offline`, { upstream: rule.upstream });
      const tags = selectTags(await this.listTags(entry, rule.repository), rule);
      const warmer = new Warmer(this.deps.registry, `sync-${i}-${status.runs}`);
      const slots = new Semaphore(this.deps.concurrency);
      const platforms: PlatformChoice = rule.platforms ?? this.deps.platforms;
      let images = 0;
      let bytes = 0;
      let fetched = 0;
      for (const tag of tags) {
        if (this.stopped) break;
        try {
          const repo = { upstream: rule.upstream, name: rule.repository };
          // A HEAD whatever tagTTL says: the run is the revalidation. Then the content by digest.
          const head = await entry.client.manifest('HEAD', rule.repository, tag, ACCEPT_ALL.upstreamHeader(), this.deps.maxManifestSize, `sync-${i}-${status.runs}`);
          const image = await warmer.warm({
            repo,
            reference: head.digest ? { kind: 'digest', digest: head.digest } : { kind: 'tag', tag },
            full: `${rule.upstream}/${rule.repository}:${tag}`,
          }, { platforms, slots, withReferrers: rule.withReferrers });
          this.deps.local.putTag(rule.upstream, rule.repository, tag, ACCEPT_ALL.key, image.root.digest, image.root.mediaType);
          images++;
          bytes += image.blobs.reduce((s, b) => s + b.size, 0);
          fetched += image.fetchedBytes;
        } catch (err) {
          errors.push(`${tag}: ${describe(err).message}`);
          log.warn({ tag, err }, 'sync could not warm a tag');
        }
      }
      Object.assign(status, { tags, images, bytes, fetchedBytes: fetched });
      if (errors.length === 0) status.lastSuccess = status.lastRun;
      log.info({ tags: tags.length, images, fetchedBytes: fetched, errors: errors.length }, 'sync run finished');
    } catch (err) {
      errors.push(describe(err).message);
      log.warn({ err }, 'sync run failed');
    } finally {
      status.running = false;
    }
    status.lastError = errors.length > 0 ? errors.slice(0, 5).join('; ') : null;
    if (errors.length > 0) status.failures++;
    return { ...status };
  }

  private async listTags(entry: UpstreamEntry, repository: string): Promise<string[]> {
    const tags: string[] = [];
    let query = 'n=1000';
    for (let page = 0; page < MAX_PAGES; page++) {
      const answer = await entry.client.tagList(repository, query, this.deps.maxManifestSize, `sync-tags-${repository}`);
      tags.push(...answer.tags);
      if (!answer.next) break;
      query = answer.next.includes('?') ? answer.next.slice(answer.next.indexOf('?') + 1) : answer.next;
    }
    return tags;
  }
}

/** The tags a rule keeps, highest first, at most maxTags. */
export function selectTags(tags: readonly string[], rule: Pick<SyncRule, 'tags' | 'semver' | 'regex' | 'maxTags'>): string[] {
  let kept: string[];
  if (rule.semver !== undefined) {
    const range = parseRange(rule.semver);
    kept = tags.filter((t) => {
      const v = parseVersion(t);
      return v !== undefined && range.every(([op, bound]) => satisfies(compare(v, bound), op));
    }).sort((a, b) => compare(parseVersion(b)!, parseVersion(a)!));
  } else if (rule.regex !== undefined) {
    const regex = new RegExp(rule.regex);
    kept = tags.filter((t) => regex.test(t)).sort().reverse();
  } else {
    const matches = tagGlobs(rule.tags ?? [])!;
    kept = tags.filter((t) => matches(t)).sort().reverse();
  }
  return kept.slice(0, rule.maxTags);
}

type Version = [number, number, number];

/** "20", "20.11", "v20.11.1": a version; "20-alpine", "latest": not one. */
function parseVersion(text: string): Version | undefined {
  const match = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(text.trim());
  return match ? [Number(match[1]), Number(match[2] ?? 0), Number(match[3] ?? 0)] : undefined;
}

function parseRange(text: string): Array<[string, Version]> {
  const out: Array<[string, Version]> = [];
  for (const match of text.matchAll(/(>=|<=|>|<|=)?\s*(v?\d+(?:\.\d+){0,2})/g)) out.push([match[1] ?? '=', parseVersion(match[2]!)!]);
  return out;
}

function compare(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function satisfies(cmp: number, op: string): boolean {
  switch (op) {
    case '>=': return cmp >= 0;
    case '<=': return cmp <= 0;
    case '>': return cmp > 0;
    case '<': return cmp < 0;
    default: return cmp === 0;
  }
}
