// Command-line flags of `npm run bench`. Every flag is optional; the defaults are the full run that
// produced the committed result files.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRate } from './units.js';

export const SCENARIO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];
/** Scenarios that run in-process, without the servers of the comparison (and are not in the default run). */
export const NAMED_SCENARIOS = ['cache-policy', 'scale'] as const;
export type NamedScenario = (typeof NAMED_SCENARIOS)[number];

export type LoadGenerator = 'wrk' | 'net';

export interface BenchOptions {
  /** Smaller images, shorter load runs: for development, not for publishing. */
  quick: boolean;
  /** Scenarios to run; 6 (resources) is measured during 3 and 4 and needs one of them. */
  only: ReadonlySet<ScenarioId>;
  /** Named scenarios to run (bench/scenarios/cache-policy.ts, scale.ts): only when asked for. */
  named: ReadonlySet<NamedScenario>;
  /** Emulated WAN link in bytes/s: always used by scenario 7; when given, also by scenarios 1 and 2. */
  throttle: number;
  throttleGiven: boolean;
  /** Start Longshore with `node --cpu-prof` and summarise the profiles. */
  profile: boolean;
  /** Manifest load generator: wrk when it is installed, else the in-repo node:net one. */
  loadgen: LoadGenerator | 'auto';
  /** Generated images, the upstream's storage and the compiled build live here, outside the repo. */
  cacheDir: string;
  /** Where result files go. */
  resultsDir: string;
  /** Write no result files (still prints the table). */
  noWrite: boolean;
  /**
   * Longshore's log level in scenario 5: info (default; the issue-17 target is with request logs) or warn
   * (no request lines: how runs before bf1410b measured, for comparing with them).
   */
  manifestLogLevel: 'info' | 'warn';
}

const DEFAULT_THROTTLE = '50MB/s';

export const USAGE = `usage: npm run bench -- [--quick] [--only=1,3|cache-policy|scale] [--throttle=50MB/s] [--profile]
                       [--loadgen=wrk|net] [--cache=DIR] [--results=DIR] [--no-write] [--manifest-log=info|warn]`;

export function parseOptions(argv: readonly string[], repoRoot: string): BenchOptions {
  const options: BenchOptions = {
    quick: false,
    only: new Set(SCENARIO_IDS),
    named: new Set(),
    throttle: parseRate(DEFAULT_THROTTLE)!,
    throttleGiven: false,
    profile: false,
    loadgen: 'auto',
    cacheDir: process.env.LONGSHORE_BENCH_CACHE ?? join(tmpdir(), 'longshore-bench-cache'),
    resultsDir: join(repoRoot, 'bench', 'results'),
    noWrite: false,
    manifestLogLevel: 'info',
  };
  for (const arg of argv) {
    const [flag, value] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    switch (flag) {
      case '--quick':
        options.quick = true;
        break;
      case '--only': {
        const items = (value ?? '').split(',').map((s) => s.trim());
        const named = items.filter((s) => (NAMED_SCENARIOS as readonly string[]).includes(s)) as NamedScenario[];
        const ids = items.filter((s) => !(NAMED_SCENARIOS as readonly string[]).includes(s)).map(Number);
        if (items.length === 0 || ids.some((id) => !(SCENARIO_IDS as readonly number[]).includes(id))) {
          throw new Error(`--only expects scenario numbers from 1 to 10 or ${NAMED_SCENARIOS.join(', ')}, e.g. --only=3,4 (got ${JSON.stringify(value)})`);
        }
        options.only = new Set(ids as ScenarioId[]);
        options.named = new Set(named);
        break;
      }
      case '--throttle': {
        const rate = parseRate(value ?? '');
        if (rate === undefined) throw new Error(`--throttle expects a rate such as 50MB/s or 100Mbit/s (got ${JSON.stringify(value)})`);
        options.throttle = rate;
        options.throttleGiven = true;
        break;
      }
      case '--profile':
        options.profile = true;
        break;
      case '--loadgen':
        if (value !== 'wrk' && value !== 'net') throw new Error(`--loadgen expects wrk or net (got ${JSON.stringify(value)})`);
        options.loadgen = value;
        break;
      case '--cache':
        if (!value) throw new Error('--cache expects a directory');
        options.cacheDir = value;
        break;
      case '--results':
        if (!value) throw new Error('--results expects a directory');
        options.resultsDir = value;
        break;
      case '--no-write':
        options.noWrite = true;
        break;
      case '--manifest-log':
        if (value !== 'info' && value !== 'warn') throw new Error(`--manifest-log expects info or warn (got ${JSON.stringify(value)})`);
        options.manifestLogLevel = value;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${arg}\n${USAGE}`);
    }
  }
  if (options.only.has(6) && !options.only.has(3) && !options.only.has(4)) {
    throw new Error('scenario 6 (peak RSS and CPU) is measured during scenarios 3 and 4: add 3 or 4 to --only');
  }
  return options;
}
