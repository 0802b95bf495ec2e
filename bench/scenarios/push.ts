// Scenario 10: pushes of the big image (one ~1 GiB layer) into a local repository. Longshore takes them
// under `local.prefixes`; distribution 2.8 runs as a plain registry (no proxy section), as `registry:2`
// does. Each run starts a fresh server, so the layer is never already there, and the servers take turns.
//   skopeo     `skopeo copy dir:… docker://…`: a HEAD for the blob, then POST, one PATCH with the whole
//              layer (chunked transfer encoding, no Content-Range), and a PUT with the digest.
//   10 MiB     the bench's own chunked upload of the layer: POST, PATCHes of 10 MiB with Content-Range
//              (each from a buffer read ahead of time), PUT ?digest=, as a client
//              that resumes uploads does. Only the blob, no manifest.
// Longshore runs at logLevel debug with its output in a file, which is searched afterwards for the
// fallback that re-reads a finished upload to hash it ("reading an upload back to hash it"): pushes are
// meant to be hashed while they are written, each byte written once and never read back.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { turnOrder, type ScenarioContext } from '../lib/context.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { ProcSampler } from '../lib/proc-stats.js';
import { row, type ScenarioResult } from '../lib/results.js';
import { SERVER_KINDS, type MirrorServer, type ServerKind } from '../lib/servers.js';
import { median } from '../lib/stats.js';
import { MiB, formatBytes, formatRate } from '../lib/units.js';

const run = promisify(execFile);
const PREFIX = 'pushed/';
const CHUNK = 10 * MiB;
const READ_BACK = 'reading an upload back to hash it';

interface PushRun {
  seconds: number;
  /** Server CPU seconds (user + system) during the push. */
  cpuSeconds: number;
  load: LoadSnapshot;
}

type Method = 'skopeo' | 'chunked';

export async function pushScenario(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const started = process.hrtime.bigint();
  const image = ctx.images.big;
  const layer = image.layers[0]!;
  const layerPath = join(image.dir, layer.digest.slice(layer.digest.indexOf(':') + 1));
  const runs = Math.max(3, ctx.sizes.pullRepeats);
  const per = {
    longshore: { skopeo: [], chunked: [] },
    distribution: { skopeo: [], chunked: [] },
  } as Record<ServerKind, Record<Method, PushRun[]>>;
  let readBacks = 0;
  for (const method of ['skopeo', 'chunked'] as const) {
    for (let i = 0; i < runs; i++) {
      for (const kind of turnOrder(i)) {
        const logFile = join(ctx.workDir, `scenario-10-${kind}-${method}-${i}.log`);
        const server = await ctx.startMirror(kind, undefined, kind === 'longshore'
          ? { localPrefixes: [PREFIX], logLevel: 'debug', logFile }
          : { plainRegistry: true, logFile });
        try {
          const load = loadSnapshot();
          const sampler = ProcSampler.start(server.pid);
          const t0 = process.hrtime.bigint();
          if (method === 'skopeo') await skopeoPush(server, image.dir, `${PREFIX}big:${image.tag}`, ctx.workDir);
          else await chunkedPush(server, `${PREFIX}chunked`, layerPath, layer.digest, layer.size);
          const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
          const cpuSeconds = sampler.stop().cpuSeconds;
          await verifyPushed(server, method === 'skopeo' ? `${PREFIX}big` : `${PREFIX}chunked`, layer.digest, layer.size);
          per[kind][method].push({ seconds, cpuSeconds, load });
          ctx.log(`${kind} ${method} #${i + 1}: ${seconds.toFixed(2)} s (${formatRate(layer.size / seconds)}), server CPU ${cpuSeconds.toFixed(2)} s, load ${load.load[0]}`);
        } catch (err) {
          const cause = (err as Error).cause;
          throw new Error(`${(err as Error).message}${cause ? ` (${String(cause)})` : ''}\n--- ${kind} log ---\n${server.recentLog()}`);
        } finally {
          await server.stop();
          if (kind === 'longshore' && existsSync(logFile)) readBacks += readFileSync(logFile, 'utf8').split(READ_BACK).length - 1;
          rmSync(logFile, { force: true });
        }
      }
    }
  }
  const rows = (['skopeo', 'chunked'] as const).flatMap((method) => {
    const label = method === 'skopeo' ? `skopeo copy of the ${image.repository} image` : `blob in ${CHUNK / MiB} MiB PATCHes`;
    const load = { longshore: per.longshore[method][0]!.load, distribution: per.distribution[method][0]!.load };
    const values = (pick: (r: PushRun) => number) => ({
      longshore: median(per.longshore[method].map(pick)),
      distribution: median(per.distribution[method].map(pick)),
    });
    return [
      row(10, { metric: `push, ${label}: seconds`, unit: 's', better: 'lower', values: values((r) => r.seconds), load, target: '≤ distribution', meets: (l, d) => d !== null && l <= d }),
      row(10, { metric: `push, ${label}: server CPU seconds`, unit: 's', better: 'lower', values: values((r) => r.cpuSeconds), load }),
    ];
  });
  rows.push(row(10, {
    metric: `uploads read back to hash them ("${READ_BACK}"), all runs`, unit: 'uploads', better: 'lower', load: {},
    values: { longshore: readBacks }, target: '0', meets: (l) => l === 0,
  }));
  return [{
    id: 10,
    title: `Push of a ${formatBytes(layer.size)} layer into a local repository (distribution as a plain registry), fresh server per run, median of ${runs} runs each`,
    rows,
    details: per,
    notes: SERVER_KINDS.flatMap((k) => (['skopeo', 'chunked'] as const).map((m) =>
      `${k} ${m}: ${per[k][m].map((r) => `${r.seconds.toFixed(2)} s (CPU ${r.cpuSeconds.toFixed(2)} s, load ${r.load.load[0]})`).join('; ')}`)),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }];
}

