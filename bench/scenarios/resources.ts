// Scenario 6: peak RSS and CPU seconds of each server during the phases of scenarios 3 and 4, from
// the samples those scenarios took (/proc/<pid>/status VmRSS every 50 ms, VmHWM reset at the start of
// each phase; /proc/<pid>/stat utime + stime).
import type { ResourceSample, ScenarioContext } from '../lib/context.js';
import { row, type Row, type ScenarioResult } from '../lib/results.js';
import { GiB, MB } from '../lib/units.js';

const RSS_TARGET_MB = 150;

export function resourcesScenario(ctx: ScenarioContext): ScenarioResult[] {
  const phases = [...new Set(ctx.resources.map((s) => s.phase))];
  const rows: Row[] = [];
  for (const phase of phases) {
    const of = (kind: 'longshore' | 'distribution'): ResourceSample | undefined => ctx.resources.find((s) => s.phase === phase && s.kind === kind);
    const l = of('longshore');
    const d = of('distribution');
    const load = { ...(l ? { longshore: l.load } : {}), ...(d ? { distribution: d.load } : {}) };
    const eight = l?.eightStreams ?? d?.eightStreams ?? false;
    rows.push(
      row(6, {
        metric: `${phase}: peak RSS`, unit: 'MB', better: 'lower', load,
        values: { longshore: l ? l.usage.peakRss / MB : null, distribution: d ? d.usage.peakRss / MB : null },
        ...(eight ? { target: `< ${RSS_TARGET_MB} MB`, meets: (v: number) => v < RSS_TARGET_MB } : {}),
      }),
      row(6, {
        metric: `${phase}: CPU seconds per GiB served`, unit: 's/GiB', better: 'lower', load,
        values: { longshore: l ? l.usage.cpuSeconds / (l.servedBytes / GiB) : null, distribution: d ? d.usage.cpuSeconds / (d.servedBytes / GiB) : null },
      }),
    );
  }
  return [{
    id: 6,
    title: 'Peak RSS and CPU time of each server during scenarios 3 and 4',
    rows,
    details: {
      longshore: ctx.resources.filter((s) => s.kind === 'longshore'),
      distribution: ctx.resources.filter((s) => s.kind === 'distribution'),
    },
    notes: ctx.resources.map((s) => `${s.kind}, ${s.phase}: ${s.usage.cpuSeconds.toFixed(2)} CPU s over ${s.usage.wallSeconds.toFixed(1)} s wall; ` +
      `RSS ${(s.usage.startRss / MB).toFixed(0)} MB at the start, peak ${(s.usage.peakRss / MB).toFixed(0)} MB (sampled ${(s.usage.sampledPeakRss / MB).toFixed(0)} MB in ${s.usage.samples} samples, ` +
      `VmHWM ${(s.usage.hwm / MB).toFixed(0)} MB${s.usage.hwmReset ? '' : ', not reset: process lifetime'})`),
    seconds: 0,
  }];
}
