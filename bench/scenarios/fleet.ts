// Scenario 8: the same cold storm, first through one Longshore node, then through the three-node fleet
// of deploy/README.md (three nodes, HAProxy with deploy/haproxy/haproxy.cfg). N clients pull the
// five-layer image at once: the manifest by tag, then its config and layers, all at once per client.
// Measured: wall time, upstream bytes (each blob should be fetched once in both cases), each node's
// share of the traffic (max ÷ mean of bytes and requests), and each process's CPU time and peak RSS,
// from which bench/NOTES.md projects a larger fleet. On this 2-core machine every process shares the
// same cores, so the fleet cannot be faster than one node: the point is the per-node costs and the split.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { Haproxy } from '../../test/support/e2e/haproxy.js';
import { freePort } from '../../test/support/e2e/ports.js';
import { waitFor } from '../../test/support/wait.js';
import { MANIFEST_ACCEPT, type ScenarioContext } from '../lib/context.js';
import { loadSnapshot, type LoadSnapshot } from '../lib/machine.js';
import { ProcSampler, type ProcUsage } from '../lib/proc-stats.js';
import { describeTraffic, row, upstreamSettled, upstreamTraffic, type ScenarioResult, type UpstreamTraffic } from '../lib/results.js';
import type { MirrorServer } from '../lib/servers.js';
import { GiB, MiB, formatBytes } from '../lib/units.js';

/** Clients in the storm. */
const CLIENTS = 8;
const NODES = 3;
/**
 * Random digests whose routing is counted: one image has only a handful of blobs of unequal sizes, so
 * its split says more about which node drew the biggest layer than about the hash. The requests name
 * an upstream no node has, so each is refused at once, without upstream traffic.
 */
const ROUTING_SAMPLE = 3_000;

interface NodeShare {
  name: string;
  usage: ProcUsage;
  /** Response bytes the node sent (longshore_served_bytes_total). */
  servedBytes: number;
  /** Manifest and blob requests the node answered. */
  requests: number;
}

/** HAProxy's count of blob requests per node, for ROUTING_SAMPLE random digests. */
async function routingSplit(haproxy: Haproxy, dispatcher: Agent): Promise<number[]> {
  const before = await haproxy.servers();
  const batch = 50;
  for (let i = 0; i < ROUTING_SAMPLE; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, ROUTING_SAMPLE - i) }, async () => {
      const res = await request(`${haproxy.url}/v2/unconfigured.example/app/blobs/sha256:${randomBytes(32).toString('hex')}`, { method: 'HEAD', dispatcher });
      await res.body.dump();
    }));
  }
  const after = await haproxy.servers();
  const blobs = (list: typeof after, server: string) => list.find((s) => s.backend === 'blobs' && s.server === server)?.total ?? 0;
  return Array.from({ length: NODES }, (_, i) => blobs(after, `node${i + 1}`) - blobs(before, `node${i + 1}`));
}

interface StormRun {
  wall: number;
  clientBytes: number;
  traffic: UpstreamTraffic;
  nodes: NodeShare[];
  haproxy?: ProcUsage;
  load: LoadSnapshot;
}

