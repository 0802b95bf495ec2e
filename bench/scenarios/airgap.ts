// Scenario 9: the air gap (issue 16). For the 5-layer image and the 1 GiB image, Longshore's
//   warm    `longshore warm REF` against a running mirror with an empty cache (fetch from the upstream)
//   export  `longshore export --output FILE REF` from that mirror's cache
//   import  `longshore import FILE` into a second running mirror
// against the same transfers by skopeo, in the same run:
//   warm    `skopeo sync --src docker --dest dir` from the upstream (the same counting proxy)
//   export  `skopeo copy dir:SYNCED oci-archive:FILE:REF` (from local disk, as Longshore from its cache)
//   import  `skopeo copy oci-archive:FILE:REF dir:OUT` (unpacked and verified onto local disk)
// MB/s is image bytes (config + layers) ÷ wall time. Peak RSS is the Longshore server's doing the work
// (VmRSS sampled, VmHWM reset at the start where permitted; the CLI only relays) and skopeo's own.
// Targets: each at least as fast as skopeo; Longshore's peak RSS flat in the bundle's size (the 1 GiB
// image's import peak within 1.25 × the 5-layer image's).
// In the report's columns, "distribution" holds skopeo's value for this scenario's rows.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ScenarioContext } from '../lib/context.js';
import { formatSummary, summarizeProfile } from '../lib/cpu-profile.js';
import type { BenchImage } from '../lib/images.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { ProcSampler, type ProcUsage } from '../lib/proc-stats.js';
import { row, upstreamSettled, type ScenarioResult } from '../lib/results.js';
import type { MirrorServer } from '../lib/servers.js';
import { MB, formatBytes } from '../lib/units.js';

const STEP_TIMEOUT_MS = 900_000;
/** Nothing listens here: the importing mirror never needs its upstream. */
const NO_UPSTREAM = 'http://127.0.0.1:9';

interface Step {
  seconds: number;
  peakRss: number;
  bytes: number;
  load: LoadSnapshot;
}

interface ImageRun {
  image: BenchImage;
  longshore: { warm: Step; export: Step; import: Step; upstreamBlobBytes: number; bundleBytes: number };
  skopeo: { warm: Step; export: Step; import: Step; upstreamBlobBytes: number; bundleBytes: number };
}

/** Runs a command; peak RSS is `samplePid`'s over the run (a server doing the work) or the command's own. */
async function measured(command: string, args: readonly string[], env: NodeJS.ProcessEnv, samplePid: number | undefined, bytes: number): Promise<Step> {
  const load = loadSnapshot();
  const started = process.hrtime.bigint();
  const server = samplePid === undefined ? undefined : ProcSampler.start(samplePid, 20);
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  child.stderr.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  // A process of its own: VmHWM is its peak so far, read until it is gone.
  let ownPeak = 0;
  const own = samplePid === undefined ? setInterval(() => {
    try {
      const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (match) ownPeak = Math.max(ownPeak, Number(match[1]) * 1024);
    } catch {
      // gone
    }
  }, 20) : undefined;
  const timer = setTimeout(() => child.kill('SIGKILL'), STEP_TIMEOUT_MS);
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c ?? 1));
  }).finally(() => {
    clearTimeout(timer);
    clearInterval(own);
  });
  const usage: ProcUsage | undefined = server?.stop();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}:\n${output}`);
  return { seconds, peakRss: usage ? usage.peakRss : ownPeak, bytes, load };
}

/** With --profile, the command is profiled too (`node --cpu-prof`), beside the servers' profiles. */
function longshoreCli(mirror: MirrorServer, args: readonly string[], bytes: number, profileDir: string | undefined): Promise<Step> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LONGSHORE_')));
  const profile = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=cli-${args[0]}-${Date.now()}.cpuprofile`];
  return measured(process.execPath, [...profile, mirror.cliJs!, ...args, '--json', '--config', mirror.configPath!], env, mirror.pid, bytes);
}

