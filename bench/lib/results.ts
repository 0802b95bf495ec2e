// What a run produces: one row per metric with Longshore's value, distribution's, their ratio and the
// target from issue 8, plus the load average when each side was measured and raw details for the JSON.
import type { CountingProxy } from '../../test/support/e2e/counting-proxy.js';
import type { TokenServer } from '../../test/support/e2e/token-server.js';
import { waitFor } from '../../test/support/wait.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadSnapshot, MachineInfo } from './machine.js';
import type { ServerKind } from './servers.js';

export interface Row {
  scenario: number;
  metric: string;
  unit: string;
  /** Which direction is better; 'none' rows are context (e.g. request counts) and are not charted. */
  better: 'lower' | 'higher' | 'none';
  longshore: number | null;
  distribution: number | null;
  /** Longshore ÷ distribution, when both are known and distribution's is not 0. */
  ratio: number | null;
  /** The target from issue 8, as text. */
  target?: string;
  /** Whether Longshore meets the target; null when the row has none. */
  targetMet: boolean | null;
  /** Load average when each side's measurement started. */
  load: Partial<Record<ServerKind, LoadSnapshot>>;
}

export interface RowInput {
  metric: string;
  unit: string;
  better: Row['better'];
  values: Partial<Record<ServerKind, number | null>>;
  load: Partial<Record<ServerKind, LoadSnapshot>>;
  target?: string;
  /** Evaluates the target on Longshore's value (and distribution's, for relative targets). */
  meets?: (longshore: number, distribution: number | null) => boolean;
}

export function row(scenario: number, input: RowInput): Row {
  const l = input.values.longshore ?? null;
  const d = input.values.distribution ?? null;
  return {
    scenario,
    metric: input.metric,
    unit: input.unit,
    better: input.better,
    longshore: l,
    distribution: d,
    ratio: l !== null && d !== null && d !== 0 ? l / d : null,
    ...(input.target === undefined ? {} : { target: input.target }),
    targetMet: input.meets && l !== null ? input.meets(l, d) : null,
    load: input.load,
  };
}

export interface ScenarioResult {
  id: number;
  title: string;
  rows: Row[];
  /** Free-form measurements per server for the JSON file and the notes under the table. */
  details: Partial<Record<ServerKind, unknown>>;
  notes: string[];
  seconds: number;
}

export interface RunResult {
  startedAt: string;
  finishedAt: string;
  mode: 'full' | 'quick';
  machine: MachineInfo;
  settings: Record<string, unknown>;
  scenarios: ScenarioResult[];
  profiles: Array<{ scenario: number; file: string; top: unknown }>;
}

/** Upstream traffic seen by a counting proxy, by kind. 401 challenges are counted apart. */
export interface UpstreamTraffic {
  manifestGet: number;
  manifestHead: number;
  blobGet: number;
  blobHead: number;
  /** `/v2/` pings and anything else. */
  other: number;
  /** Requests answered 401 (the token challenge before a request, not a fetch). */
  challenges: number;
  /** Token requests at the token server. */
  tokens: number;
  /** Body bytes of blob GETs. */
  blobBytes: number;
  /** Body bytes of every response. */
  bytes: number;
}

export function upstreamTraffic(proxy: CountingProxy, tokens: TokenServer): UpstreamTraffic {
  const t: UpstreamTraffic = { manifestGet: 0, manifestHead: 0, blobGet: 0, blobHead: 0, other: 0, challenges: 0, tokens: tokens.requestCount, blobBytes: 0, bytes: 0 };
  for (const r of proxy.requests) {
    t.bytes += r.bytes;
    if (r.kind === 'blob' && r.method === 'GET') t.blobBytes += r.bytes;
    if (r.status === 401) t.challenges++;
    else if (r.kind === 'manifest' && r.method === 'HEAD') t.manifestHead++;
    else if (r.kind === 'manifest') t.manifestGet++;
    else if (r.kind === 'blob' && r.method === 'HEAD') t.blobHead++;
    else if (r.kind === 'blob') t.blobGet++;
    else t.other++;
  }
  return t;
}

/**
 * Waits until every upstream exchange has ended (a mirror may keep filling its cache after its client
 * is done) and no new one has started for `quietMs`.
 */
export async function upstreamSettled(proxy: CountingProxy, quietMs = 500, timeoutMs = 300_000): Promise<void> {
  let lastCount = -1;
  let quietSince = Date.now();
  await waitFor(async () => {
    if (proxy.requests.length !== lastCount) {
      lastCount = proxy.requests.length;
      quietSince = Date.now();
    }
    return proxy.requests.every((r) => r.done) && Date.now() - quietSince >= quietMs ? true : undefined;
  }, { what: 'upstream transfers to finish', timeoutMs, intervalMs: 50 });
}

export function describeTraffic(t: UpstreamTraffic): string {
  return `manifest GET ${t.manifestGet}, manifest HEAD ${t.manifestHead}, blob GET ${t.blobGet}, blob HEAD ${t.blobHead}, ` +
    `other ${t.other}, 401 ${t.challenges}, token ${t.tokens}; blob bytes ${t.blobBytes}`;
}

/**
 * A result file's name: the commit measured (12 hex, "-dirty" when src/ had uncommitted changes), then
 * what ran ("-quick", a named scenario), then "-2", "-3" … for further runs of the same.
 */
export function resultName(dir: string, machine: Pick<MachineInfo, 'commit' | 'uncommittedSrc'>, parts: string[]): string {
  const commit = machine.commit === 'unknown' ? 'unknown' : machine.commit.slice(0, 12);
  const base = [commit + (machine.uncommittedSrc.length > 0 ? '-dirty' : ''), ...parts].join('-');
  let name = base;
  for (let i = 2; existsSync(join(dir, `${name}.md`)); i++) name = `${base}-${i}`;
  return name;
}
