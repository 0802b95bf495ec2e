// deploy/haproxy/haproxy.cfg is the file operators run and the one the fleet e2e test runs: HAProxy
// itself must accept it (haproxy -c) with nothing but the documented environment variables, and the
// routing decisions deploy/README.md promises must be in it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { HAPROXY_CONFIG } from '../support/e2e/haproxy.js';
import { describeWithTools } from '../support/e2e/tools.js';

const ENV = {
  LONGSHORE_FRONT: '127.0.0.1:5000',
  LONGSHORE_NODE1: '127.0.0.1:5001',
  LONGSHORE_NODE2: '127.0.0.1:5002',
  LONGSHORE_NODE3: '127.0.0.1:5003',
};

function check(env: Record<string, string>): { status: number | null; output: string } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('LONGSHORE_')));
  const result = spawnSync('haproxy', ['-c', '-f', HAPROXY_CONFIG], { env: { ...clean, ...env }, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The lines of each section ("backend blobs" → its directives), comments dropped. */
function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trimEnd();
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      current = line.trim();
      out.set(current, []);
    } else out.get(current)?.push(line.trim());
  }
  return out;
}

describeWithTools('deploy/haproxy/haproxy.cfg', ['haproxy'], () => {
  it('is valid for HAProxy with the documented environment, and needs it', () => {
    const ok = check(ENV);
    assert.equal(ok.status, 0, ok.output);
    assert.match(ok.output, /Configuration file is valid/);
    assert.equal(check({ ...ENV, LONGSHORE_LOCAL_PREFIX: '/v2/local/', LONGSHORE_STATS: '127.0.0.1:9000' }).status, 0);
    const { LONGSHORE_NODE3: _, ...withoutNode3 } = ENV;
    assert.notEqual(check(withoutNode3).status, 0, 'no hard-coded node addresses: LONGSHORE_NODE3 is required');
  });

  it('routes blobs by digest (bounded load) and manifests by repository on a consistent hash, checks /readyz, retries reads only', () => {
    const cfg = sections(readFileSync(HAPROXY_CONFIG, 'utf8'));
    const blobs = cfg.get('backend blobs')!;
    assert.ok(blobs.includes('balance hash path,regsub(^.*/blobs/,)'), 'the blob key is the digest alone, not the repository');
    const repositories = cfg.get('backend repositories')!;
    assert.ok(repositories.some((l) => l.startsWith('balance hash path,')), 'the manifest key is the path without the query string');
    for (const backend of [blobs, repositories]) assert.ok(backend.includes('hash-type consistent'));
    // Bounded load on blobs only, and high enough that on three nodes it never moves a blob off its
    // owner (a moved blob is fetched upstream again); a tag always has one owner.
    assert.ok(blobs.some((l) => /^hash-balance-factor (\d+)$/.exec(l) && Number(l.split(' ')[1]) >= 300));
    assert.ok(!repositories.some((l) => l.startsWith('hash-balance-factor')));
    const defaults = cfg.get('defaults')!;
    assert.ok(defaults.includes('option httpchk GET /readyz'));
    assert.ok(defaults.includes('option redispatch 1'));
    assert.ok(defaults.includes('option forwardfor'), 'nodes can tell clients apart behind the proxy');
    assert.ok(defaults.some((l) => l.startsWith('retry-on ') && l.includes('conn-failure') && l.includes('empty-response')));
    // Writes are never replayed once sent.
    assert.deepEqual(cfg.get('backend local_writes')!.filter((l) => l.startsWith('retry-on')), ['retry-on conn-failure']);
    for (const name of ['backend local_reads', 'backend local_writes']) {
      assert.deepEqual(cfg.get(name)!.filter((l) => l.startsWith('server ')),
        ['server node1 "${LONGSHORE_NODE1}"', 'server node2 "${LONGSHORE_NODE2}" backup']);
    }
    const front = cfg.get('frontend registry')!;
    assert.ok(front.includes('acl local_repo  path_beg "${LONGSHORE_LOCAL_PREFIX-/v2/team/}"'));
    assert.ok(front.indexOf('use_backend local_writes  if local_repo || !read') < front.indexOf('use_backend blobs         if blob'),
      'writes of any repository go to node 1 before the read routes are tried');
  });
});
