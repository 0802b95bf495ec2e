// A Longshore fleet: three real Longshore processes sharing one config file, behind real HAProxy running
// deploy/haproxy/haproxy.cfg, in front of a real docker-registry (through the counting proxy).
//  1. Concurrent cold pulls of two images that share their base layers under different repository
//     names: each blob and each manifest is fetched from upstream once fleet-wide (blobs are routed by
//     digest, manifests by repository), and more than one node serves.
//     Then content isolation on a blob's owner: under a third repository name, a cached shared layer is
//     served only after the upstream confirms (a HEAD, no second GET) that this repository holds it,
//     and a layer the third repository does not hold upstream is refused though the owner has it.
//  2. kill -9 of a node: pulls started right after still succeed (HAProxy retries on another node).
//  3. The node restarts on its port and cache: it takes its share back, and a warm pull costs no
//     upstream bytes.
//  4. skopeo pushes to a local repository through the front (node 1), and a client pulls it back.
//  5. A rolling restart (SIGTERM, wait, start) of every node under a continuous pull loop: zero failures.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Agent, request } from 'undici';
import { Fleet } from '../support/e2e/fleet.js';
import { buildImageFamily, platformOf, sha256Digest, type TestImage } from '../support/images.js';
import { pullImage } from '../support/e2e/puller.js';
import { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const STEP_TIMEOUT = 300_000;
const TOOLS = ['haproxy', 'docker-registry', 'skopeo', 'openssl'] as const;
/** Concurrent clients per image in the cold storm. */
const CLIENTS = 3;
/** Bounds of the pull loop under the rolling restart: a safety net, never the end condition. */
const LOOP_MAX_PULLS = 5_000;
const LOOP_MAX_MS = 240_000;

describeWithTools('a three-node fleet behind HAProxy', TOOLS, () => {
  const teardown = new Teardown();
  // Two images sharing their two base layers, published under different repository names.
  const [first, second, third] = buildImageFamily({ repository: 'library/app', tags: ['1', '2', '3'], format: 'docker' }) as [TestImage, TestImage, TestImage];
  const a: TestImage = first;
  const b: TestImage = { ...second, repository: 'other/app' };
  /** Published, never pulled: its name is new to every node. */
  const c: TestImage = { ...third, repository: 'third/app' };
  let upstream: UpstreamStack;
  let fleet: Fleet;
  let skopeo: Skopeo;
  const agent = new Agent({ connections: 16 });

  before(async () => {
    upstream = teardown.add('upstream stack', await startUpstreamStack({ extraImages: [a, b, c] }), (s) => s.stop());
    fleet = teardown.add('fleet', await Fleet.start({ upstreamUrl: upstream.proxy.url, ...upstream.mirrorCredentials }), (f) => f.stop());
    const workDir = teardown.tempDir('work dir', 'longshore-fleet-skopeo-');
    skopeo = new Skopeo(workDir);
  }, { timeout: STEP_TIMEOUT });

  after(async () => {
    await agent.close();
    await teardown.runAll();
  }, { timeout: 120_000 });

  const diagnose = () => diagnostics({ upstream: upstream.proxy }, ...fleet.nodes.map((n, i) => ({ longshore: n, label: `node${i + 1}`, lines: 25 })), { process: fleet.haproxy.process, label: 'haproxy', lines: 40 });

  const blobsOf = (image: TestImage) => { const p = platformOf(image, 'amd64'); return [p.config, ...p.layers].map((x) => x.digest); };
  const shared = blobsOf(a).filter((d) => blobsOf(b).includes(d));

  async function pullAndCheck(image: TestImage): Promise<void> {
    const pulled = await pullImage(fleet.haproxy.url, image.repository, image.tag, agent);
    assert.equal(pulled.digest, image.index.digest);
    assert.deepEqual(pulled.blobs, blobsOf(image));
  }

  /** Blob GETs each node answered since its mark. */
  async function blobGetsPerNode(marks: number[]): Promise<number[]> {
    return Promise.all(fleet.nodes.map(async (n, i) => (await n.requestsSince(marks[i]!)).filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:')).length));
  }

  it('cold pulls of two images sharing layers under two names: each blob and manifest fetched upstream once, several nodes serving', { timeout: STEP_TIMEOUT }, async () => {
    assert.equal(shared.length, 2, 'the two images share their base layers');
    upstream.proxy.reset();
    const marks = await Promise.all(fleet.nodes.map((n) => n.settledMark()));
    const pulls = [a, b].flatMap((image) => Array.from({ length: CLIENTS }, () => pullAndCheck(image)));
    const results = await Promise.allSettled(pulls);
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failed, [], diagnose());

    const counts = upstream.proxy.blobFetchCounts();
    const expected = [...new Set([...blobsOf(a), ...blobsOf(b)])];
    assert.deepEqual([...counts.entries()].map(([d, n]) => `${d} x${n}`).sort(), expected.map((d) => `${d} x1`).sort(),
      `each blob fetched from upstream exactly once, fleet-wide\n${diagnose()}`);
    // One owner per repository: each manifest is fetched once, not once per node (a tag is resolved with
    // a HEAD, then its index fetched by digest).
    const manifestGets = new Map<string, number>();
    for (const r of upstream.proxy.manifestGets().filter((m) => m.status === 200)) manifestGets.set(r.path, (manifestGets.get(r.path) ?? 0) + 1);
    const expectedManifests = [a, b].flatMap((image) => [`/v2/${image.repository}/manifests/${image.index.digest}`, `/v2/${image.repository}/manifests/${platformOf(image, 'amd64').manifest.digest}`]);
    assert.deepEqual([...manifestGets.entries()].map(([path, n]) => `${path} x${n}`).sort(), expectedManifests.map((path) => `${path} x1`).sort(),
      `each manifest fetched from upstream exactly once, fleet-wide\n${diagnose()}`);
    await Promise.all(fleet.nodes.map((n) => n.settledMark()));
    const served = await blobGetsPerNode(marks);
    assert.ok(served.filter((n) => n > 0).length >= 2, `blob GETs per node: ${served.join(', ')}: more than one node serves`);
  });

  it('content isolation on the owner: a new repository name gets a cached layer only after an upstream HEAD, and never a layer it does not hold', { timeout: STEP_TIMEOUT }, async () => {
    const base = shared[0]!;
    const own = blobsOf(a).find((d) => !blobsOf(c).includes(d))!;
    upstream.proxy.reset();
    const held = await request(`${fleet.haproxy.url}/v2/${c.repository}/blobs/${base}`, { dispatcher: agent });
    const body = Buffer.from(await held.body.arrayBuffer());
    assert.equal(held.statusCode, 200, diagnose());
    assert.equal(sha256Digest(body), base);
    const about = (digest: string) => upstream.proxy.ofKind('blob').filter((r) => r.reference === digest && r.status !== 401).map((r) => `${r.method} ${r.repository} -> ${r.status}`);
    assert.deepEqual(about(base), [`HEAD ${c.repository} -> 200`], `confirmed with the upstream, served from the owner's cache\n${diagnose()}`);

    const refused = await request(`${fleet.haproxy.url}/v2/${c.repository}/blobs/${own}`, { dispatcher: agent });
    await refused.body.dump();
    assert.equal(refused.statusCode, 404, `${own} is cached on its owner for ${a.repository}, but ${c.repository} does not hold it`);
    assert.deepEqual(about(own), [`HEAD ${c.repository} -> 404`], diagnose());
  });

  let killed = -1;

  it('kill -9 of a node: pulls started right after succeed', { timeout: STEP_TIMEOUT }, async () => {
    // The node serving the most blobs, so that its share has to move.
    const marks = fleet.nodes.map(() => 0);
    const served = await blobGetsPerNode(marks);
    killed = served.indexOf(Math.max(...served));
    await fleet.kill(killed);
    const results = await Promise.allSettled([pullAndCheck(a), pullAndCheck(b)]);
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failed, [], `pulls right after node${killed + 1} was killed\n${diagnose()}`);
    await fleet.haproxy.waitForServer(Fleet.serverName(killed), 'DOWN');
    await Promise.all([pullAndCheck(a), pullAndCheck(b)]);
  });

  it('the killed node restarts with its cache: it takes its share back and a warm pull costs no upstream bytes', { timeout: STEP_TIMEOUT }, async () => {
    assert.ok(killed >= 0);
    const node = await fleet.restart(killed);
    upstream.proxy.reset();
    const mark = await node.settledMark();
    await Promise.all([pullAndCheck(a), pullAndCheck(b)]);
    const fetched = upstream.proxy.requests.filter((r) => r.method === 'GET' && r.status === 200);
    assert.deepEqual(fetched.map((r) => `${r.method} ${r.path} (${r.bytes} B)`), [], `a warm pull fetches nothing upstream\n${diagnose()}`);
    await node.settledMark();
    const back = (await node.requestsSince(mark)).filter((r) => r.path.includes('/blobs/sha256:'));
    assert.ok(back.length > 0, `node${killed + 1} serves blobs again\n${diagnose()}`);
    assert.ok(back.every((r) => r.cache === 'hit'), `from its own cache: ${back.map((r) => r.cache).join(', ')}`);
  });

  it('skopeo pushes to a local repository through the front (node 1), and a client pulls it back through the front', { timeout: STEP_TIMEOUT }, async () => {
    const marks = await Promise.all(fleet.nodes.map((n) => n.settledMark()));
    const front = fleet.haproxy.host;
    const result = await skopeo.run(['copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false',
      `docker://${front}/${a.repository}:${a.tag}`, `docker://${front}/team/app:pushed`]);
    assert.equal(result.code, 0, `skopeo copy failed: ${result.stderr}\n${diagnose()}`);
    await Promise.all(fleet.nodes.map((n) => n.settledMark()));
    const writes = await Promise.all(fleet.nodes.map(async (n, i) => (await n.requestsSince(marks[i]!)).filter((r) => r.path.startsWith('/v2/team/') && !['GET', 'HEAD'].includes(r.method)).length));
    assert.ok(writes[0]! > 0 && writes[1] === 0 && writes[2] === 0, `uploads and manifest PUTs per node: ${writes.join(', ')}: all on node 1`);

    const pulled = await pullImage(fleet.haproxy.url, 'team/app', 'pushed', agent);
    assert.equal(pulled.digest, a.index.digest, 'the pushed index comes back byte for byte');
    assert.deepEqual(pulled.blobs, blobsOf(a));
    const inspect = await skopeo.run(['inspect', '--tls-verify=false', '--raw', `docker://${front}/team/app:pushed`]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.ok(inspect.stdout.equals(a.index.bytes), 'skopeo reads the same index back');
  });

  it('a rolling restart of every node under a continuous pull loop causes no failed pull', { timeout: LOOP_MAX_MS + 120_000 }, async () => {
    let rolling = true;
    const failures: string[] = [];
    let pulls = 0;
    /** Pulls completed while each node was away (from SIGTERM until HAProxy saw it back UP). */
    const whileAway = [0, 0, 0];
    let away = -1;
    const started = Date.now();
    const loop = async (images: TestImage[]) => {
      for (let n = 0; rolling && n < LOOP_MAX_PULLS && Date.now() - started < LOOP_MAX_MS; n++) {
        const image = images[n % images.length]!;
        const during = away;
        try {
          await pullAndCheck(image);
          pulls++;
          if (during >= 0 && during === away) whileAway[during]!++;
        } catch (err) {
          failures.push(`${image.repository}:${image.tag} (node${during + 1} away): ${(err as Error).message}`);
        }
      }
    };
    const retriesSoFar = async () => (await fleet.haproxy.servers()).reduce((n, s) => n + s.retries + s.redispatches, 0);
    const retriesBefore = await retriesSoFar();
    const loops = [loop([a, b]), loop([b, a])];
    try {
      for (let i = 0; i < 3; i++) {
        away = i;
        const leaving = fleet.nodes[i]!;
        const exit = await fleet.terminate(i);
        assert.deepEqual(exit, { code: 0, signal: null }, `node${i + 1} exits cleanly\n${diagnose()}`);
        const drained = leaving.records.filter((r) => r.msg === 'drain delay over; refusing new connections' || r.msg === 'stopped').length;
        assert.equal(drained, 2, `node${i + 1} drained, then stopped`);
        await fleet.restart(i);
        away = -1;
      }
    } finally {
      rolling = false;
      await Promise.all(loops);
    }
    assert.deepEqual(failures, [], `failed pulls during the rolling restart (${pulls} succeeded)\n${diagnose()}`);
    assert.ok(Date.now() - started < LOOP_MAX_MS, 'the roll finished within the loop bound');
    // The drain, not HAProxy's retries, kept the pulls whole: each node left rotation (its /readyz
    // answered 503) before its listener closed, so no request met a refused or dropped connection.
    assert.equal(await retriesSoFar() - retriesBefore, 0, `HAProxy retried or redispatched during the roll\n${diagnose()}`);
    assert.ok(whileAway.every((n) => n > 0), `pulls completed while each node was away: ${whileAway.join(', ')}`);
  });
});
