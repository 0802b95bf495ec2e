// Summarises a V8 CPU profile (`node --cpu-prof` writes one .cpuprofile per process on exit): self
// time per function, and per origin (Longshore's own code, each npm package, Node's internals).
// Also a command: node --import tsx bench/lib/cpu-profile.ts FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  name: string;
  where: string;
  selfMs: number;
  /** Share of the non-idle time. */
  selfPercent: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  busyMs: number;
  functions: HotSpot[];
  origins: Array<{ origin: string; selfMs: number; selfPercent: number }>;
}

/** "longshore src/…", "npm:<package>", "node:<module>", or a V8 pseudo-frame such as "(garbage collector)". */
function originOf(node: ProfileNode): string {
  const url = node.callFrame.url;
  if (url === '') return node.callFrame.functionName.startsWith('(') ? node.callFrame.functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist) return `longshore ${dist[1]!.split('/')[0]!.replace(/\.js$/, '')}`;
  return url;
}

function shortUrl(url: string): string {
  const pkg = /node_modules\/(.+)$/.exec(url);
  if (pkg) return pkg[1]!;
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist) return `dist/${dist[1]}`;
  return url;
}

export function summarizeProfile(path: string, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
  /** A native frame (a C++ binding such as `writeBuffer`) is named with its nearest JavaScript caller. */
  const callerOf = (id: number): string => {
    for (let p = parentOf.get(id); p !== undefined; p = parentOf.get(p)) {
      const frame = byId.get(p)!.callFrame;
      if (frame.url !== '') return `← ${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
    }
    return '';
  };
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const origins = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    totalUs += us;
    if (node.callFrame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const native = node.callFrame.url === '' && !node.callFrame.functionName.startsWith('(');
    const where = node.callFrame.url === '' ? (native ? callerOf(id) : '') : `${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
    const name = node.callFrame.functionName || '(anonymous)';
    const key = `${name} ${where}`;
    const entry = functions.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    const origin = originOf(node);
    origins.set(origin, (origins.get(origin) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? (100 * us) / busyUs : 0);
  return {
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    functions: [...functions.values()].sort((a, b) => b.us - a.us).slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfMs: f.us / 1000, selfPercent: pct(f.us) })),
    origins: [...origins.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
      .map(([origin, us]) => ({ origin, selfMs: us / 1000, selfPercent: pct(us) })),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [`sampled ${s.totalMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms, busy ${s.busyMs.toFixed(0)} ms`, '', 'self time by origin:'];
  for (const o of s.origins) lines.push(`  ${o.selfMs.toFixed(0).padStart(7)} ms ${o.selfPercent.toFixed(1).padStart(5)}%  ${o.origin}`);
  lines.push('', 'self time by function:');
  for (const f of s.functions) lines.push(`  ${f.selfMs.toFixed(0).padStart(7)} ms ${f.selfPercent.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node --import tsx bench/lib/cpu-profile.ts FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  console.log(formatSummary(summarizeProfile(file, top ? Number(top) : 25)));
}