async function skopeoPush(server: MirrorServer, dir: string, reference: string, workDir: string): Promise<void> {
  try {
    await run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', '--dest-no-creds', `dir:${dir}`, `docker://${server.host}/${reference}`],
      { env: { ...process.env, TMPDIR: workDir }, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`skopeo push to ${server.kind} failed: ${(err as Error).message}\n${(err as { stderr?: string }).stderr ?? ''}`);
  }
}

/** POST, PATCH per CHUNK bytes with Content-Range, PUT ?digest=; each PATCH's buffer is read before it is sent. */
async function chunkedPush(server: MirrorServer, repository: string, path: string, digest: string, size: number): Promise<void> {
  const file = await open(path, 'r');
  try {
    const started = await fetch(`${server.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await started.arrayBuffer();
    if (started.status !== 202) throw new Error(`${server.kind}: POST upload answered ${started.status}`);
    let location = new URL(started.headers.get('location')!, server.url).href;
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let offset = 0; offset < size; offset += CHUNK) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(CHUNK, size - offset), offset);
      const res = await fetch(location, {
        method: 'PATCH',
        // fetch sends the Content-Length of a Buffer body itself (undici refuses one set by hand here).
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + bytesRead - 1}` },
        body: buffer.subarray(0, bytesRead),
      });
      await res.arrayBuffer();
      if (res.status !== 202) throw new Error(`${server.kind}: PATCH at ${offset} answered ${res.status}`);
      location = new URL(res.headers.get('location')!, server.url).href;
    }
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const done = await fetch(url, { method: 'PUT' });
    await done.arrayBuffer();
    if (done.status !== 201) throw new Error(`${server.kind}: PUT ?digest= answered ${done.status}`);
  } finally {
    await file.close();
  }
}

/** The pushed blob is there, with its size. */
async function verifyPushed(server: MirrorServer, repository: string, digest: string, size: number): Promise<void> {
  const res = await fetch(`${server.url}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
  if (res.status !== 200 || Number(res.headers.get('content-length')) !== size) {
    throw new Error(`${server.kind}: HEAD of the pushed blob answered ${res.status}, ${res.headers.get('content-length')} bytes`);
  }
}