export async function airgapScenario(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const started = process.hrtime.bigint();
  const runs: ImageRun[] = [];
  const proxy = ctx.upstream.proxy;
  const creds = `${ctx.upstream.mirrorCredentials.username}:${ctx.upstream.mirrorCredentials.password}`;
  const upstreamHost = new URL(proxy.url).host;
  let cliProfiles: string | undefined;
  if (ctx.options.profile) {
    mkdirSync(join(ctx.options.cacheDir, 'profiles'), { recursive: true });
    cliProfiles = mkdtempSync(join(ctx.options.cacheDir, 'profiles', 'airgap-cli-'));
  }
  for (const image of [ctx.images.five, ctx.images.big]) {
    const dir = mkdtempSync(join(ctx.workDir, `airgap-${image.name}-`));
    const ref = `docker.io/${image.repository}:${image.tag}`;
    const bytes = image.pullBytes;
    try {
      // Longshore
      const connected = await ctx.startMirror('longshore');
      const gapped = await ctx.startMirror('longshore', NO_UPSTREAM);
      let longshore: ImageRun['longshore'];
      try {
        await upstreamSettled(proxy, 200);
        proxy.reset();
        const warm = await longshoreCli(connected, ['warm', ref], bytes, cliProfiles);
        await upstreamSettled(proxy);
        const upstreamBlobBytes = proxy.blobBytes();
        const bundle = join(dir, 'longshore.tar');
        const exported = await longshoreCli(connected, ['export', '--output', bundle, ref], bytes, cliProfiles);
        const bundleBytes = statSync(bundle).size;
        const imported = await longshoreCli(gapped, ['import', bundle], bytes, cliProfiles);
        longshore = { warm, export: exported, import: imported, upstreamBlobBytes, bundleBytes };
        rmSync(bundle, { force: true });
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- connected ---\n${connected.recentLog()}\n--- offline ---\n${gapped.recentLog()}`);
      } finally {
        await connected.stop();
        await gapped.stop();
      }
      ctx.log(`longshore ${image.name}: warm ${longshore.warm.seconds.toFixed(2)} s, export ${longshore.export.seconds.toFixed(2)} s, import ${longshore.import.seconds.toFixed(2)} s; peak RSS ${formatBytes(longshore.warm.peakRss)} / ${formatBytes(longshore.export.peakRss)} / ${formatBytes(longshore.import.peakRss)}`);

      // skopeo, the same transfers
      const env = { ...process.env, TMPDIR: dir };
      const synced = join(dir, 'synced');
      await upstreamSettled(proxy, 200);
      proxy.reset();
      const warm = await measured('skopeo', ['--insecure-policy', 'sync', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', '--src-creds', creds, `${upstreamHost}/${image.repository}:${image.tag}`, synced], env, undefined, bytes);
      await upstreamSettled(proxy);
      const upstreamBlobBytes = proxy.blobBytes();
      const layout = join(synced, `${image.repository.split('/').pop()}:${image.tag}`);
      const bundle = join(dir, 'skopeo.tar');
      const exported = await measured('skopeo', ['--insecure-policy', 'copy', '--quiet', `dir:${layout}`, `oci-archive:${bundle}:${ref}`], env, undefined, bytes);
      const bundleBytes = statSync(bundle).size;
      const imported = await measured('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci-archive:${bundle}:${ref}`, `dir:${join(dir, 'out')}`], env, undefined, bytes);
      const skopeo = { warm, export: exported, import: imported, upstreamBlobBytes, bundleBytes };
      ctx.log(`skopeo ${image.name}: sync ${warm.seconds.toFixed(2)} s, copy to oci-archive ${exported.seconds.toFixed(2)} s, copy from it ${imported.seconds.toFixed(2)} s; peak RSS ${formatBytes(warm.peakRss)} / ${formatBytes(exported.peakRss)} / ${formatBytes(imported.peakRss)}`);
      runs.push({ image, longshore, skopeo });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  if (cliProfiles) {
    for (const file of readdirSync(cliProfiles).sort()) ctx.log(`CPU profile of the command ${join(cliProfiles, file)}:\n${formatSummary(summarizeProfile(join(cliProfiles, file), 12))}`);
  }

  const rows = runs.flatMap(({ image, longshore, skopeo }) => {
    const label = `${image.repository}:${image.tag} (${formatBytes(image.pullBytes)}, ${image.layers.length} layer${image.layers.length === 1 ? '' : 's'})`;
    return (['warm', 'export', 'import'] as const).flatMap((step) => [
      row(9, {
        metric: `${step} ${label}: MB/s (other column: skopeo ${step === 'warm' ? 'sync' : step === 'export' ? 'copy dir: → oci-archive:' : 'copy oci-archive: → dir:'})`,
        unit: 'MB/s', better: 'higher',
        values: { longshore: longshore[step].bytes / MB / longshore[step].seconds, distribution: skopeo[step].bytes / MB / skopeo[step].seconds },
        load: { longshore: longshore[step].load, distribution: skopeo[step].load },
        target: '≥ skopeo', meets: (l, d) => d === null || l >= d,
      }),
      row(9, {
        metric: `${step} ${label}: peak RSS (Longshore server; other column: skopeo)`,
        unit: 'MB', better: 'lower',
        values: { longshore: longshore[step].peakRss / MB, distribution: skopeo[step].peakRss / MB },
        load: { longshore: longshore[step].load, distribution: skopeo[step].load },
      }),
    ]).concat([
      row(9, {
        metric: `warm ${label}: upstream blob bytes ÷ image bytes (other column: skopeo)`,
        unit: '×', better: 'lower',
        values: { longshore: longshore.upstreamBlobBytes / image.pullBytes, distribution: skopeo.upstreamBlobBytes / image.pullBytes },
        load: { longshore: longshore.warm.load, distribution: skopeo.warm.load }, target: '1.00', meets: (l) => l < 1.005,
      }),
    ]);
  });
  const [five, big] = runs;
  if (five && big) {
    rows.push(row(9, {
      metric: `import peak RSS, ${formatBytes(big.image.pullBytes)} image ÷ ${formatBytes(five.image.pullBytes)} image (flat in the bundle's size; other column: skopeo)`,
      unit: '×', better: 'lower',
      values: { longshore: big.longshore.import.peakRss / five.longshore.import.peakRss, distribution: big.skopeo.import.peakRss / five.skopeo.import.peakRss },
      load: { longshore: big.longshore.import.load, distribution: big.skopeo.import.load }, target: '≤ 1.25', meets: (l) => l <= 1.25,
    }));
  }
  return [{
    id: 9,
    title: 'Air gap: warm, export and import (Longshore) against skopeo sync / copy oci-archive: (in the distribution column)',
    rows,
    details: { longshore: runs.map((r) => ({ image: r.image.name, ...r.longshore })), distribution: runs.map((r) => ({ image: r.image.name, skopeo: r.skopeo })) },
    notes: runs.map((r) => `${r.image.name}: bundle ${formatBytes(r.longshore.bundleBytes)} (Longshore) vs ${formatBytes(r.skopeo.bundleBytes)} (skopeo)`),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }];
}