/** Sum of a counter's samples in Prometheus text, optionally only those whose labels match. */
async function counter(url: string, name: string, labels?: RegExp): Promise<number> {
  const res = await request(`${url}/metrics`);
  const text = await res.body.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (labels && !labels.test(line)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function storm(baseUrl: string, repository: string, tag: string, dispatcher: Agent): Promise<number> {
  const get = async (path: string, accept?: string) => {
    const res = await request(`${baseUrl}${path}`, { dispatcher, headers: accept ? { accept } : {} });
    if (res.statusCode !== 200) throw new Error(`GET ${path} -> ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`);
    return res;
  };
  const client = async () => {
    const manifest = await (await get(`/v2/${repository}/manifests/${tag}`, MANIFEST_ACCEPT)).body.json() as { config: { digest: string }; layers: Array<{ digest: string }> };
    const sizes = await Promise.all([manifest.config, ...manifest.layers].map(async (b) => {
      let bytes = 0;
      for await (const chunk of (await get(`/v2/${repository}/blobs/${b.digest}`)).body) bytes += (chunk as Buffer).length;
      return bytes;
    }));
    return sizes.reduce((a, b) => a + b, 0);
  };
  const all = await Promise.all(Array.from({ length: CLIENTS }, client));
  return all.reduce((a, b) => a + b, 0);
}

export async function fleetScenario(ctx: ScenarioContext): Promise<ScenarioResult[]> {
  const started = process.hrtime.bigint();
  const image = ctx.images.five;
  if (image.multiArch) throw new Error('scenario 8 expects a single-platform image');
  const proxy = ctx.upstream.proxy;
  const dispatcher = new Agent({ connections: 64 });

  const measure = async (front: string, nodes: MirrorServer[], haproxyPid?: number): Promise<StormRun> => {
    await upstreamSettled(proxy, 200);
    proxy.reset();
    ctx.upstream.tokens.reset();
    const load = loadSnapshot();
    const samplers = nodes.map((n) => ProcSampler.start(n.pid));
    const haproxySampler = haproxyPid === undefined ? undefined : ProcSampler.start(haproxyPid);
    const t0 = process.hrtime.bigint();
    const clientBytes = await storm(front, image.repository, image.tag, dispatcher);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    await upstreamSettled(proxy);
    const usages = samplers.map((s) => s.stop());
    const haproxy = haproxySampler?.stop();
    const shares = await Promise.all(nodes.map(async (n, i) => ({
      name: `node${i + 1}`,
      usage: usages[i]!,
      servedBytes: await counter(n.url, 'longshore_served_bytes_total'),
      requests: await counter(n.url, 'longshore_http_requests_total', /route="(?:blob|manifest)"/),
    })));
    return { wall, clientBytes, traffic: upstreamTraffic(proxy, ctx.upstream.tokens), nodes: shares, ...(haproxy ? { haproxy } : {}), load };
  };

  let single: StormRun;
  {
    const node = await ctx.startMirror('longshore');
    try {
      single = await measure(node.url, [node]);
    } finally {
      await node.stop();
    }
  }
  ctx.log(`one node: ${single.wall.toFixed(2)} s, upstream ${describeTraffic(single.traffic)}`);

  let fleet: StormRun;
  let split: number[] = [];
  {
    const nodes: MirrorServer[] = [];
    let haproxy: Haproxy | undefined;
    try {
      for (let i = 0; i < NODES; i++) nodes.push(await ctx.startMirror('longshore'));
      haproxy = await Haproxy.start({
        LONGSHORE_FRONT: `127.0.0.1:${await freePort()}`,
        LONGSHORE_NODE1: nodes[0]!.host,
        LONGSHORE_NODE2: nodes[1]!.host,
        LONGSHORE_NODE3: nodes[2]!.host,
        LONGSHORE_STATS: `127.0.0.1:${await freePort()}`,
      });
      const front = haproxy;
      await waitFor(async () => ((await front.servers()).every((s) => s.status === 'UP') ? true : undefined),
        { what: 'HAProxy to see every node UP', timeoutMs: 60_000, intervalMs: 100 });
      fleet = await measure(haproxy.url, nodes, haproxy.process.pid);
      split = await routingSplit(haproxy, dispatcher);
    } finally {
      await haproxy?.stop();
      for (const n of nodes) await n.stop();
    }
  }
  await dispatcher.close();
  ctx.log(`fleet: ${fleet.wall.toFixed(2)} s, upstream ${describeTraffic(fleet.traffic)}; per node ${fleet.nodes.map((n) => `${n.name} ${formatBytes(n.servedBytes)} ${n.requests} req ${n.usage.cpuSeconds.toFixed(2)} CPU s`).join(', ')}`);

  const imageBytes = image.pullBytes;
  const expected = CLIENTS * imageBytes;
  for (const [what, run] of [['one node', single], ['fleet', fleet]] as const) {
    if (run.clientBytes !== expected) throw new Error(`${what}: clients received ${run.clientBytes} bytes, expected ${expected}`);
  }
  const maxOverMean = (values: number[]) => Math.max(...values) / (values.reduce((a, b) => a + b, 0) / values.length);
  const cpu = (run: StormRun) => run.nodes.reduce((s, n) => s + n.usage.cpuSeconds, 0);
  const served = (run: StormRun) => run.nodes.reduce((s, n) => s + n.servedBytes, 0);
  const peakRss = (run: StormRun) => Math.max(...run.nodes.map((n) => n.usage.peakRss)) / 1e6;
  const label = `${CLIENTS} clients × ${image.repository}:${image.tag} (${formatBytes(imageBytes)})`;
  const v = (value: number, load: LoadSnapshot) => ({ values: { longshore: value }, load: { longshore: load } });
  const rows = [
    row(8, { metric: `cold storm, ${label}: wall time, one node`, unit: 's', better: 'none', ...v(single.wall, single.load) }),
    row(8, { metric: `cold storm, ${label}: wall time, ${NODES}-node fleet behind HAProxy`, unit: 's', better: 'none', ...v(fleet.wall, fleet.load) }),
    row(8, { metric: 'upstream blob bytes ÷ image bytes, one node', unit: '×', better: 'none', ...v(single.traffic.blobBytes / imageBytes, single.load), target: '1.00', meets: (l) => l < 1.005 }),
    row(8, { metric: 'upstream blob bytes ÷ image bytes, fleet', unit: '×', better: 'none', ...v(fleet.traffic.blobBytes / imageBytes, fleet.load), target: '1.00', meets: (l) => l < 1.005 }),
    row(8, { metric: 'fleet: bytes served per node, max ÷ mean', unit: '×', better: 'none', ...v(maxOverMean(fleet.nodes.map((n) => n.servedBytes)), fleet.load) }),
    row(8, { metric: 'fleet: requests per node, max ÷ mean', unit: '×', better: 'none', ...v(maxOverMean(fleet.nodes.map((n) => n.requests)), fleet.load) }),
    row(8, { metric: `fleet: blob keys routed per node, ${ROUTING_SAMPLE} random digests, max ÷ mean`, unit: '×', better: 'none', ...v(maxOverMean(split), fleet.load) }),
    row(8, { metric: 'one node: CPU seconds per GiB served', unit: 's/GiB', better: 'none', ...v(cpu(single) / (served(single) / GiB), single.load) }),
    row(8, { metric: 'fleet: Longshore CPU seconds per GiB served (all nodes)', unit: 's/GiB', better: 'none', ...v(cpu(fleet) / (served(fleet) / GiB), fleet.load) }),
    row(8, { metric: 'fleet: HAProxy CPU seconds per GiB forwarded', unit: 's/GiB', better: 'none', ...v(fleet.haproxy!.cpuSeconds / (fleet.clientBytes / GiB), fleet.load) }),
    row(8, { metric: 'one node: peak RSS', unit: 'MB', better: 'none', ...v(peakRss(single), single.load) }),
    row(8, { metric: 'fleet: peak RSS of the largest node', unit: 'MB', better: 'none', ...v(peakRss(fleet), fleet.load) }),
  ];
  const describeNodes = (run: StormRun) => run.nodes.map((n) => `${n.name}: ${(n.servedBytes / MiB).toFixed(1)} MiB served, ${n.requests} requests, ${n.usage.cpuSeconds.toFixed(2)} CPU s, peak RSS ${(n.usage.peakRss / 1e6).toFixed(0)} MB`).join('; ');
  return [{
    id: 8,
    title: `Fleet: the same cold storm through one node and through ${NODES} nodes behind HAProxy (Longshore only)`,
    rows,
    details: { longshore: { clients: CLIENTS, imageBytes, single, fleet, routingSplit: split } },
    notes: [
      `one node: ${single.wall.toFixed(2)} s; upstream ${describeTraffic(single.traffic)}; ${describeNodes(single)}`,
      `fleet: ${fleet.wall.toFixed(2)} s; upstream ${describeTraffic(fleet.traffic)}; ${describeNodes(fleet)}; HAProxy ${fleet.haproxy!.cpuSeconds.toFixed(2)} CPU s, peak RSS ${(fleet.haproxy!.peakRss / 1e6).toFixed(0)} MB`,
      `routing of ${ROUTING_SAMPLE} random digests (HEADs for an upstream no node has, refused by the node): ${split.map((n, i) => `node${i + 1} ${n}`).join(', ')}`,
      `the distribution column is empty: this scenario compares Longshore with itself. All ${NODES + 1} processes and the clients share this machine's cores, so the fleet's wall time says nothing about a fleet of machines; bench/NOTES.md projects one from the per-node costs`,
    ],
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  }];
}
