// The admin commands as a user runs them (`src/cli/main.ts` in a child process, against a serving
// mirror's config file), the serving mirrors they run beside (one, or both sides of an air gap), and what
// the tests compare their effect with: the mirror's reported totals and the files really under blobs/.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigInput } from '../../src/config/schema.js';
import { scanTar } from '../../src/jobs/bundle/tar.js';
import { get } from './http.js';
import { startMirror, type TestMirror } from './mirror.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

type UpstreamInput = NonNullable<ConfigInput['upstreams']>[string];

export interface CliResult { code: number; stdout: string; stderr: string; lines: Array<Record<string, unknown>> }

/** `longshore <args> --config <configFile>`; `lines` are the JSON lines of its output (with --json). */
export function cli(configFile: string, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args, '--config', configFile], { cwd: ROOT, env: { ...process.env, LONGSHORE_CONFIG: '' }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, lines });
    });
  });
}

/** A serving mirror and its config file; close() stops the one and removes the other. */
export interface ServingMirror {
  mirror: TestMirror;
  configFile: string;
  close(): Promise<void>;
}

/** A mirror that announces itself as its data directory's owner, and a config file naming that directory. */
export async function serving(config: Partial<ConfigInput> & Pick<ConfigInput, 'upstreams'>): Promise<ServingMirror> {
  const mirror = await startMirror(config);
  await mirror.longshore.announce(mirror.url);
  const configFile = join(mirror.dataDir, '..', `${mirror.dataDir.split('/').pop()}.json`);
  await writeFile(configFile, JSON.stringify({ ...config, dataDir: mirror.dataDir, cache: { minFreeSpace: 0 } }));
  return {
    mirror,
    configFile,
    close: async () => {
      await mirror.close();
      await rm(configFile, { force: true });
    },
  };
}

/** The far side of an air gap: a serving mirror whose upstream is a port nothing listens on, and offline anyway. */
export function servingOffline(): Promise<ServingMirror> {
  return serving({ upstreams: { 'docker.io': { url: 'http://127.0.0.1:9' } }, offline: true });
}

/** Both sides of an air gap, and a directory for the bundles carried across. */
export interface AirGap {
  connected: ServingMirror;
  gapped: ServingMirror;
  work: string;
  close(): Promise<void>;
}

/** `connected` pulls from `upstream`; `gapped` is servingOffline(); `work` is a new temp dir named `workPrefix…`. */
export async function startAirGap(upstream: UpstreamInput, workPrefix: string): Promise<AirGap> {
  const connected = await serving({ upstreams: { 'docker.io': upstream } });
  const gapped = await servingOffline();
  const work = await mkdtemp(join(tmpdir(), workPrefix));
  return {
    connected,
    gapped,
    work,
    close: async () => {
      await connected.close();
      await gapped.close();
      await rm(work, { recursive: true, force: true });
    },
  };
}

/** Bytes and files under blobs/ (every algorithm): what is really on disk. */
export function onDisk(dataDir: string): { bytes: number; objects: number } {
  let bytes = 0;
  let objects = 0;
  for (const algorithm of ['sha256', 'sha512']) {
    const root = join(dataDir, 'blobs', algorithm);
    if (!existsSync(root)) continue;
    for (const prefix of readdirSync(root)) {
      for (const name of readdirSync(join(root, prefix))) {
        bytes += statSync(join(root, prefix, name)).size;
        objects++;
      }
    }
  }
  return { bytes, objects };
}

/** The cache's size and object count as the mirror reports them on /metrics. */
export async function reported(mirror: TestMirror): Promise<{ bytes: number; objects: number }> {
  const text = (await get(`${mirror.url}/metrics`)).body.toString();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text)?.[1]);
  return { bytes: value('longshore_cache_size_bytes'), objects: value('longshore_cache_objects') };
}

/** The digests a bundle carries (its `blobs/<alg>/<hex>` entries), sorted. */
export async function bundleBlobs(file: string): Promise<string[]> {
  const handle = await open(file, 'r');
  try {
    const { files } = await scanTar(handle, new Set());
    return [...files.keys()].filter((n) => n.startsWith('blobs/')).map((n) => n.slice('blobs/'.length).replace('/', ':')).sort();
  } finally {
    await handle.close();
  }
}
