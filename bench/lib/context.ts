// What run.ts hands every scenario: options, the prepared images, the running upstream, and a way to
// start a fresh mirror of either kind (the scenario stops it). Resource samples taken in scenarios 3
// and 4 are collected here for scenario 6.
import type { LoadSnapshot } from './machine.js';
import type { BenchImage } from './images.js';
import type { BenchOptions } from './options.js';
import type { ProcUsage } from './proc-stats.js';
import type { ScenarioResult } from './results.js';
import type { MirrorOptions, MirrorServer, ServerKind } from './servers.js';

/** Per-scenario server options (see MirrorOptions). */
export type MirrorExtras = Pick<MirrorOptions, 'logLevel' | 'logFile' | 'localPrefixes' | 'plainRegistry'>;
import type { BenchUpstream } from './upstream.js';

export interface ResourceSample {
  /** Which measured phase, e.g. "3: 8 concurrent cold GETs". */
  phase: string;
  kind: ServerKind;
  usage: ProcUsage;
  /** Bytes the server sent to clients in the phase. */
  servedBytes: number;
  load: LoadSnapshot;
  /** Whether streaming 8 × the big layer at once: the phases the 150 MB RSS target is about. */
  eightStreams: boolean;
}

export interface Sizes {
  /** Concurrency levels of scenario 3. */
  coalescingN: readonly number[];
  /** Seconds of each measured manifest load run (scenario 5), and of its warm-up. */
  loadSeconds: number;
  loadWarmupSeconds: number;
  /** Measured manifest load runs per server and method, the servers taking turns; the report shows medians. */
  loadRuns: number;
  /** Repetitions of the 8-stream blob throughput runs (scenario 4). */
  throughputRuns: number;
  /**
   * Repetitions of the single-stream runs (scenario 4). Each reads 1 GiB in about half a second, and
   * runs of the same server differ by up to 20 % on this machine, so the median needs more of them.
   */
  singleStreamRuns: number;
  /** Repetitions of the pull scenarios (1, 2 and 7), each with fresh mirrors; the report shows medians. */
  pullRepeats: number;
}

/**
 * The order in which the two servers take their turn in repetition `i`: alternating, so that load from
 * other work on the machine, and anything that warms up (page cache, CPU frequency), favours neither.
 */
export function turnOrder(i: number): readonly ServerKind[] {
  return i % 2 === 0 ? ['longshore', 'distribution'] : ['distribution', 'longshore'];
}

export interface ScenarioContext {
  options: BenchOptions;
  sizes: Sizes;
  images: Record<BenchImage['name'], BenchImage>;
  upstream: BenchUpstream;
  /** Scratch space for pulls (removed at the end of the run). */
  workDir: string;
  /** A fresh mirror with an empty cache, configured with `upstreamUrl` (default: the counting proxy). */
  startMirror(kind: ServerKind, upstreamUrl?: string, extra?: MirrorExtras): Promise<MirrorServer>;
  resources: ResourceSample[];
  log(message: string): void;
}

export type Scenario = (ctx: ScenarioContext) => Promise<ScenarioResult[]>;

export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');
