// The in-process scenarios (`--only=cache-policy`, `--only=scale`): each measures Longshore alone, in
// this process or a child it starts, prints a Markdown report and writes
// bench/results/<commit>-<name>[-quick].{md,json}.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachePolicyScenario, renderCachePolicy } from '../scenarios/cache-policy.js';
import { renderScale, scaleScenario } from '../scenarios/scale.js';
import { machineInfo } from './machine.js';
import type { BenchOptions, NamedScenario } from './options.js';
import { resultName } from './results.js';

export async function runNamedScenario(name: NamedScenario, options: BenchOptions, started: Date, repoRoot: string): Promise<void> {
  const machine = machineInfo(repoRoot, undefined);
  const header = `${started.toISOString().slice(0, 10)}${options.quick ? ' (--quick)' : ''}: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, commit ${machine.commit}`;
  const t0 = Date.now();
  const log = (message: string) => console.log(`  [${name} +${((Date.now() - t0) / 1000).toFixed(1)} s] ${message}`);
  console.log(`scenario ${name}`);
  let markdown: string;
  let data: unknown;
  if (name === 'cache-policy') {
    const report = await cachePolicyScenario(options.quick, log);
    markdown = renderCachePolicy(report, header);
    data = report;
  } else {
    const report = await scaleScenario(options.quick, log, options.cacheDir, repoRoot, options.profile);
    markdown = renderScale(report, header);
    data = report;
  }
  console.log(`\n${markdown}`);
  if (options.noWrite) return;
  mkdirSync(options.resultsDir, { recursive: true });
  const file = resultName(options.resultsDir, machine, options.quick ? [name, 'quick'] : [name]);
  writeFileSync(join(options.resultsDir, `${file}.md`), markdown);
  writeFileSync(join(options.resultsDir, `${file}.json`), `${JSON.stringify({ startedAt: started.toISOString(), quick: options.quick, machine, ...data as object }, null, 2)}\n`);
  console.log(`wrote ${join(options.resultsDir, file)}.{md,json}`);
}
