// What an e2e test prints when a step fails: the recent activity of each process in the rig, one
// section each, so that a red run on CI can be read without re-running it.
import type { CountingProxy } from './counting-proxy.js';
import type { Longshore } from './longshore.js';
import type { ServiceProcess } from './service-process.js';

export type DiagnosticSource =
  /** The requests an upstream received, through its counting proxy. */
  | { upstream: CountingProxy; label?: string }
  /** A Longshore's recent log; with `since`, first the requests it answered after that mark. */
  | { longshore: Longshore; label?: string; since?: number; lines?: number }
  /** The last lines a process wrote (a dockerd, containerd, haproxy). */
  | { process: ServiceProcess; label: string; lines?: number }
  | { label: string; text: string };

export function diagnostics(...sources: readonly DiagnosticSource[]): string {
  return sources.flatMap((source) => {
    if ('upstream' in source) return [`--- ${source.label ?? 'upstream'} requests ---`, source.upstream.describe()];
    if ('longshore' in source) {
      const label = source.label ?? 'longshore';
      const requests = source.since === undefined ? [] : [`--- requests ${label} answered ---`, source.longshore.describeRequestsSince(source.since)];
      return [...requests, `--- ${label} log (${source.longshore.process.state()}) ---`, source.longshore.recentLog(source.lines)];
    }
    if ('process' in source) {
      return [`--- ${source.label} log (${source.process.state()}) ---`, source.process.recentOutput().split('\n').slice(-(source.lines ?? 30)).join('\n')];
    }
    return [`--- ${source.label} ---`, source.text];
  }).join('\n');
}
